"""Ctrl-C and SIGTERM during an apply (issue 13.4): new work stops, calls in flight end
and are journaled, exit 130 (SIGINT) or 143 (SIGTERM) with a resume hint; `status`
says interrupted, not running; the same apply resumes, says where, and finishes with
every object rewritten exactly once.

The in-process test runs on the fake backend and over the wire (it is in the wire
suites); the real-process tests send the signal from outside, as a shell or a job
scheduler would.

Backends: fake; gcp over the wire (some tests: tests/wire/test_suites_over_the_wire.py names them)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from helpers import WorldCli, assert_failed
from test_crash_resume import (
    DEADLINE_SECONDS,
    LATENCY_MS,
    POLL_SECONDS,
    PROCESS_TIMEOUT,
    TOTAL,
    assert_journal_complete,
    assert_rotated_exactly_once,
    clean_env,
    count_rewritten,
    events,
    key_state,
    make_plan,
    resume,
    state_db,
    status,
    write_bulk_world,
)
from worlds import APP_KEY, bucket, key, make_world, v

from rotator.model import ENABLED
from rotator.services.storage.fake import FakeStorage

OBJECTS = 200
SIGNAL_AT = 40  # the rewrite call during which the signal arrives


def bulk_world(tmp_path: Path) -> WorldCli:
    doc = make_world(
        kms=[key(APP_KEY, {1: "ENABLED", 2: "ENABLED"}, primary=2)],
        storage=[
            bucket(
                "bulk",
                generate=[{"prefix": "o/", "count": OBJECTS, "kms_key_version": v(APP_KEY, 1), "size": 10}],
            )
        ],
    )
    return WorldCli(tmp_path, doc)


def signal_during_rewrite(monkeypatch: Any, signum: int) -> list[int]:
    """The fake's rewrite sends `signum` to this process during call SIGNAL_AT (the
    handler runs in the main thread, as for an operator's Ctrl-C)."""
    calls = [0]
    lock = threading.Lock()
    real = FakeStorage.rewrite_object

    def rewrite(self: Any, *args: Any, **kwargs: Any) -> Any:
        with lock:
            calls[0] += 1
            now = calls[0]
        if now == SIGNAL_AT:
            os.kill(os.getpid(), signum)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(FakeStorage, "rewrite_object", rewrite)
    return calls


def live_generations(w: WorldCli) -> list[int]:
    objects = next(b for b in w.dump()["storage"] if b["bucket"] == "bulk")["objects"]
    return [o["generation"] for o in objects]


def test_ctrl_c_mid_rewrite_exits_130_and_the_same_apply_finishes_exactly_once(
    tmp_path: Path, monkeypatch: Any
) -> None:
    w = bulk_world(tmp_path)
    assert w.plan("rotate-key", APP_KEY).code == 0
    calls = signal_during_rewrite(monkeypatch, signal.SIGINT)
    r = w.apply("plan.json", "--concurrency", "2")
    assert_failed(r, 130, "error", "interrupted by SIGINT", "rewrite-objects", "rotator apply plan.json")
    stopped_after = calls[0]
    assert SIGNAL_AT <= stopped_after < OBJECTS  # new work stopped; in flight ended (bounded)

    st = w.status()
    assert st["state"] == "interrupted" and st["life"]["signal"] == "SIGINT"
    rewrite = next(s for s in st["steps"] if s["id"] == "rewrite-objects")
    assert rewrite["state"] == "stopped"
    done_first = rewrite["progress"]["rewritten"]
    assert 0 < done_first < OBJECTS
    assert sorted(set(live_generations(w))) == [1, 2]  # really stopped in the middle
    text = w("status", "plan.json").stdout
    assert "interrupted" in text and "running" not in text

    monkeypatch.undo()
    r = w.apply()
    assert r.code == 0, r
    assert (
        f"resuming at step 2 of {len(st['steps'])} (rewrite-objects), {done_first} of {OBJECTS} objects done"
        in (r.stderr)
    )
    assert live_generations(w) == [2] * OBJECTS  # every object rewritten exactly once
    st = w.status()
    assert st["state"] == "done"
    rewrite = next(s for s in st["steps"] if s["id"] == "rewrite-objects")
    assert rewrite["progress"]["rewritten"] == OBJECTS and rewrite["progress"]["runs"] == 2


