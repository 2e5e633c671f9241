"""Rewrites sent from worker processes (rotator.rewrite_workers, issue 14): every object
under a retiring version rewritten exactly once, none of the others; throttled answers
in a worker slow the bucket's rate in the apply process; a killed apply leaves no
worker behind and its resume sends no rewrite twice; Ctrl-C ends what is in flight; a
worker that dies or cannot start costs a failure or nothing, never a lost object.

Backends: gcp over the wire (the apply in this process or in its own, workers in theirs).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from harness import serve_world_file
from storage_http import Fault, StorageServer
from test_gcp_faults import KEY, Wire, world

from rotator import playbooks
from rotator.engine import apply_plan
from rotator.errors import Failure
from rotator.plan import build_plan, resolve_params
from rotator.ratelimit import AdaptiveRate
from rotator.rewrite_workers import MAX_AUTO_WORKERS, WORKERS_FROM_OBJECTS, WorkerPool, auto_workers

OBJECTS = 240


def doc(objects: int = OBJECTS) -> dict[str, Any]:
    d = world(objects=objects)
    d["storage"][0]["generate"].append({"prefix": "current/", "count": 20})  # under no key of ours
    return d


def plan_for(w: Wire) -> dict[str, Any]:
    pb = playbooks.load("rotate-key")
    return build_plan(w.gcp, pb, resolve_params(pb, KEY, None, {}))


def old_names(objects: int) -> set[str]:
    width = len(str(objects - 1))
    return {f"o/{i:0{width}d}" for i in range(objects)}


def rewrites_per_object(storage: StorageServer, ok_only: bool = False) -> Counter[str | None]:
    with storage._lock:
        log = list(zip(storage.requests, storage.statuses, strict=True))
    return Counter(
        r.object for r, status in log if r.op == "objects.rewrite" and (status == 200 or not ok_only)
    )


def assert_each_old_object_rewritten_once(storage: StorageServer, objects: int = OBJECTS) -> None:
    per = rewrites_per_object(storage, ok_only=True)
    assert old_names(objects) == {name for name in per if name and name.startswith("o/")}
    assert set(per.values()) == {1}
    assert not any(name and name.startswith("current/") for name in per)


def count_local_rewrites(w: Wire, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Rewrites this (the apply) process sends itself."""
    local = [0]
    inner = w.gcp.storage.rewrite_object

    def counted(*args: Any, **kwargs: Any) -> Any:
        local[0] += 1
        return inner(*args, **kwargs)

    monkeypatch.setattr(w.gcp.storage, "rewrite_object", counted)
    return local


@pytest.fixture
def ready_first(monkeypatch: pytest.MonkeyPatch) -> list[WorkerPool]:
    """Every object goes to a worker: the pool is handed over once each worker is
    ready (the apply process otherwise rewrites itself until one is). Returns the pools."""
    pools: list[WorkerPool] = []
    init = WorkerPool.__init__

    def waiting(self: WorkerPool, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        pools.append(self)
        wait_for(lambda: all(w.ready for w in self.workers))

    monkeypatch.setattr(WorkerPool, "__init__", waiting)
    return pools


def test_workers_rewrite_every_object_once_and_the_apply_process_tallies_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ready_first: list[WorkerPool]
) -> None:
    for w in Wire(tmp_path, monkeypatch, doc()).start():
        local = count_local_rewrites(w, monkeypatch)
        said: list[str] = []
        result = apply_plan(
            w.gcp, plan_for(w), "sha", w.plan_path, concurrency=8, max_rps=100, workers=2, emit=said.append
        )
        assert result["complete"]
        assert "starting 2 rewrite worker process(es) (--workers; 0: none)" in said
        assert_each_old_object_rewritten_once(w.storage)
        assert result["results"]["rewrite-objects"]["rewritten"] == OBJECTS
        assert local[0] == 0  # the workers sent them all
        assert [len(pool.workers) for pool in ready_first] == [2]
        assert all(worker.process.returncode == 0 for worker in ready_first[0].workers)


