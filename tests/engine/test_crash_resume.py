"""Crash safety of `rotator apply`, end to end, in real processes.

A real `python -m rotator apply` is killed with SIGKILL (the kernel's kill: no
cleanup, no `finally`, no flush) and run again. The resumed apply must finish the
plan with every object rewritten exactly once (generation 1 -> 2, no second
rewrite), exactly one new key version, and a complete, readable journal.

* the mid-rewrite kill comes from outside, as an operator's `kill -9` would: the
  apply runs with simulated service latency (ROTATOR_FAKE_LATENCY_MS) and the test
  watches the world's state until some but not all objects are rewritten;
* the kills inside the short create-version window are made deterministic by a
  wrapper that runs the real CLI with one fake API call patched to SIGKILL its own
  process right before or right after that call;
* a torn last journal line (a kill in the middle of a journal write) must not break
  the resumed apply, nor any later reader of the journal.

Backends: fake (in real processes).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from worlds import APP_KEY, bucket, key, make_world, v, write_world

from rotator import playbooks
from rotator.journal import journal_path, read_events
from rotator.model import DISABLED, ENABLED, LIVE, SOFT_DELETED

BUCKET_NAME = "bulk"
PREFIX = "obj/"
# The rotate-key playbook's step ids, in order, as the playbook file declares them.
STEPS = [step.id for step in playbooks.load("rotate-key").steps]

# Mid-rewrite kill: 3000 objects, 4 workers, 2 ms per rewrite call is ~1.5 s of
# rewriting; the kill comes once KILL_AT objects are done, which leaves well over a
# second of work, against a 10 ms poll interval.
TOTAL = 3000
LATENCY_MS = "2"
KILL_AT = 300
POLL_SECONDS = 0.01
DEADLINE_SECONDS = 60.0
PROCESS_TIMEOUT = 120


# -- the world, the plan, the processes --------------------------------------------------


def write_bulk_world(tmp_path: Path, count: int) -> Path:
    """One key (versions 1, 2; primary 2; Storage agent granted) and one bucket (soft
    delete 7d, not versioned) of `count` objects under version 1."""
    doc = make_world(
        kms=[key(APP_KEY, {1: "ENABLED", 2: "ENABLED"}, primary=2)],
        storage=[
            bucket(
                BUCKET_NAME,
                generate=[{"prefix": PREFIX, "count": count, "kms_key_version": v(APP_KEY, 1), "size": 100}],
            )
        ],
    )
    return write_world(tmp_path / "world.yaml", doc)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: val for k, val in os.environ.items() if k != "ROTATOR_FAKE_LATENCY_MS"}
    env.update(extra)
    return env


def rotator(world: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rotator", "--world", str(world), *args],
        cwd=world.parent,
        env=env or clean_env(),
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
    )


def make_plan(world: Path) -> Path:
    plan = world.parent / "plan.json"
    r = rotator(world, "plan", "rotate-key", "--key", APP_KEY, "--out", str(plan))
    assert r.returncode == 0, r.stderr
    return plan


def status(world: Path, plan: Path) -> dict[str, Any]:
    r = rotator(world, "--output", "json", "status", str(plan))
    assert r.returncode == 0, f"status failed (exit {r.returncode}): {r.stdout}{r.stderr}"
    return json.loads(r.stdout)


def resume(world: Path, plan: Path) -> subprocess.CompletedProcess[str]:
    """The second apply, at full speed (no simulated latency)."""
    r = rotator(world, "apply", str(plan), "--yes", "--concurrency", "4")
    assert r.returncode == 0, f"resumed apply failed (exit {r.returncode}):\n{r.stderr}"
    return r


# A wrapper around the real CLI that SIGKILLs its own process at one exact point.
_KILLER = """
import os, signal, sys, threading
from rotator.backends.fake.kms import FakeKms
from rotator.services.storage.fake import FakeStorage

def die():
    os.kill(os.getpid(), signal.SIGKILL)

{patch}

