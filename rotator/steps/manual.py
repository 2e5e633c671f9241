"""A manual check the runbook asks for, which no API can do (e.g. R13.2)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from rotator.steps.base import PlannedStep, StepKind, register, strict

if TYPE_CHECKING:
    from rotator.steps.base import ApplyContext, PlanContext


@register
class ManualCheck(StepKind):
    name = "manual.check"
    summary = "A check the operator must make by hand; shown in the plan, recorded by apply"
    rules: ClassVar[list[str]] = []
    with_schema = strict(
        {
            "rule": {"type": "string", "pattern": r"^R[0-9]+(\.[0-9]+)?$"},
            "text": {"type": "string", "minLength": 1},
        },
        ["rule", "text"],
    )

    def plan(self, ctx: PlanContext, step_id: str, params: dict[str, Any]) -> PlannedStep:
        text = params["text"].format(**{k: v for k, v in ctx.params.items() if isinstance(v, str)})
        return PlannedStep(
            id=step_id,
            kind=self.name,
            title=f"manual check: {text}",
            rules=[params["rule"]],
            notes=[text],
            data={"text": text},
        )

    def apply(self, ctx: ApplyContext, step: PlannedStep) -> dict[str, Any]:
        ctx.emit(f"manual check ({step.rules[0]}): {step.data['text']}")
        return {"acknowledged": True}
