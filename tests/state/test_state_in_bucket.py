"""State in a bucket (issue 13.5): a `gs://BUCKET/PATH.json` plan keeps its journal, audit
record and apply lock as objects beside it, so an apply started on one machine is
resumed from another directory and another HOME, and two applies of one plan never run
at once. The CLI tests run on the fake backend (the objects live in the fake world's
buckets) and over the wire (tests/wire/test_suites_over_the_wire.py lists this file).

Backends: fake; gcp over the wire (some tests: tests/wire/test_suites_over_the_wire.py names them)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from helpers import WorldCli, assert_failed, run_cli
from worlds import (
    APP_KEY,
    BUCKET,
    ENCRYPTER_DECRYPTER,
    FIRESTORE_AGENT,
    OBJECT,
    bucket,
    database,
    make_world,
    obj,
    v,
)

from rotator.backends.fake import open_world
from rotator.errors import Refused
from rotator.places import GcsPlace

STATE = "ops-state"
URL = f"gs://{STATE}/plans/rk.json"


def state_bucket() -> dict[str, Any]:
    """Where the plans live: a bucket no key of the plan protects."""
    return bucket(STATE, [], default_kms_key=None)


def world_with_state(tmp_path: Path, **overrides: Any) -> WorldCli:
    """The default world with a state bucket; the Firestore agent holds the key too, as the
    plan's preflight requires when a database uses it (R5)."""
    doc = make_world(storage=[bucket(BUCKET, [obj(OBJECT, v(APP_KEY, 1))]), state_bucket()], **overrides)
    doc["kms"][0]["iam"][ENCRYPTER_DECRYPTER].append(FIRESTORE_AGENT)
    return WorldCli(tmp_path, doc)


def state_objects(w: WorldCli) -> list[str]:
    return sorted(o["name"] for o in w.bucket_of(STATE)["objects"] if not o.get("deleted"))


def versions_of(w: WorldCli) -> dict[int, str]:
    return {int(n): s for n, s in w.key_of(APP_KEY)["versions"].items()}


def test_plan_apply_status_show_with_the_plan_in_a_bucket(tmp_path: Path) -> None:
    w = world_with_state(tmp_path)
    r = w.plan("rotate-key", APP_KEY, out=URL)
    assert r.code == 0, r
    assert state_objects(w) == ["plans/rk.json"]
    assert w("show", URL, "--output", "json").json()["params"]["key"] == APP_KEY
    assert w.status(URL)["state"] == "planned"

    r = w.apply(URL)
    assert r.code == 0, r
    names = state_objects(w)
    journal = [n for n in names if n.startswith("plans/rk.json.journal/")]
    audit = [n for n in names if n.startswith("plans/rk.json.audit/")]
    assert journal and audit
    assert "plans/rk.json.lock" not in names  # released at the end
    st = w.status(URL)
    assert st["state"] == "done" and {s["state"] for s in st["steps"]} == {"done"}
    assert w.key_of(APP_KEY)["primary"] == 3
    assert not (tmp_path / "plans").exists() and not list(tmp_path.glob("*.journal"))  # nothing on disk

    r = w.apply(URL)  # applied again: re-checked, nothing done
    assert r.code == 0 and "already applied" in r.stdout, r


def test_an_edited_plan_in_a_bucket_is_refused(tmp_path: Path) -> None:
    w = world_with_state(tmp_path)
    assert w.plan("rotate-key", APP_KEY, out=URL).code == 0

    def edit(backend: Any) -> None:
        data, _gen = backend.storage.download_bytes(STATE, "plans/rk.json")
        doc = json.loads(data)
        doc["steps"] = doc["steps"][:1]
        backend.storage.upload_bytes(
            STATE, "plans/rk.json", json.dumps(doc).encode(), if_generation_match=None
        )

    w.change(edit)
    assert_failed(w.apply(URL), 2, "error", URL, "edited")
    assert w.key_of(APP_KEY)["primary"] == 2


