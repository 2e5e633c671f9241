"""Rollback of an applied plan: re-enable what it disabled and restore what it
scheduled for destruction, while the destroy window is open (R1, R14). Data that was
rewritten stays under the new version (still readable); a new primary stays primary."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from rotator import apierrors as api
from rotator.changes import Change
from rotator.errors import BadInput, Refused
from rotator.journal import append_event, events_of, plan_life
from rotator.liveness import apply_alive
from rotator.model import DESTROY_SCHEDULED, DESTROYED, DISABLED, ENABLED
from rotator.names import parse_key
from rotator.places import Place, open_place
from rotator.plandoc import load_plan
from rotator.planfiles import refuse_live_apply
from rotator.steps.base import PARAM_REF, PlannedStep, StepKind, register, strict
from rotator.timeutil import format_time

if TYPE_CHECKING:
    from rotator.steps.base import ApplyContext, PlanContext


def states_before(plan_file: str) -> dict[int, str]:
    """Each version's state when the plan was made (what a rollback returns it to)."""
    doc, _ = load_plan(plan_file)
    return {int(n): s for n, s in doc["expect"]["versions"].items()}


def changed_by(plan_file: str) -> tuple[str, set[int], set[int]]:
    """The key of a saved plan, and the versions its apply disabled and destroyed (from
    its journal)."""
    doc, _ = load_plan(plan_file)
    place = open_place(plan_file)
    events = events_of(place)
    if not events:
        raise BadInput(
            f"{plan_file} was never applied (no journal {place.journal_name()}): nothing to roll back",
            resource=plan_file,
        )
    disabled: set[int] = set()
    destroyed: set[int] = set()
    for e in events:
        if e.get("event") == "record":
            if "disabled" in e:
                disabled.add(int(e["disabled"]))
            if "destroyed" in e:
                destroyed.add(int(e["destroyed"]))
    return doc["params"]["key"], disabled, destroyed


def snapshots_taken(plan_file: str) -> list[str]:
    return [
        k.split(":", 1)[1]
        for e in events_of(open_place(plan_file))
        if e.get("event") == "record"
        for k in e
        if k.startswith("snapshot:")
    ]


@register
class RollbackPlan(StepKind):
    name = "kms.rollback_plan"
    summary = (
        "Re-enable the versions an applied plan disabled and restore those it scheduled "
        "for destruction (within the destroy window)"
    )
    rules = ["R1", "R14"]
    with_schema = strict({"key": PARAM_REF, "plan": PARAM_REF}, ["key", "plan"])
    param_fields = ("key", "plan")

    def plan(self, ctx: PlanContext, step_id: str, params: dict[str, Any]) -> PlannedStep:
        key = ctx.key(params["key"])
        plan_file = str(ctx.param(params["plan"]))
        plan_key, disabled, destroyed = changed_by(plan_file)
        if plan_key != key:
            raise BadInput(f"{plan_file} acted on {plan_key}, not {key}", resource=plan_file)
        versions = {v.number: v for v in ctx.backend.kms.list_crypto_key_versions(key)}
        before = states_before(plan_file)
        changes, notes, lost = [], [], []
        for n in sorted(destroyed | disabled):
            v = versions.get(n)
            name = str(parse_key(key).version(n))
            if v is None:
                continue
            if v.state == DESTROYED:
                lost.append(n)
            elif v.state == DESTROY_SCHEDULED:
                changes.append(
                    {
                        "action": Change.RESTORE,
                        "version": name,
                        "destroy_time": format_time(v.destroy_time) if v.destroy_time else None,
                    }
                )
                # Restored versions come back DISABLED; enable only what was enabled before.
                if before.get(n) == ENABLED:
                    changes.append({"action": Change.ENABLE, "version": name})
            elif v.state == DISABLED:
                changes.append({"action": Change.ENABLE, "version": name})
            else:
                notes.append(f"version {n} is already {v.state}")
        if lost:
            raise Refused(
                f"{key}: version(s) {', '.join(map(str, lost))} are DESTROYED: the destroy window has "
                "passed and they cannot come back (R1); nothing was changed",
                resource=key,
                rule="R1",
            )
        notes.append(
            "rewritten objects stay under the new version (still readable) and a new primary "
            "stays primary; only the disables and destructions are undone"
        )
        for job in snapshots_taken(plan_file):
            notes.append(
                f"Dataflow job {job} was cancelled by the disable and stays cancelled (R31): "
                "relaunch it from the snapshot rotator took"
            )
        return PlannedStep(
            id=step_id,
            kind=self.name,
            title=f"roll back what {os.path.basename(plan_file)} did to {key}",
            rules=self.rules,
            targets=[key],
            changes=changes,
            notes=notes,
            data={
                "key": key,
                "plan": plan_file,
                "restore": [c["version"] for c in changes if c["action"] == Change.RESTORE],
                "enable": [c["version"] for c in changes if c["action"] == Change.ENABLE],
            },
        )

    def apply(self, ctx: ApplyContext, step: PlannedStep) -> dict[str, Any]:
        # The rolled-back plan's journal is appended to: hold that plan's lock (a gs:// lock
        # object; locally the key's lock this apply holds) so a live apply of it, here or on
        # another machine, can never race the rollback. Refused before anything changes.
        original = open_place(step.data["plan"])
        life = plan_life(events_of(original), alive=apply_alive(original))
        refuse_live_apply(original, life, f"rollback of {original.name}", "nothing was changed")
        with original.lock(ctx.emit, on_lost=ctx.stop.abort):
            return self._roll_back(ctx, step, original)

    def _roll_back(self, ctx: ApplyContext, step: PlannedStep, original: Place) -> dict[str, Any]:
        kms = ctx.backend.kms
        restored, enabled = [], []
        for name in step.data["restore"]:
            if kms.get_crypto_key_version(name).state == DESTROY_SCHEDULED:
                try:
                    kms.restore_crypto_key_version(name)  # comes back DISABLED (R1)
                except api.FailedPrecondition:
                    # A retried call whose first answer was lost finds it already restored.
                    if kms.get_crypto_key_version(name).state == DESTROY_SCHEDULED:
                        raise
                restored.append(name)
                ctx.emit(f"{name}: restored (DISABLED)")
        for name in step.data["enable"]:
            if kms.get_crypto_key_version(name).state == DISABLED:
                kms.update_crypto_key_version(name, ENABLED)
                enabled.append(name)
                ctx.emit(f"{name}: ENABLED")
        # The rolled-back plan's life ends here: a re-apply of it re-checks the world
        # and finds it drifted, instead of skipping its done steps (issue: honest re-apply).
        events = events_of(original)
        if events:
            # `completed` keeps visible whether the plan ever finished: one rolled back
            # part-way was never applied, and a re-apply of it is stale, not "already applied".
            completed = any(e.get("event") == "complete" for e in events)
            append_event(original, {"event": "rolled_back", "by": ctx.plan_path, "completed": completed})
        return {"restored": restored, "enabled": enabled}

    verifies = True

    def verify(self, ctx: ApplyContext, step: PlannedStep, result: dict[str, Any]) -> list[str]:
        kms = ctx.backend.kms
        return [
            f"{name} is {kms.get_crypto_key_version(name).state} (the rollback enabled it)"
            for name in step.data["enable"]
            if kms.get_crypto_key_version(name).state != ENABLED
        ]
