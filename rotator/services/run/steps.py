"""Cloud Run step: deploy a new revision of each service that still serves from a
retiring version, or (replace-key) names the old key (R40, R41, R43)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rotator.changes import Change
from rotator.errors import Stale
from rotator.names import version_number
from rotator.services.run.spec import RUN_KEY, RUN_SERVING, RUN_WINDOW
from rotator.services.run.spec import SPEC as RUN
from rotator.services.run.uses import inspected_run_services
from rotator.steps.base import PARAM_REF, PlannedStep, StepKind, register, strict
from rotator.windows import redeploy_window_pin

if TYPE_CHECKING:
    from rotator.steps.base import ApplyContext, PlanContext


@register
class RedeployServices(StepKind):
    name = "run.redeploy_services"
    summary = (
        "Deploy a new revision of every Cloud Run service serving from a retiring version "
        "(or naming the old key), so it leaves that version"
    )
    rules = ["R40", "R41", "R43"]
    with_schema = strict({"key": PARAM_REF, "to": PARAM_REF}, ["key", "to"])
    param_fields = ("key", "to")

    def plan(self, ctx: PlanContext, step_id: str, params: dict[str, Any]) -> PlannedStep:
        key, dest = ctx.key(params["key"]), ctx.key(params["to"])
        inv = ctx.inventory(key)
        retiring = set(inv.versions)
        changes, notes, services = [], [], []
        if "run" in inv.uninspected:
            return PlannedStep(step_id, self.name, "Cloud Run not inspected (--services)", self.rules)
        for svc in inspected_run_services(ctx.backend, key, ctx.projects):
            latest = svc.latest
            if latest is None:
                continue
            serving_old = [
                r for r in svc.revisions if r.serving and version_number(key, r.kms_key_version) in retiring
            ]
            if not serving_old and latest.kms_key != key:
                continue
            services.append(svc.name)
            changes.append(
                {
                    "action": Change.DEPLOY_REVISION,
                    "service": svc.name,
                    "from": latest.name,
                    "to_key": dest,
                    "traffic_percent": latest.traffic_percent,
                }
            )
            ctx.resolved_uses.add((RUN_KEY, svc.name))
            # A new revision takes only the traffic that follows "latest": a share pinned
            # to a revision by name, and every tag, stay where they are.
            pinned = [r for r in serving_old if r.name != latest.name or r.pinned or r.tags]
            if pinned:
                notes.append(
                    f"{svc.name}: traffic pinned or tagged to {', '.join(r.name for r in pinned)} stays on "
                    "the old version; move it to the new revision (gcloud run services update-traffic, "
                    "--update-tags) and plan again (R43)"
                )
            else:
                ctx.resolved_uses.update({(RUN_SERVING, svc.name), (RUN_WINDOW, svc.name)})
            replaced = ctx.replaced_primary.get(key)
            if dest == key and replaced is not None:
                # Deployed right after this plan's rotation: the new revision may still be
                # encrypted under the primary it replaces (Cloud KMS propagation, R43).
                pin = redeploy_window_pin(RUN_WINDOW, svc.name, "its new revision")
                ctx.added_pins.setdefault((key, replaced), []).append(pin)
        return PlannedStep(
            id=step_id,
            kind=self.name,
            title=f"deploy a new revision of {len(services)} Cloud Run service(s) under {dest}",
            rules=self.rules,
            targets=services,
            changes=changes,
            notes=notes,
            data={"key": key, "to": dest, "retiring": sorted(retiring), "services": services},
        )

    def apply(self, ctx: ApplyContext, step: PlannedStep) -> dict[str, Any]:
        key, dest = step.data["key"], step.data["to"]
        retiring = set(step.data["retiring"])
        deployed = 0
        for name in step.data["services"]:
            latest = RUN.api(ctx.backend).get_service(name).latest
            if latest is None:
                raise Stale(f"{name} has no revision any more; plan again", resource=name)
            version = version_number(key, latest.kms_key_version) if dest == key else None
            moved = latest.kms_key == dest and (
                dest != key or (version is not None and version not in retiring)
            )
            if moved:
                continue  # already moved (an earlier attempt, or someone else); an unknown version is not
            if dest == key:
                svc = RUN.api(ctx.backend).update_service(name)
            else:
                svc = RUN.api(ctx.backend).update_service(name, kms_key=dest)
            deployed += 1
            ctx.emit(f"{name}: new revision {svc.latest.name if svc.latest else '?'} under {dest}")
        return {"services_redeployed": deployed}
