"""KMS steps: a new primary version (R2), disable what nothing pins (R3, R13.4, R14),
schedule destruction of what nothing will ever need (R1, R16, R18)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rotator import apierrors as api
from rotator import guards
from rotator.changes import Change
from rotator.errors import BadInput, Stale
from rotator.model import DESTROY_SCHEDULED, DESTROYED, DISABLED, ENABLED
from rotator.names import version_name
from rotator.pins import PinGroup
from rotator.services import PIN_KINDS
from rotator.services.core import PRIMARY
from rotator.services.firestore.spec import FIRESTORE_ACTIVE, FIRESTORE_KEY
from rotator.services.storage.spec import LIVE_OBJECT, NONCURRENT_GENERATION
from rotator.steps.base import PARAM_REF, PlannedStep, StepKind, register, strict
from rotator.steps.watch import watch_after_disable
from rotator.timeutil import format_time

if TYPE_CHECKING:
    from rotator.journal import Journal
    from rotator.steps.base import ApplyContext, PlanContext


# Keys held outside Google (Cloud EKM): Firestore masks their loss for up to an hour (R23).
EXTERNAL_LEVELS = ("EXTERNAL", "EXTERNAL_VPC")


def _states(ctx_backend: Any, key: str) -> dict[int, str]:
    return {v.number: v.state for v in ctx_backend.kms.list_crypto_key_versions(key)}


@register
class CreatePrimaryVersion(StepKind):
    name = "kms.create_primary_version"
    summary = "Create a new key version and make it the primary (a rotation)"
    rules = ["R2", "R12"]
    with_schema = strict({"key": PARAM_REF}, ["key"])
    param_fields = ("key",)

    def plan(self, ctx: PlanContext, step_id: str, params: dict[str, Any]) -> PlannedStep:
        key = ctx.key(params["key"])
        inv = ctx.inventory(key)
        before = sorted(inv.versions)
        number = (max(before) if before else 0) + 1
        # The old primary stops being primary, and bucket defaults follow the key's
        # primary (R2, R12), so neither pins the old versions once this step ran.
        ctx.resolved.update({PRIMARY, *(k for k, pin in PIN_KINDS.items() if pin.key_level)})
        if inv.key.primary is not None:
            ctx.replaced_primary[key] = inv.key.primary
        return PlannedStep(
            id=step_id,
            kind=self.name,
            title=f"create version {number} of {key} and make it primary",
            rules=self.rules,
            targets=[key],
            changes=[
                {"action": Change.CREATE_VERSION, "key": key, "expected_version": number},
                {"action": Change.SET_PRIMARY, "key": key, "from": inv.key.primary, "to": number},
            ],
            notes=[
                "new writes are encrypted with the new primary; old versions stay "
                "usable for decryption until disabled (R2, R12)"
            ],
            data={"key": key, "versions_before": before, "primary_before": inv.key.primary},
        )

    def apply(self, ctx: ApplyContext, step: PlannedStep) -> dict[str, Any]:
        kms, key = ctx.backend.kms, step.data["key"]
        before = set(step.data["versions_before"])
        created = ctx.journal.value(step.id, "created_version")
        versions = kms.list_crypto_key_versions(key)
        new = [v for v in versions if v.number not in before]
        if created is None and new:
            if not ctx.journal.started_before(step.id):
                raise Stale(
                    f"{key} has version {new[-1].number}, created after the plan; plan again",
                    resource=key,
                    rule="R2",
                )
            # A previous attempt of this very step was killed after creating it: adopt it.
            created = max(v.number for v in new if v.state == ENABLED)
        if created is None:
            primary = kms.get_crypto_key(key).primary
            if primary != step.data["primary_before"]:
                raise Stale(
                    f"{key}: primary is version {primary}, the plan saw "
                    f"{step.data['primary_before']}; plan again",
                    resource=key,
                    rule="R2",
                )
            created = kms.create_crypto_key_version(key).number
            ctx.journal.record(step.id, created_version=created)
        if kms.get_crypto_key(key).primary != created:
            kms.update_crypto_key_primary_version(key, version_name(key, created))
        ctx.emit(f"{key}: version {created} is primary")
        return {"version": created}

    verifies = True

    def verify(self, ctx: ApplyContext, step: PlannedStep, result: dict[str, Any]) -> list[str]:
        key, made = step.data["key"], result.get("version")
        primary = ctx.backend.kms.get_crypto_key(key).primary
        if made is not None and primary != made:
            return [f"{key}: primary is version {primary}, not version {made} that the apply made primary"]
        return []

    def rotation(self, step: PlannedStep, journal: Journal) -> tuple[str, int, int] | None:
        # Recorded when it was created, or (a version adopted after a crash) in the result.
        made = journal.value(step.id, "created_version")
        if made is None:
            made = (journal.value(step.id, "result") or {}).get("version")
        before = step.data.get("primary_before")
        if made is not None and before is not None:
            return str(step.data["key"]), int(made), int(before)
        return None


@register
class DisableVersions(StepKind):
    name = "kms.disable_versions"
    summary = (
        "Disable key versions; in safe mode only those nothing pins (the rest are "
        "reported), in emergency mode all of them"
    )
    rules = ["R3", "R4", "R13", "R14", "R15", "R16", "R18"]
    with_schema = strict(
        {
            "key": PARAM_REF,
            "scope": {"enum": ["old_versions", "all_versions"]},
            "mode": {"enum": ["safe", "emergency"]},
        },
        ["key", "scope"],
    )
    param_fields = ("key",)

    def plan(self, ctx: PlanContext, step_id: str, params: dict[str, Any]) -> PlannedStep:
        key = ctx.key(params["key"])
        inv = ctx.inventory(key)
        emergency = params.get("mode", "safe") == "emergency"
        retiring_key = params["scope"] == "all_versions"
        disable, keep, blockers, impact = [], {}, [], []
        versioned = {f"gs://{b.name}" for b in inv.buckets if b.versioning}
        for n, use in sorted(inv.versions.items()):
            if use.version.state != ENABLED:
                continue
            if emergency:
                disable.append(n)
                impact += [
                    dict(g.to_json(), version=n, impact=g.spec.impact)
                    for g in use.pins()
                    if g.kind != PRIMARY
                ]
                continue
            pins = [
                p
                for p in expected_pins_after(
                    guards.disable_blockers(use, retiring_key=retiring_key), ctx.resolved, versioned
                )
                if (p.kind, p.resource) not in ctx.resolved_uses
            ] + ctx.added_pins.get((key, n), [])
            if inv.uninspected:
                # What was not looked at may still use the version: the safe side (rotator.rules).
                keep[n] = [
                    f"services not inspected (--services): {', '.join(inv.uninspected)}; assumed in use"
                ] + [guards.describe_pin(p) for p in pins]
            elif pins:
                keep[n] = [guards.describe_pin(p) for p in pins]
                blockers += [dict(p.to_json(), version=n) for p in pins]
            else:
                disable.append(n)
        title = (
            f"disable every version of {key}" if emergency else f"disable versions of {key} that nothing pins"
        )
        notes = [
            "a disable can take up to 3 hours to take effect everywhere (R4); "
            "re-enabling restores access (R14)"
        ]
        if emergency:
            notes.append(
                "EMERGENCY: data under these versions becomes unreadable and "
                "writes naming the key fail until re-enabled (R14, R15)"
            )
            if inv.key.protection_level in EXTERNAL_LEVELS:
                serving = (FIRESTORE_KEY, FIRESTORE_ACTIVE)
                databases = {str(b["resource"]) for b in impact if b["kind"] in serving}
                notes += [
                    f"{db}: under an EXTERNAL key; disabling here stops it within 10 minutes (R22), "
                    "but a revocation made only at the external key manager leaves it serving for up "
                    "to 1 hour before Firestore takes it offline (R23)"
                    for db in sorted(databases)
                ]
        return PlannedStep(
            id=step_id,
            kind=self.name,
            title=title,
            rules=self.rules,
            targets=[key],
            changes=[{"action": Change.DISABLE, "version": version_name(key, n)} for n in disable],
            blockers=blockers + impact,
            notes=notes,
            data={
                "key": key,
                "disable": disable,
                "keep": {str(k): v for k, v in keep.items()},
                "mode": "emergency" if emergency else "safe",
                "retiring_key": retiring_key,
            },
        )

    def asks_for_key_id(self, step: PlannedStep) -> bool:
        return bool(step.data["disable"]) and step.data["mode"] == "emergency"

    def apply(self, ctx: ApplyContext, step: PlannedStep) -> dict[str, Any]:
        key, todo = step.data["key"], step.data["disable"]
        kms = ctx.backend.kms
        if not todo:
            return {"disabled": []}
        states = _states(ctx.backend, key)
        if step.data["mode"] == "safe":
            inv = ctx.fresh_inventory(key)
            for n in todo:
                if states.get(n) not in (ENABLED, DISABLED):
                    raise Stale(f"{version_name(key, n)} is {states.get(n)}; plan again", resource=key)
                pins = guards.disable_blockers(inv.version(n), retiring_key=step.data["retiring_key"])
                if pins:
                    raise Stale(
                        f"{version_name(key, n)} is still pinned: "
                        f"{guards.describe_pin(pins[0])}; nothing was disabled; plan again",
                        resource=version_name(key, n),
                        rule=pins[0].rule,
                    )
        if step.data["mode"] == "emergency":
            extra = sorted(n for n, st in states.items() if st == ENABLED and n not in todo)
            if extra:
                raise Stale(
                    f"{key}: version(s) {', '.join(map(str, extra))} are ENABLED but were not in "
                    "the plan (a new primary, or re-enabled since); plan disable-key again",
                    resource=key,
                )
        done = []
        for n in todo:
            name = version_name(key, n)
            if states.get(n) == DISABLED:
                continue  # a previous attempt got here (or someone did): the goal holds
            if states.get(n) != ENABLED:
                raise Stale(f"{name} is {states.get(n)}; plan again", resource=name)
            kms.update_crypto_key_version(name, DISABLED)
            ctx.journal.record(step.id, disabled=n)
            done.append(n)
            ctx.emit(f"{name}: DISABLED")
        return {"disabled": todo}

    def after_apply(self, ctx: ApplyContext, step: PlannedStep, result: dict[str, Any]) -> None:
        if ctx.watch and step.data.get("mode") == "safe":
            watch_after_disable(ctx, step, result)

    verifies = True

    def verify(self, ctx: ApplyContext, step: PlannedStep, result: dict[str, Any]) -> list[str]:
        key = step.data["key"]
        states = _states(ctx.backend, key)
        drift = [
            f"{version_name(key, n)} is {states.get(n)} again (the apply disabled it)"
            for n in result.get("disabled", [])
            if states.get(n) == ENABLED
        ]
        if step.data["mode"] == "emergency":  # the goal: nothing of the key usable
            drift += [
                f"{version_name(key, n)} is ENABLED (made since the apply)"
                for n, state in sorted(states.items())
                if state == ENABLED and n not in result.get("disabled", [])
            ]
        return drift


def expected_pins_after(pins: list[PinGroup], resolved: set[str], versioned: set[str]) -> list[PinGroup]:
    """The pins left once the plan's earlier steps ran. A rewrite frees live objects,
    except in a versioned bucket, where each rewrite leaves a noncurrent generation
    under the old version (R18): that still pins it."""
    left = []
    for g in pins:
        if g.kind == LIVE_OBJECT and LIVE_OBJECT in resolved and g.resource in versioned:
            left.append(
                PinGroup(
                    NONCURRENT_GENERATION,
                    g.resource,
                    g.count,
                    g.bytes,
                    None,
                    True,
                    g.examples,
                    "left by the planned rewrite",
                )
            )
        elif g.kind not in resolved:
            left.append(g)
    return left


def parse_versions(value: Any) -> list[int]:
    items = value if isinstance(value, list) else str(value).split(",")
    out = []
    for item in items:
        text = str(item).strip().rsplit("/", 1)[-1]
        if not text.isdigit() or int(text) < 1:
            raise BadInput(f"versions: {item!r} is not a version number (e.g. versions=1,2)")
        out.append(int(text))
    if not out:
        raise BadInput("versions: give at least one version number (e.g. versions=1,2)")
    return sorted(set(out))


@register
class DestroyVersions(StepKind):
    name = "kms.destroy_versions"
    summary = (
        "Schedule destruction of disabled versions, refusing every version still "
        "pinned, with the date it frees up"
    )
    rules = ["R1", "R14", "R16", "R18"]
    with_schema = strict({"key": PARAM_REF, "versions": PARAM_REF}, ["key", "versions"])
    param_fields = ("key", "versions")

    def plan(self, ctx: PlanContext, step_id: str, params: dict[str, Any]) -> PlannedStep:
        key = ctx.key(params["key"])
        numbers = parse_versions(ctx.param(params["versions"]))
        inv = ctx.inventory(key)
        missing = [n for n in numbers if n not in inv.versions]
        if missing:
            raise BadInput(
                f"versions: {key} has no version {missing[0]} (it has "
                f"{', '.join(map(str, sorted(inv.versions)))})",
                resource=key,
                rule="R1",
            )
        todo = [n for n in numbers if inv.version(n).version.state not in (DESTROY_SCHEDULED, DESTROYED)]
        guards.refuse_destroy(inv, todo)
        done = [n for n in numbers if n not in todo]
        when = inv.now + inv.key.destroy_scheduled_duration
        return PlannedStep(
            id=step_id,
            kind=self.name,
            title=f"schedule destruction of versions {', '.join(map(str, todo)) or '(none)'} of {key}",
            rules=self.rules,
            targets=[key],
            changes=[
                {
                    "action": Change.DESTROY,
                    "version": version_name(key, n),
                    "destroyed_after": format_time(when),
                }
                for n in todo
            ],
            notes=[f"version {n} is already {inv.version(n).version.state}" for n in done]
            + [
                f"DESTROY_SCHEDULED for {inv.key.destroy_scheduled_duration.days} days; "
                "`restore` brings a version back as DISABLED until then; after that it is "
                "gone for good (R1)"
            ],
            data={"key": key, "destroy": todo},
        )

    def asks_for_key_id(self, step: PlannedStep) -> bool:
        return bool(step.data["destroy"])

    def apply(self, ctx: ApplyContext, step: PlannedStep) -> dict[str, Any]:
        key, todo = step.data["key"], step.data["destroy"]
        if not todo:
            return {"destroyed": []}
        inv = ctx.fresh_inventory(key)
        pending = [n for n in todo if inv.version(n).version.state not in (DESTROY_SCHEDULED, DESTROYED)]
        guards.refuse_destroy(inv, pending)  # re-check every pin right before (exit 3)
        out = {}
        for n in pending:
            name = version_name(key, n)
            try:
                v = ctx.backend.kms.destroy_crypto_key_version(name)
            except api.FailedPrecondition:
                # A retried call whose first answer was lost finds it already scheduled.
                v = ctx.backend.kms.get_crypto_key_version(name)
                if v.state not in (DESTROY_SCHEDULED, DESTROYED):
                    raise
            ctx.journal.record(step.id, destroyed=n)
            out[str(n)] = format_time(v.destroy_time) if v.destroy_time else None
            ctx.emit(f"{v.name}: DESTROY_SCHEDULED until {out[str(n)]}")
        return {"destroy_scheduled": out}

    verifies = True

    def verify(self, ctx: ApplyContext, step: PlannedStep, result: dict[str, Any]) -> list[str]:
        key = step.data["key"]
        states = _states(ctx.backend, key)
        return [
            f"{version_name(key, n)} is {states.get(int(n))} (restored since the apply scheduled "
            "its destruction)"
            for n in step.data["destroy"]
            if states.get(int(n)) not in (DESTROY_SCHEDULED, DESTROYED)
        ]