def test_throttled_rewrites_in_workers_slow_their_bucket_in_the_apply_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ready_first: list[WorkerPool]
) -> None:
    throttled = [0]
    inner = AdaptiveRate.on_throttled

    def counted(self: AdaptiveRate) -> None:
        throttled[0] += 1
        inner(self)

    monkeypatch.setattr(AdaptiveRate, "on_throttled", counted)
    for w in Wire(tmp_path, monkeypatch, doc()).start():
        local = count_local_rewrites(w, monkeypatch)
        w.storage.faults.append(Fault(op="objects.rewrite", status=429, rate=0.2, seed=14))
        result = apply_plan(w.gcp, plan_for(w), "sha", w.plan_path, concurrency=8, max_rps=200, workers=2)
        assert result["complete"]
        assert local[0] == 0  # every throttled answer below reached a worker
        assert_each_old_object_rewritten_once(w.storage)
        answered_429 = sum(1 for s in w.storage.statuses if s == 429)
        assert answered_429 > 10
        assert throttled[0] == answered_429  # each one, from a worker or not, told the bucket's rate


def test_a_worker_that_cannot_start_leaves_the_rewrites_to_the_apply_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rotator.services.storage.gcp import GcpStorage

    spawned = record_spawns(monkeypatch)
    recipe = {"connect": "rotator.services.storage.gcp:connect_alone"}  # no project: it fails
    monkeypatch.setattr(GcpStorage, "worker_recipe", lambda _self: recipe)
    for w in Wire(tmp_path, monkeypatch, doc()).start():
        local = count_local_rewrites(w, monkeypatch)
        result = apply_plan(w.gcp, plan_for(w), "sha", w.plan_path, concurrency=8, workers=2)
        assert result["complete"]
        assert_each_old_object_rewritten_once(w.storage)
        assert local[0] == OBJECTS
        assert [worker.process.wait(30) for worker in spawned] == [2, 2]  # "could not start"


def record_spawns(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    spawned: list[Any] = []
    spawn = WorkerPool._spawn

    def recorded(setup: Any) -> Any:
        worker = spawn(setup)
        spawned.append(worker)
        return worker

    monkeypatch.setattr(WorkerPool, "_spawn", staticmethod(recorded))
    return spawned


def test_a_worker_killed_mid_run_fails_what_it_held_and_resume_rewrites_the_rest_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ready_first: list[WorkerPool]
) -> None:
    spawned = record_spawns(monkeypatch)
    for w in Wire(tmp_path, monkeypatch, doc()).start():
        plan = plan_for(w)
        killed: list[int] = []

        def hook(phase: str, label: str, killed: list[int] = killed) -> None:
            # Killed while one of its rewrites is at the server: an answer it never reads.
            if phase == "before" and "/rewriteTo/" in label and not killed:
                for worker in spawned:
                    if worker.pending and not killed:
                        killed.append(worker.process.pid)
                        worker.process.kill()

        w.storage.hook = hook
        with pytest.raises(Failure, match="rewrite worker stopped before answering"):
            apply_plan(w.gcp, plan, "sha", w.plan_path, concurrency=8, max_rps=60, workers=2)
        assert killed
        w.storage.hook = None
        assert apply_plan(w.gcp, plan, "sha", w.plan_path, concurrency=8, workers=0)["complete"]
        # What the dead worker had sent ended at the service; the resume listed it as done.
        assert_each_old_object_rewritten_once(w.storage)
        assert set(rewrites_per_object(w.storage).values()) == {1}


def test_default_workers_one_per_cpu_for_a_big_job_none_on_one_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    import rotator.rewrite_workers as rw

    monkeypatch.setattr(rw, "cpus", lambda: 2)
    assert auto_workers(WORKERS_FROM_OBJECTS) == 2
    assert auto_workers(WORKERS_FROM_OBJECTS - 1) == 0
    monkeypatch.setattr(rw, "cpus", lambda: 1)
    assert auto_workers(10 * WORKERS_FROM_OBJECTS) == 0
    monkeypatch.setattr(rw, "cpus", lambda: 64)
    assert auto_workers(10 * WORKERS_FROM_OBJECTS) == MAX_AUTO_WORKERS


