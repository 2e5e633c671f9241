"""Location preflight (R7): before any change, refuse a new key that cannot protect
every resource the old key does and that will move to it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rotator import guards
from rotator.errors import Refused
from rotator.inventory import KeyInventory
from rotator.locations import key_location_for_database
from rotator.model import ENABLED
from rotator.names import is_version_of, parse_key
from rotator.services.firestore.spec import SPEC as FIRESTORE
from rotator.services.functions.spec import SPEC as FUNCTIONS
from rotator.services.run.uses import run_services
from rotator.services.storage import steps as storage_steps
from rotator.services.storage.spec import SPEC as STORAGE
from rotator.steps.base import PARAM_REF, PlannedStep, StepKind, register, strict

if TYPE_CHECKING:
    from rotator.steps.base import ApplyContext, PlanContext


# (resource, where it is, the key location it needs)
Target = tuple[str, str, str]


def _regional_targets(ctx: PlanContext, key: str) -> list[Target]:
    """Cloud Run services and functions that will move: same region as the key (R7)."""
    out = []
    inv = ctx.inventory(key)
    if "run" not in inv.uninspected:
        for svc in run_services(ctx.backend, key):
            if any(r.kms_key == key or is_version_of(r.kms_key_version, key) for r in svc.revisions):
                out.append((svc.name, svc.region, svc.region))
    if "functions" not in inv.uninspected:
        for fn in FUNCTIONS.reads(ctx.backend).list_functions():
            if fn.kms_key == key or is_version_of(fn.kms_key_version, key):
                out.append((fn.name, fn.region, fn.region))
    return out


def _firestore_targets(ctx: PlanContext, key: str) -> list[Target]:
    return [
        (d.name, d.location, key_location_for_database(d.location))
        for d in FIRESTORE.reads(ctx.backend).list_databases()
        if d.kms_key == key
    ]


def check_can_encrypt(inv: KeyInventory, new_key: str) -> None:
    """Everything moves to the new key's primary: without an ENABLED one every move
    would fail half-way (R3, R15)."""
    primary = inv.versions.get(inv.key.primary) if inv.key.primary is not None else None
    if primary is None or primary.version.state != ENABLED:
        state = primary.version.state if primary else "missing"
        raise Refused(
            f"{new_key} cannot encrypt: its primary version is {state}; make an enabled "
            "version primary first",
            resource=new_key,
            rule="R3",
        )


def check_regional(targets: list[Target], new_key: str, location: str) -> None:
    wrong = [t for t in targets if t[2] != location]
    if wrong:
        name, where, needed = wrong[0]
        more = f" (and {len(wrong) - 1} more)" if len(wrong) > 1 else ""
        raise Refused(
            f"{name} is in {where} and needs a key in {needed}, but {new_key} is in {location}{more} (R7)",
            resource=name,
            rule="R7",
        )


@register
class CheckKeyLocations(StepKind):
    name = "preflight.key_locations"
    summary = "Refuse, before any change, a new key that cannot protect every resource that moves to it"
    rules = ["R7"]
    with_schema = strict({"key": PARAM_REF, "new_key": PARAM_REF}, ["key", "new_key"])
    param_fields = ("key", "new_key")

    def plan(self, ctx: PlanContext, step_id: str, params: dict[str, Any]) -> PlannedStep:
        key, new_key = ctx.key(params["key"]), ctx.key(params["new_key"])
        check_can_encrypt(ctx.inventory(new_key), new_key)
        location = parse_key(new_key).location
        buckets = storage_steps.buckets_using(ctx, key)
        guards.check_bucket_locations(buckets, new_key, location)
        regional = _regional_targets(ctx, key)
        if ctx.params.get("firestore") == "restore":
            regional += _firestore_targets(ctx, key)
        check_regional(regional, new_key, location)
        targets = [f"gs://{b.name}" for b in buckets] + [t[0] for t in regional]
        return PlannedStep(
            id=step_id,
            kind=self.name,
            title=f"check that {new_key} ({location}) can protect {len(targets)} resource(s)",
            rules=self.rules,
            targets=targets,
            data={
                "new_key": new_key,
                "location": location,
                "buckets": [b.name for b in buckets],
                "regional": [list(t) for t in regional],
            },
        )

    def apply(self, ctx: ApplyContext, step: PlannedStep) -> dict[str, Any]:
        from rotator.inventory import scan_key

        check_can_encrypt(scan_key(ctx.backend, step.data["new_key"], services=()), step.data["new_key"])
        buckets = [STORAGE.api(ctx.backend).get_bucket(b) for b in step.data["buckets"]]
        guards.check_bucket_locations(buckets, step.data["new_key"], step.data["location"])
        check_regional(
            [(t[0], t[1], t[2]) for t in step.data["regional"]],
            step.data["new_key"],
            step.data["location"],
        )
        return {"checked": len(step.data["buckets"]) + len(step.data["regional"])}
