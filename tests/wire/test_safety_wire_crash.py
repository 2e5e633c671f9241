"""Crash safety over the wire (issue 6.1 with the gcp backend): a real `python -m
rotator apply` talking to the wire servers through the official clients is SIGKILLed
from inside the server at a drawn request: right before the request takes effect, or
right after it took effect and before the answer leaves (the worst case: rotator dies
not knowing its change happened). Re-run to the end each time, every chain must end in
the world of an uninterrupted run, with no version that something needs disabled or
destroyed at any point (the in-process suite, tests/safety/test_safety_crash.py, kills at 20+
points per playbook; this one repeats it through the real backend's code paths).

Figures (CI size): WIRE_KILL_POINTS = 5 per playbook (20 in all), one of each kind of
request present first (mid-listing, mid-rewrite, a KMS change, a service change), then
uniform. A bigger run: ROTATOR_WIRE_CRASH_KILL_POINTS=25 pytest
tests/wire/test_safety_wire_crash.py.

Backends: gcp over the wire (in real processes).
"""

from __future__ import annotations

import copy
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import serve_world_file, world_advance, world_dump
from safety_support import normalized, violations
from test_safety_faults import PLAYBOOKS
from worlds import APP_KEY as APP

from rotator.journal import journal_path, read_events

WIRE_KILL_POINTS = int(os.environ.get("ROTATOR_WIRE_CRASH_KILL_POINTS", "5"))
SEED = int(os.environ.get("ROTATOR_CRASH_SEED", "20261123"))

CATEGORIES = {
    "mid-listing": lambda label: label.startswith("GET ") and label.endswith("/o"),
    "mid-rewrite": lambda label: "/rewriteTo/" in label,
    "kms-change": lambda label: (
        label.split("/")[-1]
        in (
            "CreateCryptoKeyVersion",
            "UpdateCryptoKeyPrimaryVersion",
            "UpdateCryptoKeyVersion",
            "DestroyCryptoKeyVersion",
        )
    ),
    "service-change": lambda label: (
        label.split("/")[-1]
        in (
            "UpdateService",
            "UpdateFunction",
            "RestoreDatabase",
            "SnapshotJob",
            "SetIamPolicy",
            "CreateRepository",
        )
        or (label.startswith("PATCH ") and "/o/" not in label)
    ),
}


@dataclass
class Outcome:
    code: int | None  # None: killed
    events: int
    stderr: str


