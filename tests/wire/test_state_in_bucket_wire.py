"""State in a bucket over the wire: two machines (two processes, each with its own working
directory, HOME and cache, so their per-machine locks are different files) apply one
`gs://` plan through the gcp backend at once: only the lock object in the bucket stands
between them, and one refuses. Then the refused machine, once the first is SIGKILLed,
takes the lock over and finishes the apply exactly once.

Backends: gcp over the wire."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from harness import serve_world_file, world_dump
from worlds import APP_KEY, bucket, key, make_world, v, write_world

URL = "gs://ops-state/plans/rk.json"
TOTAL = 1500


def machine(tmp_path: Path, name: str, servers: dict[str, str]) -> tuple[Path, dict[str, str]]:
    folder = tmp_path / name
    folder.mkdir()
    env = {k: val for k, val in os.environ.items() if k != "ROTATOR_TEST_BACKEND"}
    env.update(servers, HOME=str(folder / "home"), XDG_CACHE_HOME=str(folder / "cache"))
    return folder, env


def rewritten(world: Path) -> dict[int, int]:
    gens: dict[int, int] = {}
    for o in next(b for b in world_dump(world)["storage"] if b["bucket"] == "bulk")["objects"]:
        gens[o["generation"]] = gens.get(o["generation"], 0) + 1
    return gens


def test_two_machines_one_gs_plan_one_refuses_then_takes_over_after_a_kill(
    tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv("ROTATOR_FAKE_LATENCY_MS", "3")  # read by the fake the servers serve
    world = write_world(
        tmp_path / "world.yaml",
        make_world(
            kms=[key(APP_KEY, {1: "ENABLED", 2: "ENABLED"}, primary=2)],
            storage=[
                bucket("bulk", generate=[{"prefix": "o/", "count": TOTAL, "kms_key_version": v(APP_KEY, 1)}]),
                bucket("ops-state", [], default_kms_key=None),
            ],
        ),
    )
    with serve_world_file(world, tmp_path / "server-cache") as (servers, storage, _grpc):
        laptop, laptop_env = machine(tmp_path, "laptop", servers)
        runner, runner_env = machine(tmp_path, "runner", servers)

        def rotator(folder: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "rotator", *args],
                cwd=folder,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )

        r = rotator(laptop, laptop_env, "plan", "rotate-key", "--key", APP_KEY, "--out", URL)
        assert r.returncode == 0, r.stderr
        first = subprocess.Popen(
            [sys.executable, "-m", "rotator", "apply", URL, "--yes", "--concurrency", "2"],
            cwd=laptop,
            env=laptop_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 60
            while rewritten(world).get(2, 0) < 100:
                if first.poll() is not None:
                    pytest.fail(f"the first apply ended early: {first.communicate()}")
                if time.monotonic() > deadline:
                    pytest.fail("no rewrites from the first apply")
                time.sleep(0.05)

            st = rotator(runner, runner_env, "--output", "json", "status", URL)
            assert st.returncode == 0, st.stderr
            life = json.loads(st.stdout)["life"]
            assert (life["state"], life["pid"]) == ("applying", first.pid)  # seen from elsewhere

            second = rotator(runner, runner_env, "apply", URL, "--yes")
            assert second.returncode == 3, second.stderr
            last = second.stderr.strip().splitlines()[-1]
            assert last.startswith("refused:") and f"pid {first.pid}" in last and "plans/rk.json.lock" in last

            os.kill(first.pid, signal.SIGKILL)
            first.wait(timeout=60)
        finally:
            if first.poll() is None:
                first.kill()
                first.wait()
        killed_at = rewritten(world).get(2, 0)
        assert 0 < killed_at < TOTAL

        # The dead laptop's lock is live for up to two minutes; another host must wait
        # for it to expire (a host cannot see another's processes). Age it instead of
        # sleeping: the object's expiry is what a real runner would wait for.
        from rotator.backends.fake import open_world

        backend = open_world(str(world))
        try:
            data, gen = backend.storage.download_bytes("ops-state", "plans/rk.json.lock")
            held = json.loads(data)
            assert held["pid"] == first.pid
            held.update(expires=time.time() - 1, host="a-laptop-that-died")
            backend.storage.upload_bytes(
                "ops-state", "plans/rk.json.lock", json.dumps(held).encode(), if_generation_match=gen
            )
        finally:
            backend.store.close()

        done = rotator(runner, runner_env, "apply", URL, "--yes")
        assert done.returncode == 0, done.stderr
        assert "took over the lock" in done.stderr and "expired" in done.stderr
        assert "resuming at step 2" in done.stderr
        assert storage.count("objects.insert", bucket="ops-state") > 0  # the state went over the wire
    assert rewritten(world) == {2: TOTAL}  # every object rewritten exactly once
    versions = next(k for k in world_dump(world)["kms"] if k["key"] == APP_KEY)["versions"]
    assert {int(n): s for n, s in versions.items()} == {1: "DISABLED", 2: "DISABLED", 3: "ENABLED"}


def test_a_lock_lost_over_the_wire_refuses_the_next_journal_write(tmp_path: Path, monkeypatch: Any) -> None:
    """The gcp backend's renewal meets a 412 from Cloud Storage (another machine took the
    lock over): it tells the apply to stop, and the next journal batch is refused."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    from rotator.backends.gcp.retry import RetryPolicy
    from rotator.errors import Refused
    from rotator.places import GcsPlace
    from rotator.places.gcslock import GcsLock
    from rotator.services.storage.gcp import GcpStorage

    world = write_world(
        tmp_path / "world.yaml",
        make_world(storage=[bucket("ops-state", [], default_kms_key=None)]),
    )
    with serve_world_file(world, tmp_path / "server-cache") as (servers, _storage, _grpc):
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", servers["STORAGE_EMULATOR_HOST"])
        client = storage.Client(project="demo", credentials=AnonymousCredentials())
        gcs = GcpStorage(client, "demo", RetryPolicy(sleep=lambda _s: None))
        place = GcsPlace(URL, gcs)
        lost: list[Refused] = []
        lock = GcsLock(place, lambda _m: None, ttl=0.6, on_lost=lost.append)
        lock.acquire()
        _data, gen = gcs.download_bytes("ops-state", "plans/rk.json.lock")
        taken = {"owner": "B", "host": "runner-7", "pid": 4242, "expires": time.time() + 600}
        gcs.upload_bytes(
            "ops-state", "plans/rk.json.lock", json.dumps(taken).encode(), if_generation_match=gen
        )
        deadline = time.monotonic() + 20
        while not lost and time.monotonic() < deadline:
            time.sleep(0.05)
        assert lost and "pid 4242 on runner-7" in lost[0].message
        with pytest.raises(Refused, match="lost the lock gs://ops-state/plans/rk.json.lock"):
            place.journal_writer().write('{"event": "record", "disabled": 1}', sync=True)
        assert place.journal_lines() is None
        lock.release()
        assert json.loads(gcs.download_bytes("ops-state", "plans/rk.json.lock")[0])["host"] == "runner-7"


