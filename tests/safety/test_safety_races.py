"""Races (issue 6.3): rotator against a live application and against itself.

* an application writes objects while apply rewrites them: its write always survives
  (content, generation, under the bucket's default key's primary); rotator's rewrite
  carries the generation precondition, re-reads on 412 and leaves the new generation
  alone. Deterministic (a storage wrapper writes right before rotator's rewrite of the
  same object) and with a real concurrent writer thread (seeded);
* the world changes between plan and apply, or between two runs of one apply: exit 4
  (stale), never a blind continue (extends tests/cli/test_cli_exit_codes.py to replace-key,
  disable-key, destroy-versions and to changes made while an apply is paused);
* two applies on one key at once: the second refuses (exit 3, "another rotator apply is
  running"), changes nothing, and the first finishes as if alone.

Backends: fake.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import WorldCli, assert_failed
from safety_support import live_objects, violations, wait_for
from worlds import APP_2026_KEY as NEW
from worlds import APP_KEY as APP
from worlds import demo_world, destroyable_world, v

from rotator import apierrors as api
from rotator import playbooks
from rotator.backends.fake import FakeBackend
from rotator.backends.fake.kms import FakeKms
from rotator.engine import apply_plan
from rotator.errors import Waiting
from rotator.journal import journal_path, read_events
from rotator.plan import build_plan, resolve_params

RACE_SEED = 3
BUCKET = "demo-logs"


# -- an application writing while rotator rewrites --------------------------------------------


class RacingStorage:
    """The fake's storage, with an application that writes an object (a new generation,
    no key named: the bucket default) right before rotator's rewrite of it reaches the
    service. Records every rewrite call's precondition."""

    def __init__(self, inner: Any, victims: set[tuple[str, str]]):
        self.inner, self.victims = inner, set(victims)
        self.app_writes: dict[tuple[str, str], Any] = {}
        self.preconditions: list[int | None] = []
        self.lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def rewrite_object(self, bucket: str, name: str, **kw: Any) -> Any:
        with self.lock:
            self.preconditions.append(kw.get("if_generation_match"))
            victim = (bucket, name) in self.victims
            self.victims.discard((bucket, name))
        if victim:
            self.app_writes[(bucket, name)] = self.inner.upload(bucket, name, 777)
        return self.inner.rewrite_object(bucket, name, **kw)


def rotate_in_process(backend: Any, playbook: str, new_key: str | None, tmp: Path) -> dict[str, Any]:
    pb = playbooks.load(playbook)
    doc = build_plan(backend, pb, resolve_params(pb, APP, new_key, {}))
    for _ in range(3):
        try:
            return apply_plan(backend, doc, "sha", str(tmp / "plan.json"), concurrency=4)
        except Waiting:
            from datetime import timedelta

            backend.advance(timedelta(hours=6))
    raise AssertionError("still waiting")


@pytest.mark.parametrize(("playbook", "new_key"), [("rotate-key", None), ("replace-key", NEW)])
def test_an_application_write_during_the_rewrite_is_never_lost(
    tmp_path: Path, playbook: str, new_key: str | None
) -> None:
    backend = FakeBackend.from_dict(demo_world())
    before = live_objects(backend.dump())
    rng = random.Random(RACE_SEED)
    candidates = sorted(
        k for k, o in before.items() if k[0] == BUCKET and (o["kms_key_version"] or "").startswith(APP + "/")
    )
    victims = set(rng.sample(candidates, 12))
    racing = RacingStorage(backend.storage, victims)
    backend.storage = racing
    result = rotate_in_process(backend, playbook, new_key, tmp_path)
    assert result["complete"]
    racing_writes = racing.app_writes
    assert set(racing_writes) == victims, "the application did not get to write every victim"
    assert None not in racing.preconditions, "a rewrite without ifGenerationMatch could overwrite a write"

    doc = backend.dump()
    after = live_objects(doc)
    dest = new_key or APP
    primary = next(k["primary"] for k in doc["kms"] if k["key"] == dest)
    for key, written in racing_writes.items():
        o = after[key]
        # the application's generation is the live one: same generation, same content,
        # under the key the bucket defaults to (its primary), not rewritten on top
        assert (o["generation"], o["size"]) == (written.generation, 777), (key, o)
        assert o["kms_key_version"] == written.kms_key_version == v(dest, primary), (key, o)
        assert o["generation"] == before[key]["generation"] + 1
    done = [
        e["result"]
        for e in read_events(journal_path(str(tmp_path / "plan.json")))
        if e.get("step") == "rewrite-objects" and e["event"] == "done"
    ]
    assert done[0]["already_current"] >= len(victims), done
    assert violations(doc) == []


