"""Location preflight (R7): before any change, refuse a new key that cannot protect
every resource the old key does and that will move to it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rotator import guards
from rotator.errors import Refused
from rotator.inventory import KeyInventory
from rotator.locations import LocationTarget
from rotator.model import ENABLED
from rotator.names import parse_key
from rotator.services import REGISTRY, part
from rotator.services.storage import steps as storage_steps
from rotator.services.storage.spec import SPEC as STORAGE
from rotator.steps.base import PARAM_REF, PlannedStep, StepKind, register, strict

if TYPE_CHECKING:
    from rotator.steps.base import ApplyContext, PlanContext


def _location_targets(ctx: PlanContext, key: str) -> list[LocationTarget]:
    """What moves to the new key besides buckets, and the location each needs it in:
    each service says, in its package's `location_targets` (R7)."""
    inventory = ctx.inventory(key)
    targets: list[LocationTarget] = []
    for service in REGISTRY:
        uses = part(service.name, "uses")
        if hasattr(uses, "location_targets"):
            targets += uses.location_targets(ctx.backend, inventory, ctx.params)
    return targets


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


def check_regional(targets: list[LocationTarget], new_key: str, location: str) -> None:
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
        regional = _location_targets(ctx, key)
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