def test_a_resume_with_few_objects_left_starts_no_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default count follows what is left to rewrite, not what the plan counted: a
    resume after most objects were rewritten does not pay for workers' start."""
    import rotator.rewrite_workers as rw

    monkeypatch.setattr(rw, "cpus", lambda: 2)
    monkeypatch.setattr(rw, "WORKERS_FROM_OBJECTS", 100)  # the plan's 240 objects are a big job
    spawned = record_spawns(monkeypatch)
    for w in Wire(tmp_path, monkeypatch, doc()).start():
        plan = plan_for(w)
        # The first run rewrites 200 objects; the service then refuses the rest.
        w.storage.faults.append(Fault(op="objects.rewrite", status=403, skip=200))
        with pytest.raises(Failure):
            apply_plan(w.gcp, plan, "sha", w.plan_path, concurrency=8, workers=0)
        assert not spawned
        w.storage.faults.clear()
        assert apply_plan(w.gcp, plan, "sha", w.plan_path, concurrency=8)["complete"]
        assert not spawned  # 40 left: rewritten from the apply process
        assert_each_old_object_rewritten_once(w.storage)


# -- the apply in its own process ----------------------------------------------------------


def children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found |= {int(c) for c in (task / "children").read_text().split()}
        except OSError:  # a thread that ended meanwhile
            pass
    return found


def sockets(pid: int) -> int:
    """The sockets a process holds open (a worker's: its HTTP connections)."""
    n = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            n += os.readlink(fd).startswith("socket:")
        except OSError:
            pass
    return n


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def apply_process(folder: Path, env: dict[str, str], *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "rotator", "apply", "plan.json", "--yes", "--workers", "2", *extra],
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a shell gives a command
    )


def served_plan(tmp_path: Path, objects: int) -> tuple[Path, Any]:
    import yaml

    world_path = tmp_path / "world.yaml"
    world_path.write_text(yaml.safe_dump(doc(objects)))
    return world_path, serve_world_file(world_path, tmp_path / "cache")


def child_env(env: dict[str, str]) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ROTATOR_FAKE_", "ROTATOR_TEST_"))}
    return {**base, **env}


def make_plan(folder: Path, env: dict[str, str]) -> None:
    args = [sys.executable, "-m", "rotator", "plan", "rotate-key", "--key", KEY, "--out", "plan.json"]
    p = subprocess.run(args, cwd=folder, env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


def wait_for(condition: Any, seconds: float = 60.0) -> None:
    end = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)


@pytest.mark.parametrize("how", ["SIGKILL", "Ctrl-C"])
def test_a_stopped_apply_leaves_no_worker_behind_and_its_resume_sends_no_rewrite_twice(
    tmp_path: Path, how: str
) -> None:
    objects = 600
    world_path, serving = served_plan(tmp_path, objects)
    with serving as (served_env, storage, _grpc):
        env = child_env(served_env)
        make_plan(tmp_path, env)
        proc = apply_process(tmp_path, env, "--max-rps", "200", "--concurrency", "16")
        try:
            workers = children(proc.pid)
            wait_for(lambda: len(workers | children(proc.pid)) == 2 and all(sockets(p) for p in workers))
            workers |= children(proc.pid)
            # Each worker has connections of its own open: it sends rewrites.
            wait_for(lambda: storage.count(op="objects.rewrite") >= objects // 3)
            if how == "SIGKILL":
                os.kill(proc.pid, signal.SIGKILL)
            else:
                os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches its group
            _out, err = proc.communicate(timeout=120)
        finally:
            proc.kill()
        assert proc.returncode == (-signal.SIGKILL if how == "SIGKILL" else 130), err[-2000:]
        wait_for(lambda: not any(alive(pid) for pid in workers), 10)
        sent = storage.count(op="objects.rewrite")
        assert sent < objects
        time.sleep(0.3)
        assert storage.count(op="objects.rewrite") == sent  # nothing more from an orphan
        resumed = apply_process(tmp_path, env)
        try:
            _out, err = resumed.communicate(timeout=180)
        finally:
            resumed.kill()
        assert resumed.returncode == 0, err[-2000:]
        per = rewrites_per_object(storage)
        assert old_names(objects) == {n for n in per if n and n.startswith("o/")}
        assert set(per.values()) == {1}  # none sent twice, before or after the stop
        assert not any(n and n.startswith("current/") for n in per)
