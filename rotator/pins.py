"""What pins a version (README, "What pins a version"): a key's versions and, for each,
its uses grouped by kind and place, with a few example names, the count, the bytes and
the date the group frees the version. The kinds themselves are the services' specs
(rotator.services.PIN_KINDS); these are the helpers every service's scanner shares.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from rotator.model import CryptoKeyVersion, unreachable_of
from rotator.names import version_number
from rotator.services import PIN_KINDS, service_of
from rotator.services.core import UNLISTED
from rotator.services.spec import PinKind
from rotator.timeutil import format_time

EXAMPLES = 5
# Each pin kind's place in the order inventories list them (PIN_KINDS's order).
_RANK = {kind: i for i, kind in enumerate(PIN_KINDS)}

# A new primary takes effect eventually, not at once. Cloud KMS resource consistency page
# (rotator/backends/gcp/CONTRACT.md, UpdateCryptoKeyPrimaryVersion): "While such
# eventually-consistent changes propagate, Encrypt operations for a CryptoKey might use
# the CryptoKey's previous primary version"; changes "typically propagate within 1
# minute, but may take up to 3 hours in exceptional cases". So a revision or function
# deployed within this bound of a primary change may be under the previous primary,
# whatever KMS says is primary now (R43 with R2).
PROPAGATION = timedelta(hours=3)
PROPAGATION_TEXT = f"{PROPAGATION.total_seconds() / 3600:g} h"


@dataclass
class PinGroup:
    """A set of uses of one version in one place, of one kind."""

    kind: str
    resource: str
    count: int = 0
    bytes: int = 0
    frees_at: datetime | None = None  # the latest date among the group; None = no date
    dateless: bool = False  # some member frees on an event with no date (hold, lifecycle)
    examples: list[str] = field(default_factory=list)
    detail: str = ""
    # Members whose key rotator inferred (e.g. a backup of a deleted database: "may be any
    # key"): they pin, but do not show the key in use in their project.
    inferred: int = 0
    # The end of the KMS propagation window a deploy fell in (RUN_WINDOW, FUNCTION_WINDOW);
    # None there: the window of a primary not made yet (a plan's own rotation).
    after: datetime | None = None

    @property
    def named(self) -> int:
        """Members that name this key (or one of its versions) themselves."""
        return self.count - self.inferred

    @property
    def spec(self) -> PinKind:
        return PIN_KINDS[self.kind]

    @property
    def frees_when(self) -> str:
        """The event that frees the group, with the date it waits for when it has one."""
        after = (
            format_time(self.after)
            if self.after
            else f"the new primary's propagation window ({PROPAGATION_TEXT} from its creation)"
        )
        return self.spec.frees_when.format(after=after)

    @property
    def rule(self) -> str:
        return self.spec.rule

    def frees_on(self) -> datetime | None:
        """The date the whole group frees the version; None if unknown or event-driven."""
        return None if self.dateless else self.frees_at

    def add(self, what: str, size: int = 0, frees_at: datetime | None = None) -> None:
        self.count += 1
        self.bytes += size
        if frees_at is None:
            self.dateless = True
        elif self.frees_at is None or frees_at > self.frees_at:
            self.frees_at = frees_at
        if len(self.examples) < EXAMPLES:
            self.examples.append(what)

    def to_json(self) -> dict[str, object]:
        frees = self.frees_on()
        return {
            "kind": self.kind,
            "resource": self.resource,
            "rule": self.rule,
            "count": self.count,
            "bytes": self.bytes,
            "blocks_disable": self.spec.blocks_disable,
            "blocks_destroy": self.spec.blocks_destroy,
            "frees_at": frees.strftime("%Y-%m-%dT%H:%M:%SZ") if frees else None,
            "frees_when": self.frees_when,
            "examples": self.examples,
            "detail": self.detail,
        }


@dataclass
class VersionUse:
    version: CryptoKeyVersion
    is_primary: bool
    groups: dict[tuple[str, str], PinGroup] = field(default_factory=dict)

    def group(self, kind: str, resource: str) -> PinGroup:
        g = self.groups.get((kind, resource))
        if g is None:
            g = self.groups[(kind, resource)] = PinGroup(kind, resource)
        return g

    def pins(self) -> list[PinGroup]:
        """Deterministic whatever order the APIs listed things in: by kind, then resource."""
        return sorted(self.groups.values(), key=lambda g: (_RANK[g.kind], g.resource))


def version_use(uses: dict[int, VersionUse], key: str, version: str | None) -> VersionUse | None:
    number = version_number(key, version)
    return None if number is None else uses.get(number)


def versions_used(
    uses: dict[int, VersionUse], key: str, version: str | None, resource_key: str | None
) -> list[VersionUse]:
    """The versions a resource depends on. Some APIs do not say which version a resource
    was encrypted under (a Firestore backup, a Dataflow job, a Cloud Run revision not
    deployed by rotator): then it may be any version of its key, and the safe side is
    that it pins them all (when unsure, assume in use: rotator.rules)."""
    use = version_use(uses, key, version)
    if use is not None:
        return [use]
    if version is None and resource_key == key:
        return list(uses.values())
    return []


def pin_unlisted(uses: dict[int, VersionUse], service: str, listing: Iterable[object]) -> None:
    """Every version is pinned by each location a list could not reach."""
    for location in unreachable_of(listing):
        for use in uses.values():
            use.group(UNLISTED, f"{service} in {location}").add(location)


def pin_primary(uses: dict[int, VersionUse], primary: int | None, kind: str, resource: str) -> None:
    if primary in uses:
        uses[primary].group(kind, resource).add(resource)


def uses_found(uses: dict[int, VersionUse]) -> int:
    """How many uses naming this key rotator's own listing found (services' pins, not the
    primary, nor a use that only may be under the key: that says nothing of its project)."""
    return sum(g.named for u in uses.values() for g in u.groups.values() if service_of(g.kind))


def services_found(uses: dict[int, VersionUse]) -> set[str]:
    """The services where rotator's own listing found a use naming this key."""
    groups = (g for u in uses.values() for g in u.groups.values() if g.named)
    return {s for g in groups if (s := service_of(g.kind)) is not None}
