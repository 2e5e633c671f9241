"""Plan files on disk and the applies beside them: what `plan --out` may overwrite,
which other plans of a key are unfinished, and what `status` without a plan lists."""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Iterable
from typing import Any

from rotator.errors import BadInput, Refused, RotatorError
from rotator.journal import APPLYING, UNFINISHED, events_of, plan_life
from rotator.liveness import apply_alive, lock_is_live
from rotator.places import GcsPlace, Place, is_gcs, open_place, refuse_state_under_plan_key
from rotator.plandoc import load_plan, write_plan


def life_of(plan_path: str) -> dict[str, Any]:
    return place_life(open_place(plan_path))


def place_life(place: Place) -> dict[str, Any]:
    """Where the apply of the plan at `place` stands, judged by its journal and liveness."""
    return plan_life(events_of(place), alive=apply_alive(place))


def check_out(out: str, force: bool, formats: Iterable[str]) -> None:
    """Before planning: --out must name a plan file, and never one whose apply is
    unfinished (overwriting it would start that apply again from scratch)."""
    if out in formats:
        raise BadInput(
            f"--out {out}: --out names the plan file to write; for {out} on stdout use "
            f"--output {out} (or -o {out})",
            resource=out,
        )
    if not is_gcs(out) and os.path.isdir(out):
        raise BadInput(f"--out {out} is a directory", resource=out)
    place = open_place(out)
    life = place_life(place)
    refuse_live_apply(place, life, f"--out {out}", "nothing was written")
    if life["state"] in UNFINISHED and not force:
        raise BadInput(
            f"--out {out}: the plan there has an unfinished apply ({life['state']}); nothing was "
            f"written; finish it with `rotator apply {out}`, write the new plan to another file, "
            "or pass --force (its journal is then kept beside it)",
            resource=out,
        )


def live_holder(place: Place, life: dict[str, Any]) -> str | None:
    """Who is applying the plan right now (a live process of its last run, or a live lock
    object in the bucket), or None."""
    if isinstance(place, GcsPlace):
        held = place.lock_holder()
        if held is not None and lock_is_live(held):
            return (
                f"pid {held.get('pid')} on {held.get('host')} (lock gs://{place.bucket}/{place.object}.lock)"
            )
    if life["state"] == APPLYING:
        return f"pid {life.get('pid')} on {life.get('host')}"
    return None


def refuse_live_apply(place: Place, life: dict[str, Any], what: str, unchanged: str) -> None:
    """A plan a live apply holds is not written over nor appended to, --force or not."""
    holder = live_holder(place, life)
    if holder is not None:
        raise Refused(
            f"{what}: {place.name} is being applied by {holder} now; {unchanged}; wait for it "
            f"to end (`rotator status {place.name}`)",
            resource=place.name,
        )


def move_old_journal(out: str) -> str | None:
    """The journal of the plan being replaced is history: kept, under a new name."""
    return open_place(out).move_old_journal()


def _plans_with_journals(folder: str) -> list[str]:
    return sorted(p[: -len(".journal")] for p in glob.glob(os.path.join(folder, "*.journal")))


def unfinished_applies(folder: str) -> list[dict[str, Any]]:
    """Every plan in `folder` whose apply began and did not finish."""
    found = []
    for plan_path in _plans_with_journals(folder):
        try:
            life = life_of(plan_path)
            if life["state"] not in UNFINISHED:
                continue
            doc, _ = load_plan(plan_path)
        except RotatorError:
            continue  # not a readable plan: not ours to list
        found.append(
            {
                "plan": os.path.relpath(plan_path),
                "key": doc["params"]["key"],
                "playbook": doc["playbook"]["name"],
                "life": life,
            }
        )
    return found


def warn_unfinished(key: str, out: str | None) -> list[str]:
    """Warnings about other plans on the same key whose apply is unfinished (in the
    current directory and beside --out)."""
    folders = {os.path.abspath(".")}
    if out and not is_gcs(out):
        folders.add(os.path.abspath(os.path.dirname(out) or "."))
    warnings = []
    for folder in sorted(folders):
        for a in unfinished_applies(folder):
            same = out and os.path.abspath(a["plan"]) == os.path.abspath(out)
            if a["key"] == key and not same:
                warnings.append(
                    f"warning: {a['plan']} ({a['playbook']}) on the same key is unfinished "
                    f"({a['life']['state']}); finish it (`rotator apply {a['plan']}`) before applying "
                    "this one"
                )
    return warnings


def save_plan(doc: dict[str, Any], out: str | None, say: Callable[[str], None]) -> None:
    """After planning: warn of unfinished plans on the same key and, with --out, write
    the plan, refusing a place the plan's key protects (its state would become
    unreadable with it) and moving the journal of a plan it replaces aside."""
    if out:
        refuse_state_under_plan_key(open_place(out), doc)
    for warning in warn_unfinished(doc["params"]["key"], out):
        say(warning)
    if out:
        moved = move_old_journal(out)
        if moved:
            say(f"the journal of the plan {out} replaces was moved to {moved}")
        write_plan(out, doc)