from rotator.cli import main
main()
"""

KILL_POINTS = {
    # The step's start is in the journal; nothing changed in KMS yet.
    "before-create": """
def create(self, key):
    die()
FakeKms.create_crypto_key_version = create
""",
    # Version 3 exists in KMS, but the journal does not know it (no `record`).
    "after-create": """
_create = FakeKms.create_crypto_key_version
def create(self, key):
    _create(self, key)
    die()
FakeKms.create_crypto_key_version = create
""",
    # The journal recorded version 3; it is not primary yet.
    "before-set-primary": """
def set_primary(self, key, version):
    die()
FakeKms.update_crypto_key_primary_version = set_primary
""",
    # Version 3 is primary; the step's `done` is not in the journal.
    "after-set-primary": """
_set_primary = FakeKms.update_crypto_key_primary_version
def set_primary(self, key, version):
    _set_primary(self, key, version)
    die()
FakeKms.update_crypto_key_primary_version = set_primary
""",
}

# Killed after the 50th completed rewrite call (other workers may finish theirs).
KILL_MID_REWRITE = """
_rewrite = FakeStorage.rewrite_object
_calls = [0]
_lock = threading.Lock()
def rewrite(self, *args, **kwargs):
    result = _rewrite(self, *args, **kwargs)
    with _lock:
        _calls[0] += 1
        if _calls[0] == 50:
            die()
    return result
FakeStorage.rewrite_object = rewrite
"""


def apply_killed_at(world: Path, plan: Path, patch: str) -> None:
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            _KILLER.format(patch=patch),
            "--world",
            str(world),
            "apply",
            str(plan),
            "--yes",
            "--concurrency",
            "4",
        ],
        cwd=world.parent,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
    )
    assert r.returncode == -signal.SIGKILL, (
        f"the apply was meant to die by SIGKILL at the kill point, but exited {r.returncode}:\n{r.stderr}"
    )


# -- reading the world's state and the journal --------------------------------------------


def state_db(world: Path) -> sqlite3.Connection:
    """A read-only look at the fake's SQLite state (WAL: never blocks the apply)."""
    return sqlite3.connect(f"file:{world}.state?mode=ro", uri=True, timeout=30.0)


def count_rewritten(db: sqlite3.Connection) -> int:
    (n,) = db.execute(
        "SELECT COUNT(*) FROM objects WHERE bucket=? AND state=? AND generation=2", (BUCKET_NAME, LIVE)
    ).fetchone()
    return int(n)


def key_state(world: Path) -> tuple[int | None, dict[int, str]]:
    with closing(state_db(world)) as db:
        (primary,) = db.execute("SELECT primary_version FROM keys WHERE name=?", (APP_KEY,)).fetchone()
        versions = dict(db.execute("SELECT number, state FROM versions WHERE key=?", (APP_KEY,)).fetchall())
    return primary, versions


def events(plan: Path) -> list[dict[str, Any]]:
    return list(read_events(journal_path(str(plan))))


def assert_rotated_exactly_once(world: Path, total: int) -> None:
    primary, versions = key_state(world)
    assert primary == 3, f"primary is {primary}, not the new version 3"
    assert versions == {1: DISABLED, 2: DISABLED, 3: ENABLED}, (
        f"exactly one new version (3) and the old ones disabled, got {versions}"
    )
    with closing(state_db(world)) as db:
        shapes = dict(
            ((state, gen, kv), n)
            for state, gen, kv, n in db.execute(
                "SELECT state, generation, kms_key_version, COUNT(*) FROM objects WHERE bucket=? "
                "GROUP BY state, generation, kms_key_version",
                (BUCKET_NAME,),
            )
        )
        (odd,) = db.execute(
            "SELECT COUNT(*) FROM "
            "(SELECT name FROM objects WHERE bucket=? GROUP BY name HAVING COUNT(*) != 2)",
            (BUCKET_NAME,),
        ).fetchone()
        (names,) = db.execute(
            "SELECT COUNT(DISTINCT name) FROM objects WHERE bucket=?", (BUCKET_NAME,)
        ).fetchone()
        (purged,) = db.execute("SELECT COUNT(*) FROM purged WHERE bucket=?", (BUCKET_NAME,)).fetchone()
    # Every object: live generation 2 under the new primary, and its one older
    # generation (1, soft-deleted, under version 1). A second rewrite would show as a
    # generation 3 live row and a generation 2 soft-deleted row under version 3.
    assert shapes == {
        (LIVE, 2, v(APP_KEY, 3)): total,
        (SOFT_DELETED, 1, v(APP_KEY, 1)): total,
    }, f"objects by (state, generation, key version): {shapes}"
    assert names == total
    assert odd == 0, f"{odd} object(s) do not have exactly two generations"
    assert purged == 0, "a generation was hard-deleted"