def test_sigterm_between_steps_exits_143(tmp_path: Path, monkeypatch: Any) -> None:
    """A signal during a KMS call: that call ends, the next step is not started."""
    from rotator.backends.fake.kms import FakeKms

    w = WorldCli(tmp_path, make_world())
    assert w.plan("rotate-key", APP_KEY).code == 0
    real = FakeKms.update_crypto_key_primary_version

    def set_primary(self: Any, *args: Any, **kwargs: Any) -> Any:
        os.kill(os.getpid(), signal.SIGTERM)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(FakeKms, "update_crypto_key_primary_version", set_primary)
    r = w.apply()
    assert_failed(r, 143, "error", "interrupted by SIGTERM", "before step rewrite-objects")
    assert w.key_of(APP_KEY)["primary"] == 3  # the call in flight ended
    assert w.object_of("demo-logs", "reports/2026-01.csv")["generation"] == 1  # nothing new began
    st = w.status()
    assert st["state"] == "interrupted"
    assert [s["state"] for s in st["steps"][:2]] == ["done", "pending"]
    monkeypatch.undo()
    r = w.apply()
    assert r.code == 0, r
    assert "resuming at step 2 of" in r.stderr
    assert w.key_of(APP_KEY)["primary"] == 3  # no second new version


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_real_apply_signalled_from_outside_resumes_exactly_once(
    tmp_path: Path, signum: int, code: int
) -> None:
    world = write_bulk_world(tmp_path, TOTAL)
    plan = make_plan(world)
    log = tmp_path / "apply.log"
    with open(log, "w", encoding="utf-8") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rotator", "--world", str(world), "apply", str(plan), "--yes"]
            + ["--concurrency", "4"],
            cwd=tmp_path,
            env=clean_env(ROTATOR_FAKE_LATENCY_MS=LATENCY_MS),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + DEADLINE_SECONDS
            with closing(state_db(world)) as db:
                while count_rewritten(db) < 100:
                    if proc.poll() is not None:
                        pytest.fail(f"apply exited ({proc.returncode}) before the signal\n{log.read_text()}")
                    if time.monotonic() > deadline:
                        pytest.fail("no rewrite progress")
                    time.sleep(POLL_SECONDS)
            running = status(world, plan)  # from another process, while it runs
            assert running["state"] == "applying" and running["life"]["pid"] == proc.pid
            assert next(s for s in running["steps"] if s["id"] == "rewrite-objects")["state"] == "running"
            os.kill(proc.pid, signum)
            proc.wait(timeout=PROCESS_TIMEOUT)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    output = log.read_text(encoding="utf-8")
    assert proc.returncode == code, output
    name = signal.Signals(signum).name
    assert f"error: interrupted by {name} in step rewrite-objects" in output
    assert "run the same apply to resume" in output
    with closing(state_db(world)) as db:
        stopped_at = count_rewritten(db)
    assert 0 < stopped_at < TOTAL
    assert key_state(world) == (3, {1: ENABLED, 2: ENABLED, 3: ENABLED})
    evs = events(plan)
    assert [e["signal"] for e in evs if e["event"] == "interrupted"] == [name]
    st = status(world, plan)
    assert st["state"] == "interrupted"
    progress = next(s for s in st["steps"] if s["id"] == "rewrite-objects")["progress"]
    assert progress["rewritten"] == stopped_at  # the in-flight rewrites were journaled

    r = resume(world, plan)
    assert f"{stopped_at:,} of {TOTAL:,} objects done" in r.stderr
    assert_rotated_exactly_once(world, TOTAL)
    assert_journal_complete(world, plan, runs=2)
