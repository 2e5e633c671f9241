"""IAM step: grant the service agents that will use a key (R5)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rotator import apierrors as api
from rotator.agents import agents
from rotator.changes import Change
from rotator.model import ENCRYPTER_DECRYPTER
from rotator.steps.base import PARAM_REF, PlannedStep, StepKind, register, strict

if TYPE_CHECKING:
    from rotator.steps.base import ApplyContext, PlanContext


@register
class GrantAgents(StepKind):
    name = "iam.grant_agents"
    summary = (
        "Grant Encrypter/Decrypter on the new key to the service agent of every service that uses the old key"
    )
    rules = ["R5"]
    with_schema = strict({"key": PARAM_REF, "new_key": PARAM_REF}, ["key", "new_key"])
    param_fields = ("key", "new_key")

    def plan(self, ctx: PlanContext, step_id: str, params: dict[str, Any]) -> PlannedStep:
        key, new_key = ctx.key(params["key"]), ctx.key(params["new_key"])
        services = ctx.inventory(key).services_using()
        policy = ctx.backend.kms.get_iam_policy(new_key)
        have = set(policy.members(ENCRYPTER_DECRYPTER))
        needed = [(s, m) for s in services for m in agents(s, ctx.backend.project_number)]
        missing = [(s, m) for s, m in needed if m not in have]
        return PlannedStep(
            id=step_id,
            kind=self.name,
            title=f"grant {len(missing)} service agent(s) {ENCRYPTER_DECRYPTER} on {new_key}",
            rules=self.rules,
            targets=[new_key],
            changes=[
                {
                    "action": Change.GRANT,
                    "key": new_key,
                    "role": ENCRYPTER_DECRYPTER,
                    "member": m,
                    "service": s,
                }
                for s, m in missing
            ],
            notes=["granting needs roles/owner or roles/cloudkms.admin on the key (R5)"],
            data={"key": new_key, "members": [m for _, m in missing]},
        )

    def apply(self, ctx: ApplyContext, step: PlannedStep) -> dict[str, Any]:
        kms, key = ctx.backend.kms, step.data["key"]
        for _ in range(3):  # a concurrent IAM change moves the etag: re-read and retry
            policy = kms.get_iam_policy(key)
            members = policy.bindings.setdefault(ENCRYPTER_DECRYPTER, [])
            missing = [m for m in step.data["members"] if m not in members]
            if not missing:
                return {"granted": 0}
            members.extend(missing)
            try:
                kms.set_iam_policy(key, policy)
            except api.PreconditionFailed:
                continue
            for m in missing:
                ctx.emit(f"{key}: granted {ENCRYPTER_DECRYPTER} to {m}")
            return {"granted": len(missing)}
        raise api.PreconditionFailed(f"IAM policy of {key} kept changing; run apply again")