def assert_journal_complete(world: Path, plan: Path, runs: int) -> list[dict[str, Any]]:
    # First as a user sees it: `rotator status` must read the journal.
    st = status(world, plan)
    assert st["complete"] is True
    assert [(s["id"], s["state"]) for s in st["steps"]] == [(sid, "done") for sid in STEPS]
    path = journal_path(str(plan))
    evs = events(plan)
    assert evs[-1]["event"] == "complete", f"journal does not end with `complete`: {evs[-1]}"
    assert [e["event"] for e in evs].count("complete") == 1
    assert [e["event"] for e in evs].count("run") == runs
    for sid in STEPS:
        done = [e for e in evs if e.get("step") == sid and e["event"] == "done"]
        assert len(done) == 1, f"step {sid}: {len(done)} `done` events"
    done_create = next(e for e in evs if e.get("step") == STEPS[0] and e["event"] == "done")
    assert done_create["result"] == {"version": 3}
    assert not [e for e in evs if e["event"] == "failed"]
    for i, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        assert isinstance(json.loads(line), dict), f"journal line {i} is not a JSON object"
    return evs


def assert_rerun_is_noop(world: Path, plan: Path) -> None:
    """Once complete, another apply changes nothing and still exits 0."""
    with closing(state_db(world)) as db:
        before = db.execute("SELECT * FROM objects ORDER BY bucket, name, generation").fetchall()
    r = rotator(world, "apply", str(plan), "--yes")
    assert r.returncode == 0, f"apply of a completed plan failed (exit {r.returncode}): {r.stderr}"
    with closing(state_db(world)) as db:
        after = db.execute("SELECT * FROM objects ORDER BY bucket, name, generation").fetchall()
    assert before == after


# -- the tests ---------------------------------------------------------------------------