def test_a_concurrent_writer_thread_never_loses_a_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An application thread overwrites random objects (each write a distinct size, as
    its content) for as long as the apply runs; rotator slowed down so they overlap."""
    monkeypatch.setenv("ROTATOR_FAKE_LATENCY_MS", "1")
    backend = FakeBackend.from_dict(demo_world())
    names = sorted(k[1] for k in live_objects(backend.dump()) if k[0] == BUCKET)
    rng = random.Random(RACE_SEED)
    last: dict[str, Any] = {}
    stop = threading.Event()
    errors: list[BaseException] = []

    def application() -> None:
        size = 10_000
        while not stop.is_set():
            name = rng.choice(names)
            size += 1
            try:
                last[name] = backend.storage.upload(BUCKET, name, size)
            except api.ApiError as e:  # e.g. a write while the primary is being switched
                errors.append(e)
            time.sleep(0.0005)

    app = threading.Thread(target=application, daemon=True)
    app.start()
    try:
        result = rotate_in_process(backend, "rotate-key", None, tmp_path)
    finally:
        stop.set()
        app.join(timeout=10)
    assert result["complete"]
    assert len(last) >= 20, f"only {len(last)} objects written during the apply"
    assert errors == [], errors[:3]
    doc = backend.dump()
    after = {k[1]: o for k, o in live_objects(doc).items() if k[0] == BUCKET}
    primary = v(APP, next(k["primary"] for k in doc["kms"] if k["key"] == APP))
    for name, written in last.items():
        o = after[name]
        assert o["size"] == written.size, f"{name}: the application's last write was lost"
        # live: the application's generation, or (written before the new primary) one
        # rewrite of it, and under the new primary either way
        assert written.generation <= o["generation"] <= written.generation + 1, (name, written, o)
        assert o["kms_key_version"] == primary, (name, o)
    assert violations(doc) == []


# -- the world changes under a plan: exit 4 -----------------------------------------------------------


def _set_primary(n: int) -> Any:
    return lambda b: b.kms.update_crypto_key_primary_version(APP, v(APP, n))


def _new_primary(b: Any) -> None:
    b.kms.update_crypto_key_primary_version(APP, b.kms.create_crypto_key_version(APP).name)


def _enable(n: int) -> Any:
    return lambda b: b.kms.update_crypto_key_version(v(APP, n), "ENABLED")


def _disable(n: int) -> Any:
    return lambda b: b.kms.update_crypto_key_version(v(APP, n), "DISABLED")


def demo_with_version_1_disabled() -> dict[str, Any]:
    doc = demo_world()
    doc["kms"][0]["versions"] = {1: "DISABLED", 2: "ENABLED", 3: "ENABLED"}
    return doc


STALE_CASES = {
    "replace-key/primary-changed": (
        "replace-key",
        demo_world,
        ["--new-key", NEW],
        _set_primary(2),
        "primary",
    ),
    "replace-key/new-primary": ("replace-key", demo_world, ["--new-key", NEW], _new_primary, "primary"),
    "disable-key/new-primary": ("disable-key", demo_world, [], _new_primary, "primary"),
    "disable-key/version-re-enabled": (
        "disable-key",
        demo_with_version_1_disabled,
        [],
        _enable(1),
        "ENABLED",
    ),
    "destroy-versions/primary-changed": (
        "destroy-versions",
        destroyable_world,
        ["--set", "versions=1,2"],
        _set_primary(3),
        "primary",
    ),
    "destroy-versions/version-re-enabled": (
        "destroy-versions",
        destroyable_world,
        ["--set", "versions=1,2"],
        _enable(2),
        "ENABLED",
    ),
}


@pytest.mark.parametrize("case", list(STALE_CASES))
def test_a_change_between_plan_and_apply_gives_exit_4_and_changes_nothing(tmp_path: Path, case: str) -> None:
    playbook, world, extra, change, needle = STALE_CASES[case]
    w = WorldCli(tmp_path, world())
    r = w.plan(playbook, APP, *extra)
    assert r.code == 0, r
    w.change(change)
    before = w.dump()
    r = w.apply()
    assert_failed(r, 4, "stale", APP, needle)
    assert w.dump() == before
    assert w.status()["complete"] is False


def test_rotate_key_paused_for_firestore_then_a_planned_version_made_primary_stops_before_the_disable(
    tmp_path: Path,
) -> None:
    """Between the two runs of one apply (exit 75, R21), someone rolls the key back to
    version 1, which the plan disables: the disable step must stop (4, R3), not disable
    the key's primary."""
    w = WorldCli(tmp_path, demo_world())
    plan = w.plan_json("rotate-key", APP)
    assert next(s for s in plan["steps"] if s["id"] == "disable-old-versions")["data"]["disable"] == [1]
    r = w.apply()
    assert r.code == 75, r
    w.change(_set_primary(1))
    assert w("world", "advance", "6h").code == 0
    r = w.apply()
    versions = {int(n): state for n, state in w.key_of(APP)["versions"].items()}
    assert versions[1] == "ENABLED", (versions, r.stderr[-300:])
    assert violations(w.dump()) == []
    # Not "waiting" for Firestore to leave version 1 (it never will: 1 is the primary
    # now), but stale: plan again.
    assert_failed(r, 4, "stale", v(APP, 1))


