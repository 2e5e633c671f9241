"""The apply journal: JSON lines beside the plan, so a re-run resumes where a killed
or failed apply stopped (a failed step stays pending and reruns, like a migration
ledger). Step boundaries are synced to disk; progress checkpoints are only flushed,
so a million rewrites do not cost a million disk syncs. Correctness never depends on
a checkpoint: every step re-checks the world before it changes anything.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rotator.errors import BadInput


def journal_path(plan_path: str) -> str:
    return f"{plan_path}.journal"


def _stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Journal:
    def __init__(self, path: str, plan_sha256: str):
        self.path = path
        self.plan_sha256 = plan_sha256
        self.events: list[dict[str, Any]] = list(read_events(path)) if os.path.exists(path) else []
        begun = [e for e in self.events if e.get("event") == "begin"]
        if begun and begun[0].get("plan_sha256") != plan_sha256:
            # The plan file was replaced by a new plan: the old journal is history.
            os.replace(path, f"{path}.{int(time.time())}.old")
            self.events = []
        _drop_torn_tail(path)
        self._fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 - lives with the journal
        if not self.events:
            self._write({"event": "begin", "plan_sha256": plan_sha256}, sync=True)
        # Events before this index were written by earlier runs (see started_before).
        self._earlier = len(self.events)
        self._write({"event": "run", "pid": os.getpid()}, sync=True)

    def _write(self, event: dict[str, Any], *, sync: bool) -> None:
        event = {"t": _stamp(), **event}
        self._fh.write(json.dumps(event, sort_keys=True) + "\n")
        self._fh.flush()
        if sync:
            os.fsync(self._fh.fileno())
        self.events.append(event)

    def close(self) -> None:
        self._fh.close()

    # -- step life cycle ----------------------------------------------------------------
    def is_done(self, step: str) -> bool:
        return any(e.get("step") == step and e["event"] == "done" for e in self.events)

    def started_before(self, step: str) -> bool:
        """Did an earlier run start this step (and perhaps die inside it)?"""
        return any(e.get("step") == step and e["event"] == "start" for e in self.events[: self._earlier])

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

    def value(self, step: str, name: str) -> Any:
        for e in reversed(self.events):
            if e.get("step") == step and name in e:
                return e[name]
        return None


def _drop_torn_tail(path: str) -> None:
    """A run killed mid-write leaves half a line; cut it so the next event starts clean."""
    if not os.path.exists(path):
        return
    with open(path, "rb+") as fh:
        data = fh.read()
        if data and not data.endswith(b"\n"):
            fh.truncate(data.rfind(b"\n") + 1)


def read_events(path: str) -> Iterator[dict[str, Any]]:
    """Events of a journal; a torn last line (killed mid-write) is ignored."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
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
        elif ev == "checkpoint":
            s["progress"] = {k: v for k, v in e.items() if k not in ("t", "event", "step")}
    return out
