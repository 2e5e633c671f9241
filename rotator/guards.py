"""The refusals: plain functions of what was inspected, one concern each, citing rules.

A use that needs the version now blocks disable; a use that needs it some day blocks
destroy (README, "What pins a version"). Disabling is reversible, destroying is not.
"""

from __future__ import annotations

from datetime import datetime

from rotator.errors import Refused
from rotator.inventory import KeyInventory
from rotator.locations import bucket_key_location_ok, key_location_for_bucket
from rotator.model import ENABLED, Bucket
from rotator.pins import PinGroup, VersionUse
from rotator.services.core import INVENTORY_UNREADABLE, OTHER_PROJECT, PRIMARY, UNCOVERED
from rotator.timeutil import format_time


def disable_blockers(
    use: VersionUse, *, retiring_key: bool = False, after_rewrite: bool = False
) -> list[PinGroup]:
    """Pins that forbid disabling. `retiring_key`: the whole key is being retired by
    replace-key (R13.4), so being primary no longer pins, but bucket defaults still do
    (R15). `after_rewrite`: assume the plan's rewrites of live objects succeed."""
    out = []
    for g in use.pins():
        if not g.spec.blocks_disable:
            continue
        if retiring_key and g.kind == PRIMARY:
            continue
        if after_rewrite and g.spec.rewritable:
            continue
        out.append(g)
    return out


def destroy_blockers(use: VersionUse) -> list[PinGroup]:
    """Pins that forbid destroying. Being primary is one of them, even when disabled:
    destroying is final, and something may still name the key (R3, R13.2)."""
    return [g for g in use.pins() if g.spec.blocks_destroy]


def frees_up(pins: list[PinGroup]) -> datetime | None:
    """When all these pins are gone: the latest date, or None if any has no date."""
    dates = [p.frees_on() for p in pins]
    if not dates or any(d is None for d in dates):
        return None
    return max(d for d in dates if d is not None)


def describe_pin(p: PinGroup) -> str:
    names = ", ".join(p.examples[:3]) + (" ..." if p.count > 3 else "")
    # The kind's own words (its spec), unless they would say no more than the resource.
    text = p.spec.describe.format(resource=p.resource, names=names, detail=p.detail)
    if p.kind in (UNCOVERED, OTHER_PROJECT, INVENTORY_UNREADABLE):
        text = _describe_inventory_pin(p)
    elif text.strip() == p.resource.strip() or not p.spec.describe:
        noun = p.kind.replace("_", " ")
        plural = "s" if p.count != 1 else ""
        text = f"{p.resource}: {p.count} {noun}{plural}"
        if p.detail:
            text += f" ({p.detail})"
        if p.examples:
            text += " e.g. " + ", ".join(p.examples[:3])
    frees = p.frees_on()
    when = f"frees {format_time(frees)}" if frees else f"frees when {p.frees_when}"
    return f"{text} [{p.rule}; {when}]"


def _describe_inventory_pin(p: PinGroup) -> str:
    """Uses only Cloud KMS Inventory knows of: by type and count, as it lists them."""
    names = (" e.g. " + ", ".join(p.examples[:3])) if p.examples and p.examples[0] != p.resource else ""
    if p.kind == UNCOVERED:
        return f"{p.resource}: {p.count}{names} (a product rotator does not manage; Cloud KMS Inventory)"
    if p.kind == OTHER_PROJECT and not p.examples:  # the summary: counts, no names
        return f"{p.resource} may use any version ({p.detail})"
    if p.kind == OTHER_PROJECT:
        return f"project {p.resource}: {p.count} resource(s){names} ({p.detail}; Cloud KMS Inventory)"
    return f"{p.resource} could not be read: any product may use this version, so it is assumed in use"


def refuse_destroy(inv: KeyInventory, numbers: list[int]) -> None:
    """Raise Refused naming every pinned version, its first pin, rule and free date."""
    lines: list[str] = []
    rules: set[str] = set()
    if inv.uninspected and numbers:
        raise Refused(
            f"{inv.key.name}: not every service was inspected ({', '.join(inv.uninspected)} left "
            "out by --services); destroying needs them all",
            resource=inv.key.name,
        )
    for n in numbers:
        use = inv.version(n)
        pins = destroy_blockers(use)
        if pins:
            frees = frees_up(pins)
            date = f"frees up {format_time(frees)}" if frees else "no date known"
            shown = "; ".join(describe_pin(p) for p in pins[:3])
            more = f"; and {len(pins) - 3} more" if len(pins) > 3 else ""
            lines.append(f"version {n} pinned ({date}) by {shown}{more}")
            rules.update(p.rule for p in pins)
        elif use.version.state == ENABLED:
            lines.append(f"version {n} is ENABLED: disable it first and watch for failures (R13.4, R4)")
            rules.add("R4")
    if lines:
        raise Refused(
            f"{inv.key.name}: " + "; ".join(lines),
            resource=inv.key.name,
            rule=",".join(sorted(rules)),
        )


def check_bucket_locations(buckets: list[Bucket], new_key: str, key_location: str) -> None:
    """Refuse a replacement key that cannot protect every bucket it must (R7)."""
    wrong = [b for b in buckets if not bucket_key_location_ok(b.location, key_location)]
    if wrong:
        b = wrong[0]
        more = f" (and {len(wrong) - 1} more buckets)" if len(wrong) > 1 else ""
        raise Refused(
            f"gs://{b.name} is in {b.location} and needs a key in "
            f"{key_location_for_bucket(b.location)}, but {new_key} is in {key_location}"
            f"{more} (R7)",
            resource=f"gs://{b.name}",
            rule="R7",
        )
