"""Crash safety (issue 6.1): `rotator apply` SIGKILLed at random points of every
playbook, re-run to the end each time, ends in the world of an uninterrupted run.

For each playbook (rotate-key, replace-key, disable-key, destroy-versions) on a world
with all five services and 300+ objects (the demo world, plus 100 objects):

1. an uninterrupted run of the real `python -m rotator` gives the reference world,
   and the same run in a forked child records the apply's instrumented events: every
   call of the fake's services (before and after it), every fake transaction right
   before its COMMIT, every journal line (before it, half-written, after it);
2. KILL_POINTS kill points are drawn from those events with a seeded RNG: at least one
   in each kind present (mid-listing, mid-rewrite, a KMS change, a Cloud Run /
   functions / Firestore / IAM / bucket change, between the snapshots and the first
   disable, mid-journal write, right before a commit; each drawn as "the N-th event
   with this label", so it is that kind of point however the rewrite threads
   interleave), the rest uniform; every fourth
   chain is killed a second time while it resumes; a few kills come from outside
   after a seeded random delay with ROTATOR_FAKE_LATENCY_MS (as an operator's kill -9),
   and for rotate-key and replace-key one real `python -m rotator` process is killed
   from outside mid-rewrite;
3. after every kill, the world read back from its state must not have a version
   disabled or destroyed that something still needs (safety_support.violations: an
   independent reading of README's pin table over `world dump`, plus rotator's own
   inventory: no DISABLED version with live objects under it), no Streaming Engine
   job cancelled without a snapshot (R31), nothing destroyed but the versions asked;
4. the chain is re-run to the end (exit 75: `world advance 6h`, as the operator
   would), and the final world must equal the reference (snapshot ids and times
   aside), with one `done` per step in the journal, and `complete` last. The reference
   itself has every planned object rewritten exactly once (generation + 1, under the
   destination key's primary) and nothing else touched.

Figures (CI size): KILL_POINTS = 20 per playbook, at least (80 in all, ~20 s; in practice
22-25 per playbook: the kinds drawn first, delay kills and the real process come on top).
A bigger run: ROTATOR_CRASH_KILL_POINTS=200 ROTATOR_CRASH_SEED=7 pytest tests/safety/test_safety_crash.py
(the seed changes which points are drawn; every run prints its kill points with -s).

Backends: fake (in real processes).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from safety_support import Run, Zygote, live_objects, normalized, unsnapshotted_cancelled_jobs, violations
from worlds import APP_2026_KEY as NEW
from worlds import APP_KEY as APP
from worlds import demo_world, destroyable_world, v

from rotator import guards
from rotator.backends.fake import open_world
from rotator.inventory import scan_key
from rotator.journal import journal_path, read_events
from rotator.services.storage.spec import UNREADABLE_OBJECT

KILL_POINTS = int(os.environ.get("ROTATOR_CRASH_KILL_POINTS", "20"))
SEED = int(os.environ.get("ROTATOR_CRASH_SEED", "20261122"))
DOUBLE_KILL_EVERY = 4  # every fourth chain is killed again while it resumes
DELAY_KILLS = 3  # kills from outside after a random delay, per playbook
CONCURRENCY = "4"


@dataclass(frozen=True)
class Scenario:
    playbook: str
    args: tuple[str, ...]
    world: Any  # () -> world dict
    revoked: tuple[str, ...] = ()  # keys cut off on purpose (disable-key)
    destroys: tuple[str, ...] = ()  # versions the playbook may destroy
    rewrite_to: str | None = None  # the key objects are rewritten to
    outside_kill: bool = False  # also kill a real `python -m rotator` mid-rewrite


SCENARIOS = {
    "rotate-key": Scenario("rotate-key", ("--key", APP), demo_world, rewrite_to=APP, outside_kill=True),
    "replace-key": Scenario(
        "replace-key",
        ("--key", APP, "--new-key", NEW, "--set", "firestore=restore"),
        demo_world,
        rewrite_to=NEW,
        outside_kill=True,
    ),
    "disable-key": Scenario("disable-key", ("--key", APP), demo_world, revoked=(APP,)),
    "destroy-versions": Scenario(
        "destroy-versions",
        ("--key", APP, "--set", "versions=1,2"),
        destroyable_world,
        destroys=(v(APP, 1), v(APP, 2)),
    ),
}


# -- one world and its plan, reset between chains ---------------------------------------------------


class Bench:
    """A world file, its plan, and a pristine copy of its state to start each chain from."""

    def __init__(self, root: Path, zygote: Zygote, scenario: Scenario):
        self.dir = root / scenario.playbook
        self.dir.mkdir()
        self.zygote, self.scenario = zygote, scenario
        self.world = self.dir / "world.yaml"
        self.world.write_text(yaml.safe_dump(scenario.world(), sort_keys=False))
        open_world(str(self.world)).store.close()  # the state, from the file
        self.pristine = self.dir / "pristine.state"
        shutil.copyfile(f"{self.world}.state", self.pristine)
        r = self.rotator("plan", scenario.playbook, *scenario.args, "--out", "plan.json")
        assert r.code == 0, r.stderr
        self.plan_bytes = (self.dir / "plan.json").read_bytes()
        self.plan = json.loads(self.plan_bytes)
        self.initial = self.dump()

    def rotator(self, *args: str, **kw: Any) -> Run:
        return self.zygote.run(["--world", "world.yaml", *args], self.dir, **kw)

    def apply(self, **kw: Any) -> Run:
        return self.rotator("apply", "plan.json", "--yes", "--concurrency", CONCURRENCY, **kw)

    def reset(self) -> None:
        for p in self.dir.iterdir():
            if p.name.startswith(("world.yaml.state", "world.yaml.lock", "plan.json")):
                p.unlink()
        shutil.copyfile(self.pristine, f"{self.world}.state")
        (self.dir / "plan.json").write_bytes(self.plan_bytes)

    def dump(self) -> dict[str, Any]:
        backend = open_world(str(self.world))
        try:
            return backend.dump()
        finally:
            backend.store.close()

    def advance(self, hours: int) -> None:
        from datetime import timedelta

        backend = open_world(str(self.world))
        try:
            backend.advance(timedelta(hours=hours))
        finally:
            backend.store.close()

    def journal(self) -> list[dict[str, Any]]:
        return list(read_events(journal_path(str(self.dir / "plan.json"))))

    # -- the safety checks, after every kill and every run ---------------------------------
    def assert_safe(self, where: str) -> None:
        doc = self.dump()
        bad = violations(doc, revoked=self.scenario.revoked)
        assert not bad, f"{where}: a version something needs is unusable:\n  " + "\n  ".join(bad[:10])
        bad = unsnapshotted_cancelled_jobs(self.initial, doc, APP)
        assert not bad, f"{where}: {bad}"
        for k in doc["kms"]:
            for n, state in k["versions"].items():
                if state in ("DESTROY_SCHEDULED", "DESTROYED"):
                    name = v(k["key"], int(n))
                    before = next(x for x in self.initial["kms"] if x["key"] == k["key"])["versions"].get(n)
                    assert name in self.scenario.destroys or before == state, f"{where}: {name} is {state}"
        # rotator's own inventory agrees: no version it disabled still has live data on it,
        # and no version it destroyed is pinned for destroy.
        backend = open_world(str(self.world))
        try:
            inv = scan_key(backend, APP)
        finally:
            backend.store.close()
        for n, use in inv.versions.items():
            state = use.version.state
            if state == "DISABLED" and not self.scenario.revoked:
                unreadable = [g for g in use.pins() if g.kind == UNREADABLE_OBJECT]
                before = next(x for x in self.initial["kms"] if x["key"] == APP)["versions"].get(n)
                assert before == "DISABLED" or not unreadable, f"{where}: version {n}: {unreadable[0]}"
            if state == "DESTROY_SCHEDULED":
                pins = guards.destroy_blockers(use)
                assert not pins, (
                    f"{where}: version {n} destroyed while pinned: {guards.describe_pin(pins[0])}"
                )

    def assert_journal_complete(self, where: str) -> None:
        events = self.journal()
        # (a run killed after writing `complete` is run again: it re-checks the plan's goal
        # against the world, changes nothing and ends with `verified`)
        assert events[-1]["event"] in ("complete", "verified"), f"{where}: journal ends with {events[-3:]}"
        assert [e["event"] for e in events].count("complete") == 1, f"{where}: `complete` not exactly once"
        for step in self.plan["steps"]:
            done = [e for e in events if e.get("step") == step["id"] and e["event"] == "done"]
            assert len(done) == 1, f"{where}: step {step['id']} has {len(done)} `done` events"


# -- chains: kill, resume, (kill again,) run to the end -------------------------------------------


@dataclass
class Kill:
    at: int = 0  # the K-th instrumented event, counted across the chain's runs until it fires
    # or: the N-th event with this label (counted the same way): the kind of point drawn
    # whatever order the rewrite threads reach their events in
    label: tuple[str, int] | None = None
    after: float | None = None  # or: from outside, this many seconds after the run started
    latency_ms: str | None = None
    note: str = ""


@dataclass
class Chain:
    kills: list[Kill]
    fired: list[str] = field(default_factory=list)


def run_chain(bench: Bench, chain: Chain, *, reset: bool = True) -> dict[str, Any]:
    """Reset (unless told not to), then apply until the plan is complete, killing as
    `chain` says."""
    if reset:
        bench.reset()
    pending = list(chain.kills)
    for _attempt in range(12):
        kill = pending[0] if pending else None
        env = {"ROTATOR_FAKE_LATENCY_MS": kill.latency_ms} if kill and kill.latency_ms else {}
        r = bench.apply(
            kill_at=kill.at if kill else 0,
            kill_label=kill.label if kill else None,
            kill_after=kill.after if kill else None,
            env=env,
        )
        if r.killed:
            assert kill is not None
            where = (
                f"killed at event {r.killed_at['n']} ({r.killed_at['label']})"
                if r.killed_at
                else f"killed from outside after {kill.after:.3f}s (latency {kill.latency_ms} ms)"
            )
            chain.fired.append(f"{where} [{kill.note}]")
            pending.pop(0)
            bench.assert_safe(f"{bench.scenario.playbook}: {where}")
            continue
        bench.assert_safe(f"{bench.scenario.playbook}: after a run that exited {r.code}")
        if kill is not None:
            if kill.label:
                label, nth = kill.label
                kill.label = (label, nth - r.matched)  # not reached: it counts on
                if kill.label[1] <= 0:
                    pending.pop(0)
            elif kill.at:
                kill.at -= r.events  # not reached in this run: it counts on into the next one
                if kill.at <= 0:
                    pending.pop(0)
            else:
                pending.pop(0)  # the delay outlived the run
        if r.code == 75:
            assert r.stderr.splitlines()[-1].startswith("waiting:"), r.stderr
            bench.advance(6)
            continue
        assert r.code == 0, f"{bench.scenario.playbook}: resumed apply exited {r.code}:\n{r.stderr[-3000:]}"
        bench.assert_journal_complete(f"{bench.scenario.playbook} after {chain.fired}")
        return bench.dump()
    raise AssertionError(f"{bench.scenario.playbook}: the chain did not finish: {chain.fired}")


def reference_run(bench: Bench) -> tuple[dict[str, Any], list[str]]:
    """The uninterrupted run, twice: the real `python -m rotator` (the reference world)
    and a forked child that records the events to draw kill points from."""
    bench.reset()
    env = {
        k: val
        for k, val in os.environ.items()
        if k not in ("ROTATOR_FAKE_LATENCY_MS", "ROTATOR_TEST_BACKEND")
    }
    for _ in range(3):
        p = subprocess.run(
            [sys.executable, "-m", "rotator", "--world", "world.yaml", "apply", "plan.json", "--yes"],
            cwd=bench.dir,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if p.returncode != 75:
            break
        bench.advance(6)
    assert p.returncode == 0, p.stderr
    reference = bench.dump()
    bench.assert_safe(f"{bench.scenario.playbook}: uninterrupted run")
    bench.reset()
    labels: list[str] = []
    for _ in range(3):
        r = bench.apply(record=True)
        labels += r.labels
        if r.code != 75:
            break
        bench.advance(6)
    assert r.code == 0, r.stderr
    assert normalized(bench.dump()) == normalized(reference), "a forked child and a real process disagree"
    return reference, labels


CATEGORIES = {
    "mid-listing": lambda lab: lab.startswith("storage.list_objects"),  # a page of a bucket's objects
    "mid-rewrite": lambda lab: lab.startswith("storage.rewrite_object"),
    "kms-change": lambda lab: (
        lab.split(":")[0]
        in (
            "kms.create_crypto_key_version",
            "kms.update_crypto_key_primary_version",
            "kms.update_crypto_key_version",
            "kms.destroy_crypto_key_version",
        )
    ),
    "service-change": lambda lab: (
        lab.split(":")[0]
        in (
            "run.update_service",
            "functions.redeploy_function",
            "functions.create_repository",
            "firestore.restore_database",
            "kms.set_iam_policy",
            "storage.patch_bucket_default_kms_key",
            "dataflow.snapshot_job",
        )
    ),
    "mid-journal-write": lambda lab: lab == "journal.torn",
    "before-commit": lambda lab: lab == "commit",
}


def draw_kills(labels: list[str], rng: random.Random, scenario: Scenario) -> list[Chain]:
    """KILL_POINTS kill points: one of each kind present first, the rest uniform."""
    total = len(labels)
    by_kind: dict[str, list[int]] = {k: [] for k in CATEGORIES}
    for i, label in enumerate(labels, 1):
        for kind, test in CATEGORIES.items():
            if test(label):
                by_kind[kind].append(i)
    snaps = [i for i, lab in enumerate(labels, 1) if lab == "dataflow.snapshot_job:after"]
    disables = [i for i, lab in enumerate(labels, 1) if lab == "kms.update_crypto_key_version:before"]
    if snaps and disables:
        by_kind["between-snapshot-and-disable"] = list(range(max(snaps) + 1, min(disables) + 1))
    points = []
    for kind, idx in sorted(by_kind.items()):
        if not idx:
            continue
        at = rng.choice(idx)
        if kind == "between-snapshot-and-disable":  # one thread there: the index is stable
            points.append(Kill(at=at, note=kind))
        else:
            nth = labels[:at].count(labels[at - 1])
            points.append(Kill(label=(labels[at - 1], nth), note=kind))
    for _ in range(DELAY_KILLS):
        latency = rng.choice(["1", "2", "3"])
        span = 0.25 if scenario.rewrite_to else 0.04
        points.append(Kill(after=round(rng.uniform(0.003, span), 4), latency_ms=latency, note="delay"))
    while len(points) < KILL_POINTS:
        points.append(Kill(at=rng.randint(1, total), note="uniform"))
    rng.shuffle(points)
    chains = []
    for i, point in enumerate(points):
        kills = [point]
        if i % DOUBLE_KILL_EVERY == DOUBLE_KILL_EVERY - 1 and (point.at or point.label):
            kills.append(Kill(at=rng.randint(1, max(1, total - point.at)), note="while resuming"))
        chains.append(Chain(kills))
    return chains


def assert_rewritten_exactly_once(bench: Bench, final: dict[str, Any]) -> None:
    """Every object the plan rewrites is at generation + 1 under the destination key;
    every other object is untouched."""
    before, after = live_objects(bench.initial), live_objects(final)
    assert set(after) == set(before)
    planned = bench.plan["summary"]["objects_to_rewrite"]
    dest = bench.scenario.rewrite_to
    primary = next((k["primary"] for k in final["kms"] if k["key"] == dest), None)
    moved = []
    for name, old in before.items():
        new = after[name]
        if new["generation"] == old["generation"]:
            assert new == old, f"{name} changed without a new generation"
            continue
        assert new["generation"] == old["generation"] + 1, (
            f"{name}: {old['generation']} -> {new['generation']}"
        )
        assert dest and new["kms_key_version"] == v(dest, primary), (name, new["kms_key_version"])
        assert (old["kms_key_version"] or "").startswith(APP + "/"), f"{name} was not under {APP}"
        moved.append(name)
    assert len(moved) == planned, f"{len(moved)} objects rewritten, the plan said {planned}"


# -- the tests -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def zygote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Zygote]:
    z = Zygote(tmp_path_factory.mktemp("zygote"))
    yield z
    z.close()


@pytest.mark.parametrize("playbook", list(SCENARIOS))
def test_sigkill_at_random_points_then_resume_ends_in_the_uninterrupted_world(
    playbook: str, tmp_path: Path, zygote: Zygote
) -> None:
    scenario = SCENARIOS[playbook]
    bench = Bench(tmp_path, zygote, scenario)
    reference, labels = reference_run(bench)
    if scenario.rewrite_to:
        assert_rewritten_exactly_once(bench, reference)
    else:
        assert live_objects(reference) == live_objects(bench.initial)
    expected = normalized(reference)

    rng = random.Random(f"{SEED}:{playbook}")
    chains = draw_kills(labels, rng, scenario)
    fired: list[str] = []
    for chain in chains:
        final = run_chain(bench, chain)
        assert normalized(final) == expected, f"{playbook}: after {chain.fired} the world differs"
        fired += chain.fired
    if scenario.outside_kill:
        dest = next(k for k in reference["kms"] if k["key"] == scenario.rewrite_to)
        fired.append(kill_a_real_process_mid_rewrite(bench, v(dest["key"], dest["primary"])))
        assert normalized(run_chain(bench, Chain([]), reset=False)) == expected
    extra = 0
    while len(fired) < KILL_POINTS and extra < 5 * KILL_POINTS:  # delays that outlived their run
        extra += 1
        chain = Chain([Kill(at=rng.randint(1, len(labels)), note="uniform")])
        assert normalized(run_chain(bench, chain)) == expected
        fired += chain.fired
    print(f"\n{playbook}: {len(fired)} kill points over {len(labels)} events:\n  " + "\n  ".join(fired))
    assert len(fired) >= KILL_POINTS
    kinds = " ".join(fired)
    assert "journal.torn" in kinds and "commit" in kinds, fired
    if scenario.rewrite_to:
        assert "storage.rewrite_object" in kinds and "storage.list_objects" in kinds, fired


def kill_a_real_process_mid_rewrite(bench: Bench, dest_version: str) -> str:
    """An operator's kill -9 of a real `python -m rotator apply`, once a third of the
    objects are rewritten (slowed down with ROTATOR_FAKE_LATENCY_MS). On a loaded
    machine the watcher may miss the window: then the world is reset and it tries again
    (the kill must happen; when is up to the scheduler)."""
    for _attempt in range(3):
        where = _kill_a_real_process_mid_rewrite(bench, dest_version)
        if where is not None:
            return where
    raise AssertionError("apply was never caught mid-rewrite in 3 attempts")


def _kill_a_real_process_mid_rewrite(bench: Bench, dest_version: str) -> str | None:
    bench.reset()
    total = bench.plan["summary"]["objects_to_rewrite"]
    env = {k: val for k, val in os.environ.items() if k not in ("ROTATOR_TEST_BACKEND",)}
    env["ROTATOR_FAKE_LATENCY_MS"] = "20"  # about half a second of rewriting to catch
    proc = subprocess.Popen(
        [sys.executable, "-m", "rotator", "--world", "world.yaml", "apply", "plan.json", "--yes"],
        cwd=bench.dir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        seen = 0
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with closing(
                    sqlite3.connect(f"file:{bench.world}.state?mode=ro", uri=True, timeout=30)
                ) as db:
                    (seen,) = db.execute(
                        "SELECT COUNT(*) FROM objects WHERE state='live' AND kms_key_version=?",
                        (dest_version,),
                    ).fetchone()
            except sqlite3.OperationalError:
                seen = 0
            if seen >= total // 3:
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.005)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != -signal.SIGKILL:
        assert proc.returncode == 0, f"apply exited {proc.returncode} before it could be killed"
        return None
    where = f"a real process killed from outside with about {seen}/{total} objects rewritten"
    bench.assert_safe(f"{bench.scenario.playbook}: {where}")
    return where


def test_a_kill_right_after_a_snapshot_does_not_take_a_second_one(tmp_path: Path, zygote: Zygote) -> None:
    """disable-key killed after SnapshotJob answered but before the journal recorded it:
    the resumed apply must find that snapshot, not take a second one (a duplicate
    snapshot of every Streaming Engine job per crash, paid for by the user)."""
    bench = Bench(tmp_path, zygote, SCENARIOS["disable-key"])
    bench.reset()
    labels = bench.apply(record=True).labels
    bench.reset()
    r = bench.apply(kill_at=labels.index("dataflow.snapshot_job:after") + 1)
    assert r.killed and r.killed_at and r.killed_at["label"] == "dataflow.snapshot_job:after", r
    bench.assert_safe("disable-key: killed right after a snapshot")
    final = run_chain(bench, Chain([]), reset=False)
    snapshots = {j["job"]: [s["snapshot"] for s in j.get("snapshots", [])] for j in final["dataflow"]}
    taken = {job: names for job, names in snapshots.items() if names}
    assert taken and all(len(names) == 1 for names in taken.values()), taken