@pytest.mark.parametrize(
    "change", [_new_primary, _enable(1)], ids=["new-primary-version", "disabled-version-re-enabled"]
)
def test_disable_key_resumed_after_the_key_changed_does_not_report_complete_with_a_version_enabled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: Any
) -> None:
    """An emergency revocation stopped after its snapshots (a failure on the first
    disable); meanwhile someone makes a new primary or re-enables a version the plan saw
    disabled. Re-running the same apply must not say "complete" while the key still has
    an ENABLED version: the plan is stale (exit 4; plan again to cut it off too)."""
    w = WorldCli(tmp_path, demo_with_version_1_disabled())
    assert w.plan("disable-key", APP).code == 0

    real = FakeKms.update_crypto_key_version

    def unavailable(self: Any, version: str, state: str) -> Any:
        raise api.Unavailable("injected: KMS unavailable", resource=version)

    monkeypatch.setattr(FakeKms, "update_crypto_key_version", unavailable)
    r = w.apply()
    assert_failed(r, 1, "error", "UNAVAILABLE")
    monkeypatch.setattr(FakeKms, "update_crypto_key_version", real)
    states = {s["id"]: s["state"] for s in w.status()["steps"]}
    assert states == {"snapshot-streaming-jobs": "done", "disable-all-versions": "failed"}

    w.change(change)
    r = w.apply()
    enabled = [n for n, s in w.key_of(APP)["versions"].items() if s == "ENABLED"]
    assert not (r.code == 0 and enabled), f"apply said complete with versions {enabled} ENABLED: {r}"
    assert_failed(r, 4, "stale", APP)


# -- two applies at once ---------------------------------------------------------------------------


def test_a_second_apply_on_the_same_key_refuses_while_the_first_runs(tmp_path: Path) -> None:
    w = WorldCli(tmp_path, demo_world() | {"firestore": []})  # no wait for Firestore (R21)
    initial = live_objects(w.dump())
    # a rotation, slowed down: 305 rewrites at 5 ms each, 2 at a time
    assert w.plan("rotate-key", APP).code == 0
    assert w.plan("disable-key", APP, out="disable.json").code == 0
    env = {k: val for k, val in os.environ.items() if k not in ("ROTATOR_TEST_BACKEND",)}
    env["ROTATOR_FAKE_LATENCY_MS"] = "5"
    log = tmp_path / "first.log"
    with open(log, "w") as out:
        first = subprocess.Popen(
            [sys.executable, "-m", "rotator", "--world", "world.yaml", "apply", "plan.json", "--yes"]
            + ["--concurrency", "2"],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        journal = Path(journal_path(str(tmp_path / "plan.json")))

        def rewriting() -> bool:
            if not journal.exists():
                return False
            return any(e.get("step") == "rewrite-objects" for e in read_events(str(journal)))

        assert wait_for(rewriting, timeout=60), log.read_text()
        assert first.poll() is None, "the first apply ended before the second could race it"
        journal_before = journal.read_bytes()
        for plan in ("plan.json", "disable.json"):
            r = w("apply", plan, "--yes")
            line = assert_failed(r, 3, "refused", APP)
            assert "another rotator apply is running" in line, line
        assert not (tmp_path / "disable.json.journal").exists()
        assert first.poll() is None, "the first apply ended before the second could race it"
        # the refused apply wrote nothing in the running apply's journal
        assert journal.read_bytes().startswith(journal_before)
        assert first.wait(timeout=120) == 0, log.read_text()
    finally:
        if first.poll() is None:
            os.kill(first.pid, signal.SIGKILL)
            first.wait()
    doc = w.dump()
    assert violations(doc) == []
    final = live_objects(doc)
    assert all(final[k]["generation"] <= o["generation"] + 1 for k, o in initial.items()), "rewritten twice"
    runs = [e for e in read_events(journal_path(str(tmp_path / "plan.json"))) if e["event"] == "run"]
    assert len(runs) == 1, json.dumps(runs)
    # Once the first is done, the second may run: planned before the rotation, it is stale.
    r = w("apply", "disable.json", "--yes")
    assert_failed(r, 4, "stale", APP)