def test_a_waiting_apply_resumes_from_another_directory_and_home(tmp_path: Path, monkeypatch: Any) -> None:
    (tmp_path / "laptop").mkdir()
    w = world_with_state(tmp_path / "laptop", firestore=[database(active=[v(APP_KEY, 2)])])
    assert w.plan("rotate-key", APP_KEY, out=URL).code == 0
    assert w.apply(URL).code == 75
    assert w("world", "advance", "7h").code == 0

    elsewhere = tmp_path / "runner"
    elsewhere.mkdir()
    monkeypatch.setenv("HOME", str(elsewhere / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(elsewhere / "cache"))
    r = run_cli(["--world", str(w.path), "apply", URL, "--yes"], cwd=elsewhere)
    assert r.code == 0, r
    assert "resuming at step" in r.stderr
    assert sorted(versions_of(w)) == [1, 2, 3]  # one new version, not two
    assert w.object_of(BUCKET, OBJECT)["generation"] == 2  # rewritten once
    assert w.status(URL)["life"]["runs"] == 2


def test_out_over_a_waiting_apply_in_a_bucket_is_refused(tmp_path: Path) -> None:
    w = world_with_state(tmp_path, firestore=[database(active=[v(APP_KEY, 2)])])
    assert w.plan("rotate-key", APP_KEY, out=URL).code == 0
    assert w.apply(URL).code == 75
    before = state_objects(w)
    assert_failed(w.plan("rotate-key", APP_KEY, out=URL), 2, "error", URL, "unfinished")
    assert state_objects(w) == before
    r = w.plan("rotate-key", APP_KEY, "--force", out=URL)
    assert r.code == 0, r
    kept = [n for n in state_objects(w) if ".journal." in n and n.endswith(".jsonl")]
    assert kept and f"gs://{STATE}/plans/rk.json.journal." in r.stderr
    assert w.status(URL)["state"] == "planned"


def lock_object(host: str, pid: int, expires_in: float) -> bytes:
    return json.dumps(
        {"owner": "someone-else", "host": host, "pid": pid, "expires": time.time() + expires_in, "plan": URL}
    ).encode()


def test_a_live_lock_refuses_naming_its_owner_and_an_expired_one_is_taken_over(tmp_path: Path) -> None:
    w = world_with_state(tmp_path)
    assert w.plan("rotate-key", APP_KEY, out=URL).code == 0
    w.change(
        lambda b: b.storage.upload_bytes(
            STATE, "plans/rk.json.lock", lock_object("runner-7", 4242, 600), if_generation_match=0
        )
    )
    r = w.apply(URL)
    assert_failed(r, 3, "refused", URL, "pid 4242 on runner-7", "plans/rk.json.lock")
    assert w.key_of(APP_KEY)["primary"] == 2  # nothing changed
    assert w.status(URL)["state"] == "planned"

    def expire(backend: Any) -> None:
        _data, gen = backend.storage.download_bytes(STATE, "plans/rk.json.lock")
        backend.storage.upload_bytes(
            STATE, "plans/rk.json.lock", lock_object("runner-7", 4242, -5), if_generation_match=gen
        )

    w.change(expire)
    r = w.apply(URL)
    assert r.code == 0, r
    assert "took over the lock" in r.stderr and "runner-7" in r.stderr and "expired" in r.stderr
    assert w.key_of(APP_KEY)["primary"] == 3


def test_journal_batches_are_generation_checked(tmp_path: Path) -> None:
    """Two writers of one journal (two machines): the second to add a batch number that
    exists is refused, so their events can never interleave."""
    w = world_with_state(tmp_path)
    backend = open_world(str(w.path))
    try:
        place = GcsPlace(URL, backend.storage)
        first, second = place.journal_writer(), place.journal_writer()
        first.write('{"event": "begin", "t": "1"}', sync=True)
        with pytest.raises(Refused, match="another apply wrote journal batch 1"):
            second.write('{"event": "begin", "t": "2"}', sync=True)
        assert place.journal_lines() == ['{"event": "begin", "t": "1"}']
    finally:
        backend.store.close()


# -- real processes: SIGKILL, then resume elsewhere; two at once --------------------------------


def bulk_world_with_state(tmp_path: Path, count: int) -> Path:
    from worlds import key, write_world

    doc = make_world(
        kms=[key(APP_KEY, {1: "ENABLED", 2: "ENABLED"}, primary=2)],
        storage=[
            bucket(
                "bulk",
                generate=[{"prefix": "o/", "count": count, "kms_key_version": v(APP_KEY, 1), "size": 10}],
            ),
            state_bucket(),
        ],
    )
    (tmp_path / "laptop").mkdir()
    return write_world(tmp_path / "laptop" / "world.yaml", doc)


def rotator(world: Path, cwd: Path, *args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "rotator", "--world", str(world), *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def machine(tmp_path: Path, name: str, **extra: str) -> tuple[Path, dict[str, str]]:
    """A working directory and a HOME of their own: another machine, as far as rotator's
    local state goes."""
    folder = tmp_path / name
    folder.mkdir(exist_ok=True)
    env = {
        k: val
        for k, val in os.environ.items()
        if k not in ("ROTATOR_FAKE_LATENCY_MS", "ROTATOR_TEST_BACKEND")
    }
    env.update(HOME=str(folder / "home"), XDG_CACHE_HOME=str(folder / "cache"), **extra)
    return folder, env


def rewritten(world: Path) -> int:
    import sqlite3

    with closing(sqlite3.connect(f"file:{world}.state?mode=ro", uri=True, timeout=30.0)) as db:
        (n,) = db.execute(
            "SELECT COUNT(*) FROM objects WHERE bucket='bulk' AND state='live' AND generation=2"
        ).fetchone()
    return int(n)


def generations(world: Path) -> dict[int, int]:
    import sqlite3

    with closing(sqlite3.connect(f"file:{world}.state?mode=ro", uri=True, timeout=30.0)) as db:
        rows = db.execute(
            "SELECT generation, COUNT(*) FROM objects WHERE bucket='bulk' AND state='live' "
            "GROUP BY generation"
        ).fetchall()
    return {int(g): int(n) for g, n in rows}


def wait_until(predicate: Any, proc: subprocess.Popen[str], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            pytest.fail(f"the apply exited ({proc.returncode}) before {what}: {proc.communicate()}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} in {timeout}s")
        time.sleep(0.01)


def test_sigkilled_apply_with_bucket_state_resumes_from_another_machine_exactly_once(tmp_path: Path) -> None:
    total = 2000
    world = bulk_world_with_state(tmp_path, total)
    laptop, laptop_env = machine(tmp_path, "laptop", ROTATOR_FAKE_LATENCY_MS="2")
    r = subprocess.run(
        [sys.executable, "-m", "rotator", "--world", str(world), "plan", "rotate-key", "--key", APP_KEY]
        + ["--out", URL],
        cwd=laptop,
        env=laptop_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    proc = rotator(world, laptop, "apply", URL, "--yes", "--concurrency", "4", env=laptop_env)
    try:
        wait_until(lambda: rewritten(world) >= 200, proc, "200 rewrites")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed_at = rewritten(world)
    assert 0 < killed_at < total

    runner, runner_env = machine(tmp_path, "runner")
    done = subprocess.run(
        [sys.executable, "-m", "rotator", "--world", str(world), "apply", URL, "--yes"],
        cwd=runner,
        env=runner_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "took over the lock" in done.stderr and "its process is gone" in done.stderr
    assert "resuming at step 2" in done.stderr
    assert generations(world) == {2: total}  # every object rewritten, and only once
    backend = open_world(str(world))
    try:
        assert backend.kms.get_crypto_key(APP_KEY).primary == 3
        assert [v.number for v in backend.kms.list_crypto_key_versions(APP_KEY)] == [1, 2, 3]
        place = GcsPlace(URL, backend.storage)
        events = [json.loads(line) for line in place.journal_lines() or []]
        assert [e["event"] for e in events].count("complete") == 1
        assert [e["event"] for e in events].count("run") == 2
    finally:
        backend.store.close()
    assert not list(laptop.glob("*.journal")) and not list(runner.glob("*.journal"))


def test_two_applies_of_one_bucket_plan_at_once_one_refuses(tmp_path: Path) -> None:
    world = bulk_world_with_state(tmp_path, 1500)
    laptop, laptop_env = machine(tmp_path, "laptop", ROTATOR_FAKE_LATENCY_MS="2")
    r = subprocess.run(
        [sys.executable, "-m", "rotator", "--world", str(world), "plan", "rotate-key", "--key", APP_KEY]
        + ["--out", URL],
        cwd=laptop,
        env=laptop_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    first = rotator(world, laptop, "apply", URL, "--yes", env=laptop_env)
    try:
        wait_until(lambda: rewritten(world) >= 50, first, "the first apply's rewrites")
        runner, runner_env = machine(tmp_path, "runner")
        second = subprocess.run(
            [sys.executable, "-m", "rotator", "--world", str(world), "apply", URL, "--yes"],
            cwd=runner,
            env=runner_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode == 3, second.stderr
        assert second.stderr.strip().splitlines()[-1].startswith("refused:")
        out, err = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 0, err
    assert generations(world) == {2: 1500}


def test_rollback_of_a_plan_in_a_bucket(tmp_path: Path) -> None:
    w = world_with_state(tmp_path)
    dk, rb = f"gs://{STATE}/plans/dk.json", f"gs://{STATE}/plans/rb.json"
    assert w.plan("disable-key", APP_KEY, out=dk).code == 0
    assert w.apply(dk).code == 0
    assert versions_of(w) == {1: "DISABLED", 2: "DISABLED"}
    r = w("plan", "rollback", "--set", f"plan={dk}", "--out", rb)
    assert r.code == 0, r
    assert w.apply(rb).code == 0
    assert versions_of(w) == {1: "ENABLED", 2: "ENABLED"}
    assert w.status(dk)["state"] == "rolled back"
    assert_failed(w.apply(dk), 4, "stale", dk, "rolled back")


@pytest.mark.parametrize("playbook", ["disable-key", "rotate-key"])
def test_state_in_a_bucket_protected_by_the_plans_key_is_refused_at_plan_time(
    tmp_path: Path, playbook: str
) -> None:
    """R14: the plan's own journal must not live under the key it disables: refused before
    anything is written or changed, naming the bucket, the key and the rule."""
    doc = make_world(storage=[bucket(BUCKET, [obj(OBJECT, v(APP_KEY, 1))]), bucket(STATE, [])])
    doc["kms"][0]["iam"][ENCRYPTER_DECRYPTER].append(FIRESTORE_AGENT)
    w = WorldCli(tmp_path, doc)
    assert w.bucket_of(STATE)["default_kms_key"] == APP_KEY
    before = w.dump()
    line = assert_failed(w.plan(playbook, APP_KEY, out=f"gs://{STATE}/dk.json"), 2, "error", "R14")
    assert f"gs://{STATE}" in line and APP_KEY in line
    assert w.dump() == before and state_objects(w) == []


def test_state_in_a_bucket_protected_by_the_plans_key_is_refused_at_apply_time(tmp_path: Path) -> None:
    """The bucket's default key was switched to the plan's key after planning: apply
    refuses before the lock, the journal or any version changes."""
    w = world_with_state(tmp_path)
    dk = f"gs://{STATE}/dk.json"
    assert w.plan("disable-key", APP_KEY, out=dk).code == 0
    w.change(lambda b: b.storage.patch_bucket_default_kms_key(STATE, APP_KEY))
    before = w.dump()
    line = assert_failed(w.apply(dk), 2, "error", f"gs://{STATE}", APP_KEY, "R14")
    assert w.dump() == before
    assert state_objects(w) == ["dk.json"]  # no journal, no lock
    assert versions_of(w) == {1: "ENABLED", 2: "ENABLED"}
    assert line.count("\n") == 0


def test_an_apply_that_loses_its_lock_stops_and_writes_no_more_journal(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """Another machine took the lock over (this one stalled past the TTL): the apply stops
    starting work, its next journal write is refused, and it ends `refused:` (exit 3)
    naming the lock object and the new owner. The disable after the wait never runs."""
    import threading
    from datetime import timedelta

    from rotator import places
    from rotator.engine import apply_plan
    from rotator.errors import RotatorError
    from rotator.interrupts import StopRequest
    from rotator.places import gcslock
    from rotator.plandoc import load_plan

    w = world_with_state(tmp_path, firestore=[database(active=[v(APP_KEY, 2)])])
    assert w.plan("rotate-key", APP_KEY, out=URL).code == 0
    monkeypatch.setattr(gcslock, "LOCK_TTL_SECONDS", 0.9)
    monkeypatch.setattr(places, "_backend", [])  # use_backend below is undone after the test
    backend, other = open_world(str(w.path)), open_world(str(w.path))
    try:
        places.use_backend(lambda: backend)
        doc, sha = load_plan(URL)
        outcome: dict[str, Any] = {}
        messages: list[str] = []

        def run() -> None:
            try:
                outcome["result"] = apply_plan(
                    backend,
                    doc,
                    sha,
                    URL,
                    wait=timedelta(hours=1),
                    stop=StopRequest(),
                    place=GcsPlace(URL, backend.storage),
                    emit=messages.append,
                )
            except RotatorError as e:
                outcome["error"] = e

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        seen = GcsPlace(URL, other.storage)
        deadline = time.monotonic() + 60
        while not any("wait-firestore-reencryption" in line for line in seen.journal_lines() or []):
            assert time.monotonic() < deadline and thread.is_alive(), (outcome, messages)
            time.sleep(0.05)
        _data, gen = other.storage.download_bytes(STATE, "plans/rk.json.lock")
        other.storage.upload_bytes(
            STATE, "plans/rk.json.lock", lock_object("runner-7", 4242, 600), if_generation_match=gen
        )
        batches = [n for n in state_objects(w) if ".journal/" in n]
        thread.join(30)
        assert not thread.is_alive()
        err = outcome.get("error")
        assert isinstance(err, Refused) and err.exit_code == 3, (outcome, messages)
        assert "gs://ops-state/plans/rk.json.lock" in err.message and "pid 4242 on runner-7" in err.message
        assert "\n" not in err.line()
        assert [n for n in state_objects(w) if ".journal/" in n] == batches  # not one more batch
        assert json.loads(other.storage.download_bytes(STATE, "plans/rk.json.lock")[0])["host"] == "runner-7"
        assert versions_of(w)[2] == "ENABLED"  # the disable after the wait never ran
    finally:
        backend.store.close()
        other.store.close()


def test_a_lost_lock_refuses_the_next_journal_write(tmp_path: Path) -> None:
    """/tmp/review/lostlock.py: renewal finds another owner; the writer refuses."""
    w = world_with_state(tmp_path)
    backend = open_world(str(w.path))
    try:
        from rotator.places.gcslock import GcsLock

        place = GcsPlace(URL, backend.storage)
        lost: list[Any] = []
        lock = GcsLock(place, lambda _m: None, ttl=0.6, on_lost=lost.append)
        lock.acquire()
        _data, gen = backend.storage.download_bytes(STATE, "plans/rk.json.lock")
        backend.storage.upload_bytes(
            STATE, "plans/rk.json.lock", lock_object("runner-7", 4242, 600), if_generation_match=gen
        )
        deadline = time.monotonic() + 10
        while not lost and time.monotonic() < deadline:
            time.sleep(0.05)
        assert lost and "pid 4242 on runner-7" in lost[0].message
        with pytest.raises(Refused, match="lost the lock gs://ops-state/plans/rk.json.lock"):
            place.journal_writer().write('{"event": "record", "disabled": 1}', sync=True)
        assert place.journal_lines() is None
        lock.release()
    finally:
        backend.store.close()


class LockRenewalsFail:
    """Cloud Storage whose writes of the lock object answer 503 while `failing` (an outage
    seen only by the holder): everything else goes through."""

    def __init__(self, storage: Any, lock: str = "plans/rk.json.lock"):
        self._storage, self._lock, self.failing = storage, lock, False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._storage, name)

    def upload_bytes(self, bucket: str, name: str, data: bytes, *, if_generation_match: int | None) -> int:
        if self.failing and name == self._lock:
            from rotator import apierrors as api

            raise api.Unavailable("503 backend error")
        return int(self._storage.upload_bytes(bucket, name, data, if_generation_match=if_generation_match))

    def delete_object(self, bucket: str, name: str, *, if_generation_match: int | None) -> None:
        if self.failing and name == self._lock:
            from rotator import apierrors as api

            raise api.Unavailable("503 backend error")
        self._storage.delete_object(bucket, name, if_generation_match=if_generation_match)


def test_a_holder_whose_renewals_fail_fences_itself_before_a_takeover(tmp_path: Path) -> None:
    """/tmp/review2/r/lock_expire.py: renewals answer 503 for longer than the TTL. The
    holder stops (as for a lost lock) before its lock expires, so when another machine
    takes the expired lock over, the old holder has already stopped and its journal
    write is refused: the journal the new owner holds never forks."""
    from rotator.places.gcslock import GcsLock

    w = world_with_state(tmp_path)
    backend, other = open_world(str(w.path)), open_world(str(w.path))
    try:
        storage = LockRenewalsFail(backend.storage)
        place = GcsPlace(URL, storage)
        lost: list[tuple[float, Any]] = []
        lock = GcsLock(place, lambda _m: None, ttl=2.0, on_lost=lambda e: lost.append((time.time(), e)))
        lock.acquire()
        storage.failing = True
        expires = float(json.loads(other.storage.download_bytes(STATE, "plans/rk.json.lock")[0])["expires"])
        while time.time() <= expires + 0.05:
            time.sleep(0.02)
        assert lost, "the holder did not stop before its lock expired"
        assert lost[0][0] < expires  # fenced before any taker may take over
        message = lost[0][1].message
        assert "could not renew the lock gs://ops-state/plans/rk.json.lock since" in message
        assert "503" in message and "\n" not in message
        assert lost[0][1].exit_code == 3
        taker = GcsLock(GcsPlace(URL, other.storage), lambda _m: None, ttl=600)
        taker.acquire()  # expired: taken over
        storage.failing = False  # the outage ends
        with pytest.raises(Refused, match="could not renew the lock gs://ops-state/plans/rk.json.lock"):
            place.journal_writer().write('{"event": "record", "disabled": 1}', sync=True)
        assert place.journal_lines() is None
        time.sleep(1.0)  # no renewal after the fence
        held = json.loads(other.storage.download_bytes(STATE, "plans/rk.json.lock")[0])
        assert held["owner"] == taker.owner
        assert len(lost) == 1
        lock.release()
        taker.release()
    finally:
        backend.store.close()
        other.store.close()


def test_an_apply_whose_lock_renewals_fail_stops_before_the_lock_expires(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """An apply waiting on a step cannot renew its lock (503s for longer than the TTL): it
    stops as if the lock were lost, before the lock expires, writes no more journal
    batches, and ends `refused:` (exit 3) naming the lock object and since when renewal
    failed. The disable after the wait never runs. Before the fix it waited on, its lock
    expired and another machine could take the plan over under it."""
    import threading
    from datetime import timedelta

    from rotator import places
    from rotator.engine import apply_plan
    from rotator.errors import RotatorError
    from rotator.interrupts import StopRequest
    from rotator.places import gcslock
    from rotator.plandoc import load_plan

    w = world_with_state(tmp_path, firestore=[database(active=[v(APP_KEY, 2)])])
    assert w.plan("rotate-key", APP_KEY, out=URL).code == 0
    monkeypatch.setattr(gcslock, "LOCK_TTL_SECONDS", 0.9)
    monkeypatch.setattr(places, "_backend", [])  # use_backend below is undone after the test
    backend, other = open_world(str(w.path)), open_world(str(w.path))
    try:
        places.use_backend(lambda: backend)
        doc, sha = load_plan(URL)
        storage = LockRenewalsFail(backend.storage)
        outcome: dict[str, Any] = {}
        messages: list[str] = []

        def run() -> None:
            try:
                outcome["result"] = apply_plan(
                    backend,
                    doc,
                    sha,
                    URL,
                    wait=timedelta(hours=1),
                    stop=StopRequest(),
                    place=GcsPlace(URL, storage),
                    emit=messages.append,
                )
            except RotatorError as e:
                outcome["error"] = e

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        seen = GcsPlace(URL, other.storage)
        deadline = time.monotonic() + 60
        while not any("wait-firestore-reencryption" in line for line in seen.journal_lines() or []):
            assert time.monotonic() < deadline and thread.is_alive(), (outcome, messages)
            time.sleep(0.05)
        storage.failing = True
        expires = float(json.loads(other.storage.download_bytes(STATE, "plans/rk.json.lock")[0])["expires"])
        batches = [n for n in state_objects(w) if ".journal/" in n]
        thread.join(30)
        assert not thread.is_alive(), "the apply went on with a lock it could not renew"
        err = outcome.get("error")
        assert isinstance(err, Refused) and err.exit_code == 3, (outcome, messages)
        assert "could not renew the lock gs://ops-state/plans/rk.json.lock since" in err.message
        assert "\n" not in err.line()
        assert any("could not renew the lock" in m for m in messages)
        assert [n for n in state_objects(w) if ".journal/" in n] == batches  # not one more batch
        assert versions_of(w)[2] == "ENABLED"  # the disable after the wait never ran
        # The lock it could not delete either expires; another machine takes it over and
        # finds the journal as the stopped apply left it.
        while time.time() <= expires:
            time.sleep(0.02)
        taker = gcslock.GcsLock(seen, lambda _m: None, ttl=600)
        taker.acquire()
        taker.release()
        assert [n for n in state_objects(w) if ".journal/" in n] == batches
    finally:
        backend.store.close()
        other.store.close()


def _polling(status: dict[str, Any], step: str) -> bool:
    """A live apply that has started `step` and is polling it."""
    states = {s["id"]: s["state"] for s in status["steps"]}
    return status["state"] == "applying" and states.get(step) == "running"


def test_out_force_over_a_plan_a_live_apply_holds_is_refused(tmp_path: Path) -> None:
    """`plan --out X --force` while X is being applied by a live process (here, on this
    machine, polling a wait step): refused (exit 3) naming the owner; nothing written."""
    w = world_with_state(tmp_path, firestore=[database(active=[v(APP_KEY, 2)])])
    assert w.plan("rotate-key", APP_KEY).code == 0
    _folder, env = machine(tmp_path, "here")
    proc = rotator(w.path, w.dir, "apply", "plan.json", "--yes", "--wait=1h", env=env)
    try:
        # Not just "applying": the apply writes the journal until it reaches its wait
        # step, where it polls (--wait) without writing; copy the journal only then.
        wait_until(lambda: _polling(w.status(), "wait-firestore-reencryption"), proc, "a polling apply")
        plan, journal = (w.dir / "plan.json").read_bytes(), (w.dir / "plan.json.journal").read_bytes()
        r = w.plan("rotate-key", APP_KEY, "--force")
        assert_failed(r, 3, "refused", "plan.json", f"pid {proc.pid}", "being applied")
        assert (w.dir / "plan.json").read_bytes() == plan
        assert (w.dir / "plan.json.journal").read_bytes() == journal
        assert not [p for p in w.dir.iterdir() if p.name.endswith(".old")]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    assert proc.returncode == 143


def test_out_force_over_a_bucket_plan_with_a_live_lock_is_refused(tmp_path: Path) -> None:
    """The same for a gs:// plan whose lock another machine holds and renews."""
    w = world_with_state(tmp_path, firestore=[database(active=[v(APP_KEY, 2)])])
    assert w.plan("rotate-key", APP_KEY, out=URL).code == 0
    assert w.apply(URL).code == 75
    w.change(
        lambda b: b.storage.upload_bytes(
            STATE, "plans/rk.json.lock", lock_object("runner-7", 4242, 600), if_generation_match=0
        )
    )
    before = state_objects(w)
    r = w.plan("rotate-key", APP_KEY, "--force", out=URL)
    assert_failed(r, 3, "refused", URL, "pid 4242 on runner-7", "plans/rk.json.lock")
    assert state_objects(w) == before
    assert w.status(URL)["state"] == "waiting"


def test_rollback_takes_the_rolled_back_plans_lock(tmp_path: Path) -> None:
    """A rollback appends to the rolled-back plan's journal: while another machine holds
    that plan's lock it is refused (exit 3) naming the owner, before any change; once the
    lock is free it takes it, and releases it at the end."""
    w = world_with_state(tmp_path)
    dk, rb = f"gs://{STATE}/plans/dk.json", f"gs://{STATE}/plans/rb.json"
    assert w.plan("disable-key", APP_KEY, out=dk).code == 0
    assert w.apply(dk).code == 0
    assert w("plan", "rollback", "--set", f"plan={dk}", "--out", rb).code == 0
    w.change(
        lambda b: b.storage.upload_bytes(
            STATE, "plans/dk.json.lock", lock_object("runner-7", 4242, 600), if_generation_match=0
        )
    )
    r = w.apply(rb)
    assert_failed(r, 3, "refused", dk, "pid 4242 on runner-7")
    assert versions_of(w) == {1: "DISABLED", 2: "DISABLED"}  # nothing changed
    assert w.status(dk)["state"] == "done"  # no rolled_back event written

    def expire(backend: Any) -> None:
        _data, gen = backend.storage.download_bytes(STATE, "plans/dk.json.lock")
        backend.storage.upload_bytes(
            STATE, "plans/dk.json.lock", lock_object("runner-7", 4242, -5), if_generation_match=gen
        )

    w.change(expire)
    r = w.apply(rb)
    assert r.code == 0, r
    assert "took over the lock" in r.stderr and "plans/dk.json.lock" in r.stderr
    assert versions_of(w) == {1: "ENABLED", 2: "ENABLED"}
    assert w.status(dk)["state"] == "rolled back"
    assert "plans/dk.json.lock" not in state_objects(w)  # released


def test_rollback_of_a_local_plan_a_live_apply_holds_is_refused(tmp_path: Path) -> None:
    """Locally too: a rollback never appends to the journal of a plan being applied now."""
    w = world_with_state(tmp_path, firestore=[database(active=[v(APP_KEY, 2)])])
    assert w.plan("rotate-key", APP_KEY, out="rk.json").code == 0
    assert w.apply("rk.json").code == 75
    assert w("plan", "rollback", "--set", "plan=rk.json", "--out", "rb.json").code == 0
    _folder, env = machine(tmp_path, "here")
    proc = rotator(w.path, w.dir, "apply", "rk.json", "--yes", "--wait=1h", env=env)
    try:
        # Copy the journal only once the resumed apply polls its wait step (see _polling).
        wait_until(
            lambda: _polling(w.status("rk.json"), "wait-firestore-reencryption"), proc, "a polling apply"
        )
        journal = (w.dir / "rk.json.journal").read_bytes()
        assert_failed(w.apply("rb.json"), 3, "refused")
        assert (w.dir / "rk.json.journal").read_bytes() == journal
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    assert w.status("rk.json")["state"] == "interrupted"


def test_a_create_whose_answer_was_lost_is_recognised_as_ours(tmp_path: Path) -> None:
    """A retried ifGenerationMatch=0 create answers 412 when its first try took effect:
    the same bytes mean it was this writer's own (a journal batch, an audit record, the
    lock); other bytes are another writer's and stay refused."""
    from rotator import apierrors as api

    w = world_with_state(tmp_path)
    backend = open_world(str(w.path))
    try:
        place = GcsPlace(URL, backend.storage)
        first = backend.storage.upload_bytes(STATE, "plans/x.jsonl", b"mine\n", if_generation_match=0)
        assert place.create("plans/x.jsonl", b"mine\n") == first  # the lost answer, replayed
        with pytest.raises(api.PreconditionFailed):
            place.create("plans/x.jsonl", b"someone else's\n")
    finally:
        backend.store.close()


def test_a_plan_in_a_bucket_that_does_not_exist_is_bad_input(tmp_path: Path) -> None:
    w = world_with_state(tmp_path)
    assert_failed(
        w.plan("rotate-key", APP_KEY, out="gs://no-such-bucket/p.json"), 2, "error", "no-such-bucket"
    )
    assert_failed(w.apply("gs://no-such-bucket/p.json"), 2, "error", "no-such-bucket")
    assert_failed(w.plan("rotate-key", APP_KEY, out="gs://ops-state/"), 2, "error", "gs://BUCKET/PATH.json")


def test_status_of_an_apply_on_another_host_is_running_while_its_lock_is_live(tmp_path: Path) -> None:
    """This host cannot see another's processes: an apply begun on runner-7 shows as
    applying while its lock in the bucket is live, and as interrupted once it expired."""
    w = world_with_state(tmp_path)
    assert w.plan("rotate-key", APP_KEY, out=URL).code == 0
    digest = w.json("show", URL).json()["digest"].split(":", 1)[1]
    events = [
        {"t": "2026-11-22T00:00:00Z", "event": "begin", "plan_sha256": digest},
        {"t": "2026-11-22T00:00:01Z", "event": "run", "pid": 4242, "host": "runner-7"},
        {"t": "2026-11-22T00:00:02Z", "event": "start", "step": "new-primary-version"},
    ]
    journal = "".join(json.dumps(e) + "\n" for e in events).encode()

    def begun_on_runner_7(backend: Any) -> None:
        backend.storage.upload_bytes(
            STATE, "plans/rk.json.journal/00000001.jsonl", journal, if_generation_match=0
        )
        backend.storage.upload_bytes(
            STATE, "plans/rk.json.lock", lock_object("runner-7", 4242, 600), if_generation_match=0
        )

    w.change(begun_on_runner_7)
    st = w.status(URL)
    assert (st["state"], st["life"]["pid"], st["life"]["host"]) == ("applying", 4242, "runner-7")
    assert "pid 4242 on runner-7" in w("status", URL).stdout

    def expire(backend: Any) -> None:
        _data, gen = backend.storage.download_bytes(STATE, "plans/rk.json.lock")
        backend.storage.upload_bytes(
            STATE, "plans/rk.json.lock", lock_object("runner-7", 4242, -5), if_generation_match=gen
        )

    w.change(expire)
    st = w.status(URL)
    assert st["state"] == "interrupted"
    assert st["steps"][0]["state"] == "stopped"
