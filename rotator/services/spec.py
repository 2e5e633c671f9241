"""What a service's spec says (one per service, rotator/services/<name>/spec.py), and
what one kind of pin is. Plain data: no client library, no fake, no adapter.

A pin kind is everything rotator knows of one kind of use of a key version: the rule
that makes it pin (`rotator rules R15`), whether it forbids disabling and destroying
(README, "What pins a version"), what frees it, what stops working when the version is
disabled (disable-key's report), and how a refusal names it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import TYPE_CHECKING, Generic, TypeVar, cast

from rotator.changes import Change

if TYPE_CHECKING:
    from rotator.backends.base import Backend, ReadOnlyBackend

# A service's API and the reads of it planning may make (rotator/services/<name>/api.py).
ApiT = TypeVar("ApiT")
ReadsT = TypeVar("ReadsT")


@dataclass(frozen=True)
class PinKind:
    kind: str  # as plans, reports and JSON spell it
    rule: str
    blocks_disable: bool
    blocks_destroy: bool
    # What frees it; "{after}": the end of a propagation window (PinGroup.frees_when).
    frees_when: str
    # What stops working when the version the use needs is disabled.
    impact: str
    # How a refusal names one group (guards.describe_pin): "{resource}", "{names}" (a few
    # of its members) and "{detail}" are filled in; "" names it by kind and count.
    describe: str = ""
    rewritable: bool = False  # a rewrite under another version frees it (R14)
    # Key-level: the resource encrypts new data with whatever version is primary, so it
    # pins the primary and moves with it when a rotation makes another version primary.
    key_level: bool = False
    # The kind a use of this kind takes when it was deployed while the primary it was
    # recorded under still propagated (R43 with R2; rotator.windows).
    window: str | None = None
    # What a window group's detail says first (rotator.windows.PrimaryWindow.pin).
    window_note: str = ""
    # The service whose spec defines it (whose agent needs the key, R5); None for the
    # kinds no service owns (rotator.services.core). Set by ServiceSpec.
    service: str | None = None


class Repeat(Enum):
    """Whether a call may be sent again after a transient error (rotator.retry)."""

    SAFE = "safe"  # a repeat changes nothing more: retried on any transient error
    # A blind repeat could do it twice (a second version, revision, database, job):
    # retried only when the service refused it (RESOURCE_EXHAUSTED). After UNAVAILABLE or
    # a deadline the engine re-runs the step, which first looks at what already happened.
    ONCE = "once"
    # SAFE when the call carries if_generation_match (a repeat is refused by the
    # precondition), else ONCE (a repeat could clobber a concurrent write).
    IF_MATCH = "if_match"


# The permission of a call any caller may make (testIamPermissions), or of one no request makes.
ANYONE = "(none: any caller may ask what it holds)"
NO_REQUEST = "(none: answered locally, no request)"


@dataclass(frozen=True)
class Call:
    """One call of an API (a method of its Backend protocol, or a request a gcp adapter
    makes on its behalf): the IAM permission it needs, so a 403 says what to grant (both
    backends), and whether a blind repeat is safe (the fake's faults and the gcp
    adapters' retries both read it: rotator.services.calls)."""

    permission: str
    repeat: Repeat = Repeat.SAFE
    # The name the gcp backend's messages give the call, when not the method's own.
    named: str = ""
    # What the gcp adapter does when it is not `repeat`; each such call says why.
    gcp_repeat: Repeat | None = None

    def repeatable(self, *, gcp: bool, preconditioned: bool) -> bool:
        """May a blind repeat be sent, on this backend, for a call that carries (or
        not) an if_generation_match precondition?"""
        repeat = self.gcp_repeat if gcp and self.gcp_repeat is not None else self.repeat
        return repeat is Repeat.SAFE or (repeat is Repeat.IF_MATCH and preconditioned)


@dataclass(frozen=True)
class ServiceSpec(Generic[ApiT, ReadsT]):
    """One service rotator finds key uses in and moves between key versions, typed by its
    API (`ServiceSpec[RunApi, RunReads]`): `SPEC.api(backend)` is the service's API on a
    backend, `SPEC.reads(backend)` its reads on the plan side's read-only one."""

    name: str  # --services, plans, the Backend attribute of its API, its package
    title: str  # as Google Cloud names it
    # The service agents that use a key on the service's behalf and so need
    # Encrypter/Decrypter on it (R5); "{n}" is the project number.
    agents: tuple[str, ...]
    pin_kinds: tuple[PinKind, ...]  # in the order plans and refusals list them
    # Cloud KMS Inventory's products (`PRODUCT/Type`) this service's own listing covers:
    # there the listing is the authority (the inventory is built from snapshots and lags).
    products: tuple[str, ...]
    # Each call of its API: its permission and whether a blind repeat is safe.
    calls: Mapping[str, Call]
    # The variable that points its gcp client at a local server (tests, sandboxes).
    endpoint_env: str
    # The list calls `report` reads once per project for all its keys (ScanCache).
    listed_once: frozenset[str] = field(default_factory=frozenset)
    # The changes (plan actions) the service carries out with the key, so its agents
    # must hold Encrypter/Decrypter on it before a plan relies on them (R5; rotator.access).
    key_changes: frozenset[Change] = field(default_factory=frozenset)
    # What the caller needs for a change, asked of the service's testIamPermissions at
    # plan time: action -> (the change's field naming the resource, the permissions).
    change_permissions: Mapping[Change, tuple[str, tuple[str, ...]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Each kind names the service it is defined in: written once, here.
        object.__setattr__(self, "pin_kinds", tuple(replace(k, service=self.name) for k in self.pin_kinds))

    def api(self, backend: Backend) -> ApiT:
        """The service's API on `backend`: the backend's attribute under the service's
        name. Each backend makes it from the service's package (`part`); a layer around
        the backend (faults, the scan's once-per-project lists) replaces it by that name,
        so this reads the attribute rather than asking the backend."""
        return cast(ApiT, getattr(backend, self.name))

    def reads(self, backend: ReadOnlyBackend) -> ReadsT:
        """The service's reads on the plan side's read-only backend (a mutating call on
        it does not type-check)."""
        return cast(ReadsT, getattr(backend, self.name))
