"""Step kinds: the registry playbooks are validated against, what a step is, and the
two contexts a step kind is given.

Plan and apply walk the same steps. A kind's `plan` inspects the world and returns a
PlannedStep (its targets, changes, blockers and the data apply needs); `apply`
executes those changes, re-checking each target before it touches it.

The contexts are protocols: the plan builder (rotator.plan) and the engine
(rotator.engine) implement them, and the steps import neither, so imports flow one
way (engine and plan -> steps -> the world's model).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from rotator.errors import BadInput
from rotator.plandoc import accept_step_kind

if TYPE_CHECKING:
    from rotator.backends.base import Backend, ReadOnlyBackend
    from rotator.interrupts import StopRequest
    from rotator.inventory import KeyInventory
    from rotator.journal import Journal
    from rotator.pins import PinGroup
    from rotator.progress import ProgressFactory

Emit = Callable[[str], None]


class PlanContext(Protocol):
    """What a step kind's plan() is given. Planning changes nothing: its backend is
    read-only, and a mutating call on it does not type-check."""

    @property
    def backend(self) -> ReadOnlyBackend: ...

    params: dict[str, Any]

    @property
    def emit(self) -> Emit: ...

    services: tuple[str, ...]
    # The operator accepted an unreadable Cloud KMS Inventory (README "Cloud KMS Inventory").
    acknowledged: bool
    # Projects whose resources rotator inspects (the first is the backend's).
    projects: tuple[str, ...]
    # Pin kinds that earlier steps of this plan will remove (e.g. a rewrite removes
    # live-object pins), so later steps can reason about the world after them.
    resolved: set[str]
    # The same, for single uses: (pin kind, resource), e.g. one Cloud Run service.
    resolved_uses: set[tuple[str, str]]
    # key -> the primary an earlier step of this plan replaces (a rotation, R2).
    replaced_primary: dict[str, int]
    # Pins that earlier steps of this plan will add: (key, version) -> groups. A revision
    # deployed right after the plan's own rotation pins the replaced primary (PROPAGATION).
    added_pins: dict[tuple[str, int], list[PinGroup]]

    def param(self, name: str) -> Any: ...

    def key(self, name: str) -> str:
        """A key parameter's value, or BadInput naming the missing flag."""
        ...

    def inventory(self, key: str) -> KeyInventory:
        """The key's inventory, scanned once per plan."""
        ...


class ApplyContext(Protocol):
    """What a step kind's apply() and verify() are given: the full backend, the journal,
    the stop request, and the run's settings."""

    @property
    def backend(self) -> Backend: ...

    plan: dict[str, Any]
    journal: Journal
    concurrency: int

    @property
    def emit(self) -> Emit: ...

    plan_path: str
    stop: StopRequest
    wait: timedelta | None  # --wait: how long a wait step may poll
    watch: timedelta | None  # --watch: how long to watch the logs after a disable
    poll_seconds: float

    @property
    def sleep(self) -> Callable[[float], None]: ...

    @property
    def monotonic(self) -> Callable[[], float]: ...

    def stopping(self) -> bool:
        """A signal asked the apply to stop: loops start no new work."""
        ...

    def raise_if_stopping(self, step_id: str) -> None:
        """Where a step can stop cleanly, after what was in flight has ended."""
        ...

    def wait_until(self, done: Callable[[], bool]) -> bool:
        """Poll `done` until it holds or --wait runs out. Returns True if still waiting."""
        ...

    def fresh_inventory(self, key: str) -> KeyInventory:
        """Always re-read: a guard must judge the world as it is now, not as planned."""
        ...

    def record(self, event: str, **fields: Any) -> None:
        """Write an event to the apply's audit record (beside the journal)."""
        ...

    # The command line's settings for one service's steps (e.g. Cloud Storage's --engine
    # and --manifest-bucket), carried as given: each service types and reads its own.
    options: dict[str, Any]

    @property
    def progress_bars(self) -> ProgressFactory:
        """A progress bar per unit of work (a bucket's objects): a terminal's, or none."""
        ...


@dataclass
class PlannedStep:
    id: str
    kind: str
    title: str
    rules: list[str]
    targets: list[str] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)
    blockers: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "title": self.title,
            "rules": self.rules,
            "targets": self.targets,
            "changes": self.changes,
            "blockers": self.blockers,
            "notes": self.notes,
            "data": self.data,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> PlannedStep:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})


class StepKind:
    """Base of every step kind. Subclasses set name, summary, rules and a JSON Schema
    for their `with:` block, and implement plan() and apply()."""

    name: ClassVar[str]
    summary: ClassVar[str]
    rules: ClassVar[list[str]]
    with_schema: ClassVar[dict[str, Any]] = {"type": "object", "properties": {}}
    # Parameter references inside `with:` (values naming a playbook parameter).
    param_fields: ClassVar[tuple[str, ...]] = ()

    def validate(self, params: dict[str, Any], declared: set[str], where: str) -> None:
        """Semantic checks after the schema (cloud-custodian's validate())."""
        for f in self.param_fields:
            if f in params and params[f] not in declared:
                raise BadInput(
                    f"{where}: with.{f} names parameter {params[f]!r}, which the playbook does not declare"
                )

    def plan(self, ctx: PlanContext, step_id: str, params: dict[str, Any]) -> PlannedStep | None:
        raise NotImplementedError

    def apply(self, ctx: ApplyContext, step: PlannedStep) -> dict[str, Any]:
        raise NotImplementedError

    def asks_for_key_id(self, step: PlannedStep) -> bool:
        """Does this step take a key out of service (or for good)? An operator at a
        terminal then types the key's id to apply it; --yes skips that for scripts."""
        return False

    # Does verify() re-check this kind's effect? Kinds that only report, wait or were
    # done by hand have nothing in the world to re-check.
    verifies: ClassVar[bool] = False

    def verify(self, ctx: ApplyContext, step: PlannedStep, result: dict[str, Any]) -> list[str]:
        """For a re-apply of a done plan: what of this step's applied effect no longer
        holds in the world (one line each; empty: its goal is still true)."""
        return []

    # -- hooks the engine calls on every kind (it names none) ----------------------------
    def after_apply(self, ctx: ApplyContext, step: PlannedStep, result: dict[str, Any]) -> None:
        """Once the step is done and journaled: what must follow it before the next step
        (e.g. watching the logs after a disable, R13.4). Raises to stop the apply."""

    def rotation(self, step: PlannedStep, journal: Journal) -> tuple[str, int, int] | None:
        """(key, the primary this step made, the one it replaced) once it ran, for a
        step that rotates a key; None for every other step."""
        return None

    def resume_note(self, step: PlannedStep, progress: dict[str, Any]) -> str:
        """What 'resuming at step N' adds about this step's own progress so far."""
        return ""


class ReportStep(StepKind):
    """A step that changes nothing: its plan notes what stays as it is and why, and
    apply repeats them (so they are in the run's output and audit record too)."""

    def apply(self, ctx: ApplyContext, step: PlannedStep) -> dict[str, Any]:
        for note in step.notes:
            ctx.emit(note)
        return {"reported": len(step.targets)}


REGISTRY: dict[str, StepKind] = {}


def register(cls: type[StepKind]) -> type[StepKind]:
    REGISTRY[cls.name] = cls()
    accept_step_kind(cls.name)  # a saved plan may name it (rotator.plandoc checks)
    return cls


def strict(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": props,
        "required": required or [],
        "additionalProperties": False,
    }


PARAM_REF = {"type": "string", "pattern": "^[a-z_][a-z0-9_]*$"}