def test_a_holder_whose_renewals_fail_over_the_wire_fences_itself(tmp_path: Path, monkeypatch: Any) -> None:
    """Over the wire the gcp backend retries a 503 before it answers: renewals that keep
    failing for longer than the TTL still stop the holder before its lock expires, and
    its next journal batch is refused once another machine took the expired lock over."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    from rotator import apierrors as api
    from rotator.backends.gcp.retry import RetryPolicy
    from rotator.errors import Refused
    from rotator.places import GcsPlace
    from rotator.places.gcslock import GcsLock
    from rotator.services.storage.gcp import GcpStorage

    world = write_world(
        tmp_path / "world.yaml",
        make_world(storage=[bucket("ops-state", [], default_kms_key=None)]),
    )
    with serve_world_file(world, tmp_path / "server-cache") as (servers, _storage, _grpc):
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", servers["STORAGE_EMULATOR_HOST"])
        client = storage.Client(project="demo", credentials=AnonymousCredentials())
        gcs = GcpStorage(client, "demo", RetryPolicy(sleep=lambda _s: None))

        class RenewalsFail:
            failing = False

            def __getattr__(self, name: str) -> Any:
                return getattr(gcs, name)

            def upload_bytes(
                self, bucket: str, name: str, data: bytes, *, if_generation_match: int | None
            ) -> int:
                if self.failing and name.endswith(".lock"):
                    raise api.Unavailable("503 backend error")
                return gcs.upload_bytes(bucket, name, data, if_generation_match=if_generation_match)

        flaky = RenewalsFail()
        place = GcsPlace(URL, flaky)  # type: ignore[arg-type]
        lost: list[tuple[float, Any]] = []
        lock = GcsLock(place, lambda _m: None, ttl=2.0, on_lost=lambda e: lost.append((time.time(), e)))
        lock.acquire()
        flaky.failing = True
        expires = float(json.loads(gcs.download_bytes("ops-state", "plans/rk.json.lock")[0])["expires"])
        while time.time() <= expires + 0.05:
            time.sleep(0.02)
        assert lost and lost[0][0] < expires  # stopped before the lock expired
        assert "could not renew the lock gs://ops-state/plans/rk.json.lock since" in lost[0][1].message
        taker = GcsLock(GcsPlace(URL, gcs), lambda _m: None, ttl=600)
        taker.acquire()
        flaky.failing = False
        with pytest.raises(Refused, match="could not renew the lock gs://ops-state/plans/rk.json.lock"):
            place.journal_writer().write('{"event": "record", "disabled": 1}', sync=True)
        assert place.journal_lines() is None
        lock.release()
        assert json.loads(gcs.download_bytes("ops-state", "plans/rk.json.lock")[0])["owner"] == taker.owner
        taker.release()