@dataclass
class Chain:
    """One world, served over the wire, applied to the end; killed at `kill` (the n-th
    server event of the chain, counting across its runs)."""

    folder: Path
    playbook: str
    kill: int | None = None
    events: list[str] = field(default_factory=list)
    killed_at: str | None = None

    def __post_init__(self) -> None:
        self.world = self.folder / "world.yaml"

    def run(self, stack: ExitStack) -> dict[str, Any]:
        env, storage, grpc_server = stack.enter_context(serve_world_file(self.world, self.folder / "cache"))
        child_env = {
            k: v for k, v in os.environ.items() if not k.startswith(("ROTATOR_FAKE_", "ROTATOR_TEST_"))
        }
        child_env.update(env)
        lock = threading.Lock()
        current: list[subprocess.Popen[str] | None] = [None]

        def hook(phase: str, label: str) -> None:
            with lock:
                self.events.append(f"{phase} {label}")
                due = self.kill is not None and len(self.events) == self.kill and self.killed_at is None
                if due:
                    self.killed_at = self.events[-1]
                    proc = current[0]
                    assert proc is not None
                    os.kill(proc.pid, signal.SIGKILL)

        storage.hook = grpc_server.hook = hook
        for _attempt in range(8):
            proc = subprocess.Popen(
                [sys.executable, "-m", "rotator", "apply", "plan.json", "--yes", "--concurrency", "4"],
                cwd=self.folder,
                env=child_env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            with lock:
                current[0] = proc
            _out, err = proc.communicate(timeout=180)
            if proc.returncode == -signal.SIGKILL:
                self.assert_safe(f"killed at {self.killed_at}")
                continue
            self.assert_safe(f"after a run that exited {proc.returncode}")
            if proc.returncode == 75:  # waiting (Firestore re-encryption, R21): time moves on
                self.advance(timedelta(hours=6))
                continue
            assert proc.returncode == 0, f"{self.playbook}: apply exited {proc.returncode}:\n{err[-3000:]}"
            storage.hook = grpc_server.hook = None
            return self.dump()
        raise AssertionError(f"{self.playbook}: did not finish (killed at {self.killed_at})")

    def assert_safe(self, when: str) -> None:
        doc = self.dump()
        revoked = (APP,) if self.playbook == "disable-key" else ()
        assert violations(doc, revoked=revoked) == [], f"{self.playbook}, {when}"

    def advance(self, delta: timedelta) -> None:
        world_advance(self.world, delta)

    def dump(self) -> dict[str, Any]:
        return world_dump(self.world)


def prepare(folder: Path, playbook: str, plan_from: Path | None) -> Chain:
    build, new_key, sets = PLAYBOOKS[playbook]
    folder.mkdir(parents=True)
    (folder / "world.yaml").write_text(yaml.safe_dump(copy.deepcopy(build()), sort_keys=False))
    if plan_from is not None:
        shutil.copy(plan_from, folder / "plan.json")
    return Chain(folder, playbook)


def make_plan(chain: Chain, stack: ExitStack) -> None:
    _build, new_key, sets = PLAYBOOKS[chain.playbook]
    env, _storage, _grpc = stack.enter_context(serve_world_file(chain.world, chain.folder / "cache"))
    args = [sys.executable, "-m", "rotator", "plan", chain.playbook, "--key", APP, "--out", "plan.json"]
    if new_key:
        args += ["--new-key", new_key]
    for k, val in sets.items():
        args += ["--set", f"{k}={val}"]
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("ROTATOR_FAKE_", "ROTATOR_TEST_"))}
    p = subprocess.run(args, cwd=chain.folder, env={**child_env, **env}, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


def draw(events: list[str], rng: random.Random) -> list[int]:
    """Kill points (1-based event numbers): one of each kind present, then uniform."""
    points: set[int] = set()
    for matches in CATEGORIES.values():
        found = [i + 1 for i, e in enumerate(events) if matches(e.split(" ", 1)[1])]
        if found:
            points.add(rng.choice(found))
    while len(points) < min(WIRE_KILL_POINTS, len(events)):
        points.add(rng.randint(1, len(events)))
    return sorted(points)


@pytest.mark.parametrize("playbook", list(PLAYBOOKS))
def test_sigkill_over_the_wire_then_resume_ends_in_the_uninterrupted_world(
    tmp_path: Path, playbook: str
) -> None:
    rng = random.Random(f"{SEED}/{playbook}")
    with ExitStack() as stack:
        reference = prepare(tmp_path / "reference", playbook, None)
        make_plan(reference, stack)
    with ExitStack() as stack:
        expected = reference.run(stack)
    plan = reference.folder / "plan.json"
    assert reference.events, "the servers saw nothing"
    points = draw(reference.events, rng)
    assert len(points) >= min(WIRE_KILL_POINTS, len(reference.events))
    fired = []
    for n in points:
        chain = prepare(tmp_path / f"kill-{n}", playbook, plan)
        chain.kill = n
        with ExitStack() as stack:
            final = chain.run(stack)
        assert chain.killed_at is not None, f"event {n} was never reached"
        fired.append(chain.killed_at)
        assert normalized(final) == normalized(expected), f"{playbook}: killed at {chain.killed_at}"
        done = [
            e for e in read_events(journal_path(str(chain.folder / "plan.json"))) if e.get("event") == "done"
        ]
        steps = [e["step"] for e in done]
        assert len(steps) == len(set(steps)), f"a step finished twice: {steps}"
    print(json.dumps({playbook: fired}, indent=1))
