"""The apply journal: JSON lines beside the plan, so a re-run resumes where a killed
or failed apply stopped (a failed step stays pending and reruns, like a migration
ledger). Step boundaries are synced to disk; progress checkpoints are only flushed,
so a million rewrites do not cost a million disk syncs. Correctness never depends on
a checkpoint: every step re-checks the world before it changes anything.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rotator.errors import BadInput
from rotator.liveness import process_alive
from rotator.places import LocalPlace, Place


def journal_path(plan_path: str) -> str:
    return f"{plan_path}.journal"


def _stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Journal:
    def __init__(self, place: Place | str, plan_sha256: str):
        """The journal of the plan at `place` (a Place, or a local journal file's path)."""
        if isinstance(place, str):
            place = LocalPlace(place.removesuffix(".journal"))
        self.place = place
        self.path = place.journal_name()
        self.plan_sha256 = plan_sha256
        lines = place.journal_lines()
        self.events: list[dict[str, Any]] = list(parse_events(lines, self.path)) if lines is not None else []
        check_belongs(self.path, self.events, plan_sha256)
        self._writer = place.journal_writer()
        if not self.events:
            self._write({"event": "begin", "plan_sha256": plan_sha256}, sync=True)
        # Events before this index were written by earlier runs (see started_before).
        self._earlier = len(self.events)
        self._write({"event": "run", "pid": os.getpid(), "host": socket.gethostname()}, sync=True)

    def _write(self, event: dict[str, Any], *, sync: bool) -> None:
        event = {"t": _stamp(), **event}
        self._writer.write(json.dumps(event, sort_keys=True), sync=sync)
        self.events.append(event)

    def close(self) -> None:
        self._writer.close()

    # -- step life cycle ----------------------------------------------------------------
    def is_done(self, step: str) -> bool:
        return any(e.get("step") == step and e["event"] == "done" for e in self.events)

    def started_before(self, step: str) -> bool:
        """Did an earlier run start this step (and perhaps die inside it)?"""
        return any(e.get("step") == step and e["event"] == "start" for e in self.events[: self._earlier])

    @property
    def earlier_count(self) -> int:
        """How many events earlier runs wrote (this run's start with its `run` event)."""
        return self._earlier

    def resume_point(self) -> None:
        """From here on, what was journaled counts as an earlier run's: a step re-run
        after a transient failure re-checks the world exactly as a resumed apply does."""
        self._earlier = len(self.events)

    def start(self, step: str) -> None:
        self._write({"event": "start", "step": step}, sync=True)

    def done(self, step: str, result: dict[str, Any]) -> None:
        self._write({"event": "done", "step": step, "result": result}, sync=True)

    def failed(self, step: str, kind: str, message: str) -> None:
        self._write({"event": "failed", "step": step, "kind": kind, "message": message}, sync=True)

    def record(self, step: str, **values: Any) -> None:
        """A fact a resumed step needs (e.g. the version it created), synced."""
        self._write({"event": "record", "step": step, **values}, sync=True)

    def checkpoint(self, step: str, **values: Any) -> None:
        self._write({"event": "checkpoint", "step": step, **values}, sync=False)

    def complete(self) -> None:
        self._write({"event": "complete"}, sync=True)

    def interrupted(self, step: str | None, signal_name: str) -> None:
        self._write({"event": "interrupted", "step": step, "signal": signal_name}, sync=True)

    def verified(self, applied_at: str) -> None:
        """A re-apply of a done plan found its goal still true (and did nothing)."""
        self._write({"event": "verified", "applied": applied_at}, sync=True)

    def value(self, step: str, name: str) -> Any:
        for e in reversed(self.events):
            if e.get("step") == step and name in e:
                return e[name]
        return None


def check_belongs(path: str, events: list[dict[str, Any]], plan_sha256: str) -> None:
    """A journal is for one plan (its digest). Another plan's journal is never renamed or
    reused silently: `plan --out --force` moves it aside and says where."""
    begun = [e for e in events if e.get("event") == "begin"]
    if begun and begun[0].get("plan_sha256") != plan_sha256:
        raise BadInput(
            f"journal {path} belongs to another plan (digest {str(begun[0].get('plan_sha256'))[:12]}...); "
            "the plan file was replaced after an apply began; nothing was changed; restore that plan "
            "or move the journal away",
            resource=path,
        )


def append_event(place: Place, event: dict[str, Any]) -> None:
    """One event at the end of another plan's journal (e.g. `rolled_back`), synced."""
    writer = place.journal_writer()
    try:
        writer.write(json.dumps({"t": _stamp(), **event}, sort_keys=True), sync=True)
    finally:
        writer.close()


def events_of(place: Place) -> list[dict[str, Any]]:
    """A plan's journal events, wherever it lives ([] before its first apply)."""
    lines = place.journal_lines()
    return list(parse_events(lines, place.journal_name())) if lines is not None else []


def read_events(path: str) -> Iterator[dict[str, Any]]:
    """Events of a local journal file; a torn last line (killed mid-write) is ignored."""
    return parse_events(Path(path).read_text(encoding="utf-8").splitlines(), path)


def parse_events(lines: Iterable[str], path: str) -> Iterator[dict[str, Any]]:
    lines = list(lines)
    for i, line in enumerate(lines):
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                return
            raise BadInput(f"journal {path}: line {i + 1} is not JSON") from None
        if not isinstance(event, dict) or "event" not in event:
            raise BadInput(f"journal {path}: line {i + 1} is not a journal event")
        yield event


def step_states(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """step id -> {state, result, progress, error} from the events."""
    out: dict[str, dict[str, Any]] = {}
    for e in events:
        sid = e.get("step")
        if sid is None:
            continue
        s = out.setdefault(sid, {"state": "pending"})
        ev = e["event"]
        if ev == "start":
            s.update(state="running", started=e["t"])
            s.pop("error", None)
        elif ev == "done":
            s.update(state="done", result=e.get("result"), finished=e["t"])
        elif ev == "failed":
            s.update(state="waiting" if e.get("kind") == "waiting" else "failed", error=e.get("message"))
    for sid, counts in progress_across_runs(events).items():
        out[sid]["progress"] = counts
    return out


def plan_step_states(
    plan_steps: list[dict[str, Any]], events: list[dict[str, Any]], life: dict[str, Any]
) -> list[dict[str, Any]]:
    """Each step of a plan with its state from the journal (`rotator status`). A step
    left running by a process that is gone shows as stopped: the next apply resumes it."""
    states = step_states(events)
    steps = []
    for s in plan_steps:
        state = dict(states.get(s["id"], {"state": "pending"}))
        if state["state"] == "running" and life["state"] != APPLYING:
            state["state"] = "stopped"
        steps.append({"id": s["id"], "kind": s["kind"], **state})
    return steps


# Counters a run adds to (summed over runs); the others describe the world as the last
# run saw it (an object still pinned is counted again by every run).
_ADDITIVE = ("rewritten", "bytes_rewritten")


def progress_across_runs(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """step id -> counters over every run: each run's last checkpoint per bucket, the
    additive counters summed over runs, the rest from the latest run, and `runs`."""
    last: dict[tuple[int, str, str], dict[str, Any]] = {}
    run = 0
    for e in events:
        if e.get("event") == "run":
            run += 1
        elif e.get("event") == "checkpoint" and e.get("step"):
            last[(run, e["step"], str(e.get("bucket", "")))] = e
    out: dict[str, dict[str, Any]] = {}
    latest: dict[tuple[str, str], int] = {}
    for r, sid, bucket in last:
        latest[(sid, bucket)] = max(latest.get((sid, bucket), 0), r)
    for (r, sid, bucket), e in sorted(last.items(), key=lambda item: item[0]):
        counts = out.setdefault(sid, {"runs": 0})
        values = {k: v for k, v in e.items() if k not in ("t", "event", "step", "bucket")}
        for k, v in values.items():
            if not isinstance(v, int):
                continue
            if k in _ADDITIVE:
                counts[k] = counts.get(k, 0) + v
            elif latest[(sid, bucket)] == r:
                counts[k] = counts.get(k, 0) + v
            else:
                counts.setdefault(k, 0)
    for sid in out:
        out[sid]["runs"] = len({r for (r, s, _b) in last if s == sid})
    return out


# -- a plan's life, from its journal -----------------------------------------------------
PLANNED, APPLYING, WAITING, INTERRUPTED, FAILED, DONE, ROLLED_BACK = (
    "planned",
    "applying",
    "waiting",
    "interrupted",
    "failed",
    "done",
    "rolled back",
)
LIFE_STATES = (PLANNED, APPLYING, WAITING, INTERRUPTED, FAILED, DONE, ROLLED_BACK)
UNFINISHED = (APPLYING, WAITING, INTERRUPTED, FAILED)


def plan_life(
    events: list[dict[str, Any]], alive: Callable[[int, str | None], bool] | None = None
) -> dict[str, Any]:
    """Where a plan is in its life: planned, applying (a live process), waiting,
    interrupted (a signal, or a process that died), failed, done, rolled back; with the
    last run's pid/host/since, when it was applied and how many runs it took."""
    life: dict[str, Any] = {"state": PLANNED, "runs": 0, "completed": False}
    last_run: dict[str, Any] | None = None
    ended = True
    for e in events:
        ev = e.get("event")
        finished = life["state"] in (DONE, ROLLED_BACK)
        if ev == "run":
            last_run, ended = e, False
            life["runs"] += 1
            if not finished:
                life["state"] = APPLYING
                life.pop("error", None)
        elif ev == "start" and not finished:  # also a step retried within one run
            life["state"], ended = APPLYING, False
            life.pop("error", None)
        elif ev == "complete":
            life.update(state=DONE, applied=e["t"], completed=True)
            ended = True
        elif ev == "rolled_back":
            # A plan rolled back before it completed keeps `completed: False` (and where it
            # stopped): it was never applied, and a re-apply must say so (stale), not resume.
            life.update(state=ROLLED_BACK, rolled_back=e["t"], rolled_back_by=e.get("by"))
        elif ev in ("verified", "interrupted", "failed"):
            ended = True
            if finished:
                continue
            if ev == "interrupted":
                life.update(state=INTERRUPTED, signal=e.get("signal"), at_step=e.get("step"))
            elif ev == "failed":
                life.update(state=WAITING if e.get("kind") == "waiting" else FAILED, at_step=e.get("step"))
                life["error"] = e.get("message")
    if last_run is not None:
        life.update(pid=last_run.get("pid"), host=last_run.get("host"), since=last_run["t"])
        if life["state"] == APPLYING and not ended:
            if not (alive or process_alive)(int(last_run.get("pid") or 0), last_run.get("host")):
                life.update(state=INTERRUPTED, signal="the process is gone (killed)")
        elif life["state"] == APPLYING:
            life["state"] = INTERRUPTED
    return life
