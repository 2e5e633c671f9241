"""Step kinds: the registry playbooks are validated against, and what a step is.

Plan and apply walk the same steps. A kind's `plan` inspects the world and returns a
PlannedStep (its targets, changes, blockers and the data apply needs); `apply`
executes those changes, re-checking each target before it touches it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from rotator.errors import BadInput

if TYPE_CHECKING:
    from rotator.engine import ApplyContext
    from rotator.plan import PlanContext


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
    return cls


def strict(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": props,
        "required": required or [],
        "additionalProperties": False,
    }


PARAM_REF = {"type": "string", "pattern": "^[a-z_][a-z0-9_]*$"}

Emit = Callable[[str], None]