def test_sigkill_mid_rewrite_then_resume_rewrites_every_object_exactly_once(tmp_path: Path) -> None:
    world = write_bulk_world(tmp_path, TOTAL)
    plan = make_plan(world)

    log = tmp_path / "killed-apply.log"
    with open(log, "w", encoding="utf-8") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rotator",
                "--world",
                str(world),
                "apply",
                str(plan),
                "--yes",
                "--concurrency",
                "4",
            ],
            cwd=tmp_path,
            env=clean_env(ROTATOR_FAKE_LATENCY_MS=LATENCY_MS),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            seen = 0
            deadline = time.monotonic() + DEADLINE_SECONDS
            with closing(state_db(world)) as db:
                while True:
                    if proc.poll() is not None:
                        pytest.fail(
                            f"apply exited (code {proc.returncode}) before it could be killed "
                            f"mid-rewrite ({seen}/{TOTAL} seen rewritten); raise "
                            f"ROTATOR_FAKE_LATENCY_MS (now {LATENCY_MS}) or TOTAL.\n"
                            + log.read_text(encoding="utf-8")
                        )
                    seen = count_rewritten(db)
                    if seen >= KILL_AT:
                        os.kill(proc.pid, signal.SIGKILL)
                        break
                    if time.monotonic() > deadline:
                        pytest.fail(f"no progress to {KILL_AT} rewrites in {DEADLINE_SECONDS}s ({seen} seen)")
                    time.sleep(POLL_SECONDS)
            proc.wait(timeout=PROCESS_TIMEOUT)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"apply was not killed (exit {proc.returncode})"

    # It really died in the middle of the rewrite.
    with closing(state_db(world)) as db:
        killed_at = count_rewritten(db)
    assert 0 < killed_at < TOTAL, f"{killed_at}/{TOTAL} objects rewritten when killed"
    assert key_state(world) == (3, {1: ENABLED, 2: ENABLED, 3: ENABLED})
    evs = events(plan)
    assert not any(e["event"] == "complete" for e in evs)
    assert any(e.get("step") == "rewrite-objects" and e["event"] == "start" for e in evs)
    assert not any(e.get("step") == "rewrite-objects" and e["event"] == "done" for e in evs)
    st = status(world, plan)
    assert st["complete"] is False
    states = [s["state"] for s in st["steps"]]
    # The process is gone: its step is "stopped" (the next apply resumes it), never "running".
    assert states == ["done", "stopped"] + ["pending"] * (len(states) - 2)
    assert st["state"] == "interrupted"

    resume(world, plan)

    assert_rotated_exactly_once(world, TOTAL)
    evs = assert_journal_complete(world, plan, runs=2)
    # The resumed run rewrote exactly what the killed run had not.
    result = next(e for e in evs if e.get("step") == "rewrite-objects" and e["event"] == "done")["result"]
    assert result["rewritten"] == TOTAL - killed_at, result
    assert result["failed"] == 0
    assert result["skipped_pinned"] == 0


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_sigkill_in_create_version_step_then_resume_creates_one_version(tmp_path: Path, point: str) -> None:
    total = 20
    world = write_bulk_world(tmp_path, total)
    plan = make_plan(world)

    apply_killed_at(world, plan, KILL_POINTS[point])

    # Died where intended: inside the create step, before its `done`.
    evs = events(plan)
    create = [e["event"] for e in evs if e.get("step") == "new-primary-version"]
    recorded = [e for e in evs if e.get("step") == "new-primary-version" and e["event"] == "record"]
    expected_key = {
        "before-create": (2, {1: ENABLED, 2: ENABLED}),
        "after-create": (2, {1: ENABLED, 2: ENABLED, 3: ENABLED}),
        "before-set-primary": (2, {1: ENABLED, 2: ENABLED, 3: ENABLED}),
        "after-set-primary": (3, {1: ENABLED, 2: ENABLED, 3: ENABLED}),
    }[point]
    assert key_state(world) == expected_key
    assert "start" in create and "done" not in create, create
    assert bool(recorded) == (point in ("before-set-primary", "after-set-primary")), recorded
    with closing(state_db(world)) as db:
        assert count_rewritten(db) == 0

    resume(world, plan)

    assert_rotated_exactly_once(world, total)
    assert_journal_complete(world, plan, runs=2)


def test_torn_last_journal_line_is_tolerated_on_resume(tmp_path: Path) -> None:
    total = 200
    world = write_bulk_world(tmp_path, total)
    plan = make_plan(world)
    apply_killed_at(world, plan, KILL_MID_REWRITE)
    with closing(state_db(world)) as db:
        killed_at = count_rewritten(db)
    assert 0 < killed_at < total, f"{killed_at}/{total} objects rewritten when killed"

    # A kill in the middle of a journal write leaves half a line, with no newline.
    path = journal_path(str(plan))
    with open(path, "a", encoding="utf-8") as fh:
        fh.write('{"event": "checkpoint", "step": "rewrite-objects", "bucket": "bu')
    assert not any(e["event"] == "complete" for e in events(plan))  # the reader skips it

    resume(world, plan)

    assert_rotated_exactly_once(world, total)
    # Readable afterwards by status and by the next apply; the new run's events are
    # intact (not glued onto the torn fragment).
    evs = assert_journal_complete(world, plan, runs=2)
    assert sum(1 for e in evs if e["event"] == "begin") == 1
    assert_rerun_is_noop(world, plan)
