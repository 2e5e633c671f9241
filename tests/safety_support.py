"""Shared support for the safety tests (tests/safety/, tests/wire/test_safety_*.py).

* `violations(dump)`: an independent reading of README's "What pins a version" over a
  `world dump` (not rotator's own inventory): every use that needs a version now
  (live and noncurrent generations, Firestore active versions, running Dataflow jobs,
  serving Cloud Run revisions, functions, and the primary of every key a bucket,
  database, job, service, function or repository names) must find it ENABLED; every use
  that needs it some day (soft-deleted generations, unexpired backups, revisions with
  no traffic) must find it not DESTROY_SCHEDULED or DESTROYED.
* `normalized(dump)`: a dump with the fields that legitimately differ between two runs
  of the same plan taken out (Dataflow snapshot ids and times).
* `Zygote`: runs `rotator` command lines (exactly what `python -m rotator` runs:
  rotator.cli.main) in real child processes forked from one process that imported
  rotator once, so a test can afford a hundred SIGKILLed applies. A run can be killed
  by SIGKILL at its K-th instrumented event (before or after any call of the fake's
  services, right before a fake transaction commits, before/inside/after a journal
  line) or from outside after a delay; the child reports where it died.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worlds import APP_KEY, v

from rotator.timeutil import parse_time

ENABLED = "ENABLED"
GONE = ("DESTROY_SCHEDULED", "DESTROYED")
NOW, SOMEDAY = "now", "someday"


# -- permanent faults on some objects (issue 6.2): one case, in process and over the wire ------

# objects of bucket bkt in worlds.two_bucket_world:
FORBIDDEN = ["o/03", "o/11"]  # answer 403 to their rewrite
MISSING = ["o/07"]  # answers 404 to its rewrite, though it is there


def assert_failed_objects_kept(doc: dict[str, Any], status: dict[str, Any], failed: list[str]) -> None:
    """After rotate-key's apply failed on `failed` (a world dump and `status --output
    json`): those objects are untouched under version 1, which stays ENABLED; the other
    24 moved; the rewrite step failed and the disable never ran."""
    key = next(k for k in doc["kms"] if k["key"] == APP_KEY)
    assert key["versions"][1] == "ENABLED", key["versions"]
    assert violations(doc) == []
    objects = {o["name"]: o for b in doc["storage"] for o in b["objects"]}
    for name in failed:
        assert objects[name]["kms_key_version"] == v(APP_KEY, 1) and objects[name]["generation"] == 1
    moved = [n for n, o in objects.items() if o["kms_key_version"] == v(APP_KEY, 3)]
    assert len(moved) == 25 - len(failed)
    steps = {s["id"]: s for s in status["steps"]}
    assert steps["rewrite-objects"]["state"] == "failed"
    assert steps["disable-old-versions"]["state"] == "pending"


def assert_finished_after_fix(doc: dict[str, Any]) -> None:
    key = next(k for k in doc["kms"] if k["key"] == APP_KEY)
    assert key["versions"] == {1: "DISABLED", 2: "DISABLED", 3: "ENABLED"}
    assert violations(doc) == []


# -- the invariant, read from a world dump ---------------------------------------------------


def uses(doc: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(version, NOW|SOMEDAY, what) for every use of a key version in a world dump."""
    now = parse_time(doc["now"])
    primary = {
        k["key"]: f"{k['key']}/cryptoKeyVersions/{k['primary']}"
        for k in doc.get("kms", [])
        if k.get("primary")
    }
    out: list[tuple[str, str, str]] = []

    def key_level(key: str | None, what: str) -> None:
        if key and key in primary:
            out.append((primary[key], NOW, f"{what} names the key (its primary)"))

    for b in doc.get("storage", []):
        key_level(b.get("default_kms_key"), f"gs://{b['bucket']} default key")
        for o in b.get("objects", []):
            where = f"gs://{b['bucket']}/{o['name']}"
            if o.get("kms_key_version") and not o.get("deleted"):
                out.append(
                    (o["kms_key_version"], NOW, f"{where} (live, generation {o.get('generation', 1)})")
                )
            for g in o.get("noncurrent", []):
                if g.get("kms_key_version"):
                    out.append((g["kms_key_version"], NOW, f"{where}#{g['generation']} (noncurrent)"))
            for g in o.get("soft_deleted", []):
                hard = g.get("hard_delete_time")
                if g.get("kms_key_version") and (hard is None or parse_time(hard) > now):
                    out.append((g["kms_key_version"], SOMEDAY, f"{where}#{g['generation']} (soft-deleted)"))
    for d in doc.get("firestore", []):
        key_level(d.get("kms_key"), d["database"])
        for version in d.get("active_key_versions", []):
            out.append((version, NOW, f"{d['database']} (active key version, R21)"))
        for bk in d.get("backups", []):
            expire = bk.get("expire_time")
            if bk.get("kms_key_version") and (expire is None or parse_time(expire) > now):
                out.append((bk["kms_key_version"], SOMEDAY, f"backup {bk['backup']} (R24)"))
    for j in doc.get("dataflow", []):
        if j.get("state", "RUNNING") == "RUNNING":
            key_level(j.get("kms_key"), f"dataflow job {j['job']}")
            if j.get("kms_key_version"):
                out.append((j["kms_key_version"], NOW, f"dataflow job {j['job']} (running, R31)"))
    for s in doc.get("run", []):
        revisions = s.get("revisions", [])
        if revisions:
            key_level(revisions[-1].get("kms_key"), f"{s['service']} (latest revision)")
        for r in revisions:
            if r.get("kms_key_version"):
                need = NOW if r.get("traffic_percent", 0) > 0 else SOMEDAY
                out.append((r["kms_key_version"], need, f"{s['service']} revision {r['revision']} (R43)"))
    for f in doc.get("functions", []):
        key_level(f.get("kms_key"), f["function"])
        if f.get("kms_key_version"):
            out.append((f["kms_key_version"], NOW, f"{f['function']} (R42)"))
    for r in doc.get("artifact_registry", []) or []:
        key_level(r.get("kms_key"), r["repository"])
    return out


def version_states(doc: dict[str, Any]) -> dict[str, str]:
    return {
        f"{k['key']}/cryptoKeyVersions/{n}": state
        for k in doc.get("kms", [])
        for n, state in (k.get("versions") or {}).items()
    }


def violations(doc: dict[str, Any], *, revoked: tuple[str, ...] = ()) -> list[str]:
    """Uses whose version is not usable as they need it. Keys in `revoked` were cut off
    on purpose (disable-key): their versions may be DISABLED, never destroyed."""
    states = version_states(doc)
    bad = []
    for version, need, what in uses(doc):
        state = states.get(version, "missing")
        key = version.split("/cryptoKeyVersions/")[0]
        if need == NOW and key in revoked:
            need = SOMEDAY
        if (need == NOW and state != ENABLED) or (need == SOMEDAY and state in GONE + ("missing",)):
            bad.append(f"{what} needs {version} ({need}) but it is {state}")
    return bad


def unsnapshotted_cancelled_jobs(before: dict[str, Any], after: dict[str, Any], key: str) -> list[str]:
    """R31: a running Streaming Engine job on `key` that is gone (cancelled by a disable)
    must have been snapshotted first."""
    was = {j["job"]: j for j in before.get("dataflow", [])}
    bad = []
    for j in after.get("dataflow", []):
        old = was.get(j["job"])
        if not old or old.get("state", "RUNNING") != "RUNNING" or j.get("state", "RUNNING") == "RUNNING":
            continue
        on_key = old.get("kms_key") == key or (old.get("kms_key_version") or "").startswith(key + "/")
        streaming = old.get("type") == "STREAMING" and old.get("streaming_engine")
        if on_key and streaming and not any(s.get("state") == "READY" for s in j.get("snapshots", [])):
            bad.append(f"dataflow job {j['job']} is {j.get('state')} with no snapshot (R31)")
    return bad


def normalized(doc: dict[str, Any]) -> dict[str, Any]:
    """Without what may legitimately differ between two runs of one plan: snapshot ids
    and times (kept: which jobs have snapshots, and their states)."""
    doc = json.loads(json.dumps(doc, sort_keys=True, default=str))
    for j in doc.get("dataflow", []):
        if "snapshots" in j:
            j["snapshots"] = sorted({s.get("state", "READY") for s in j["snapshots"]})
    return doc


def live_objects(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (b["bucket"], o["name"]): o
        for b in doc.get("storage", [])
        for o in b.get("objects", [])
        if not o.get("deleted")
    }


# -- rotator in forked children -----------------------------------------------------------------

_ZYGOTE = textwrap.dedent(
    r"""
    import inspect, json, os, signal, sys, threading, time
    from contextlib import contextmanager

    import rotator.cli
    import rotator.engine, rotator.inventory, rotator.plan, rotator.render, rotator.steps  # warm up
    from rotator.backends import fake as fake_pkg
    from rotator.backends.fake.store import Store
    from rotator.journal import Journal

    SKIP = {"advance_to", "check_usable", "primary_for_encrypt"}
    SERVICES = ("kms", "storage", "firestore", "dataflow", "run", "functions", "batch")

    def instrument(kill, kill_label, events_file, killed_file, record):
        lock = threading.Lock()
        state = {"n": 0, "labels": [], "matched": 0}

        def hit(label, before_death=None):
            with lock:
                state["n"] += 1
                if record:
                    state["labels"].append(label)
                due = state["n"] == kill
                if kill_label and label == kill_label["label"]:
                    state["matched"] += 1
                    due = state["matched"] == kill_label["nth"]
                if due:
                    if before_death is not None:
                        before_death()
                    fd = os.open(killed_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                    os.write(fd, json.dumps({"n": state["n"], "label": label}).encode())
                    os.close(fd)
                    os.kill(os.getpid(), signal.SIGKILL)
                    while True:
                        time.sleep(1)

        def wrap(label, fn):
            def call(*args, **kwargs):
                hit(label + ":before")
                result = fn(*args, **kwargs)
                hit(label + ":after")
                return result
            return call

        init = fake_pkg.FakeBackend.__init__

        def backend_init(self, *args, **kwargs):
            init(self, *args, **kwargs)
            for service in SERVICES:
                svc = getattr(self, service, None)
                if svc is None:
                    continue
                for name, fn in inspect.getmembers(type(svc), inspect.isfunction):
                    if name.startswith(("_", "on_")) or name in SKIP:
                        continue
                    setattr(svc, name, wrap(f"{service}.{name}", getattr(svc, name)))

        fake_pkg.FakeBackend.__init__ = backend_init

        write = Store.write

        @contextmanager
        def store_write(self):
            with write(self) as c:
                yield c
                hit("commit")  # inside the transaction, right before COMMIT

        Store.write = store_write

        journal_write = Journal._write

        def jwrite(self, event, *, sync):
            line = json.dumps(event, sort_keys=True) + "\n"

            def torn():  # half a line in the local journal file, as a kill mid-write leaves
                self._writer._fh.write(line[: len(line) // 2])
                self._writer._fh.flush()

            hit("journal.before")
            hit("journal.torn", torn)
            journal_write(self, event, sync=sync)
            hit("journal.after")

        Journal._write = jwrite

        def report():
            # Whole or not at all: a kill from outside may land while this is written.
            with open(events_file + ".tmp", "w") as fh:
                json.dump({"n": state["n"], "labels": state["labels"], "matched": state["matched"]}, fh)
            os.replace(events_file + ".tmp", events_file)

        return report

    def child(req):
        os.chdir(req["cwd"])
        for k in req.get("unset", []):
            os.environ.pop(k, None)
        os.environ.update(req.get("env", {}))
        for fd, path in ((1, req["stdout"]), (2, req["stderr"])):
            f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(f, fd)
            os.close(f)
        nul = os.open(os.devnull, os.O_RDONLY)
        os.dup2(nul, 0)
        report = instrument(
            req.get("kill") or 0,
            req.get("kill_label"),
            req["events"],
            req["killed"],
            req.get("record", False),
        )
        try:
            rotator.cli.main(req["argv"])
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        sys.stdout.flush()
        sys.stderr.flush()
        report()
        return code

    while True:
        line = sys.stdin.readline()
        if not line:
            break
        req = json.loads(line)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            code = 70
            try:
                code = child(req)
            except BaseException:
                import traceback
                traceback.print_exc()
            finally:
                os._exit(code)
        sys.stdout.write(json.dumps({"pid": pid}) + "\n")
        sys.stdout.flush()
        _, status = os.waitpid(pid, 0)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        sys.stdout.write(json.dumps({"code": code}) + "\n")
        sys.stdout.flush()
    """
)


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    events: int  # instrumented events seen (complete runs only)
    matched: int  # of them, events with the kill label
    labels: list[str]  # with record=True
    killed_at: dict[str, Any] | None  # {"n": K, "label": ...} when killed at an event

    @property
    def killed(self) -> bool:
        return self.code == -signal.SIGKILL


class Zygote:
    """`rotator` command lines in forked children of one warmed-up process (see module doc)."""

    TIMEOUT = 120.0

    def __init__(self, scratch: Path):
        self.scratch = scratch
        scratch.mkdir(parents=True, exist_ok=True)
        self._err = open(scratch / "zygote.err", "w")  # noqa: SIM115 - lives with the process
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _ZYGOTE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._err,
            text=True,
            bufsize=1,
        )
        self.child_pid: int | None = None
        self.count = 0

    def _read(self, timeout: float) -> dict[str, Any] | None:
        assert self.proc.stdout is not None
        # A selector (epoll), not select.select: the full suite holds more than 1,024
        # descriptors by the time it gets here, past what select() can watch.
        with selectors.DefaultSelector() as watching:
            watching.register(self.proc.stdout, selectors.EVENT_READ)
            ready = watching.select(timeout)
        if not ready:
            return None
        line = self.proc.stdout.readline()
        if not line:
            err = (self.scratch / "zygote.err").read_text()
            raise RuntimeError(f"the zygote died:\n{err}")
        result: dict[str, Any] = json.loads(line)
        return result

    def run(
        self,
        argv: list[str],
        cwd: Path,
        *,
        kill_at: int = 0,
        kill_label: tuple[str, int] | None = None,
        kill_after: float | None = None,
        env: dict[str, str] | None = None,
        record: bool = False,
    ) -> Run:
        """Run `rotator ARGV` in `cwd`; SIGKILL it at its `kill_at`-th event, at the
        N-th event labelled L (`kill_label` = (L, N): the same kind of point whatever the
        order threads reach it in), or from outside `kill_after` seconds after it started."""
        self.count += 1
        base = self.scratch / f"run-{self.count}"
        paths = {k: str(base) + f".{k}" for k in ("stdout", "stderr", "events", "events.tmp", "killed")}
        request = {
            "argv": argv,
            "cwd": str(cwd),
            "env": env or {},
            "unset": ["ROTATOR_FAKE_LATENCY_MS", "ROTATOR_TEST_BACKEND"],
            "kill": kill_at,
            "kill_label": {"label": kill_label[0], "nth": kill_label[1]} if kill_label else None,
            "record": record,
            **paths,
        }
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        started = self._read(self.TIMEOUT)
        assert started is not None, "the zygote did not fork"
        pid = int(started["pid"])
        done = None
        if kill_after is not None:
            done = self._read(kill_after)
            if done is None:
                # The child of our zygote, by its id; it may have ended on its own since.
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if done is None:
            done = self._read(self.TIMEOUT)
        if done is None:
            with contextlib.suppress(ProcessLookupError):  # not a reason to hide the timeout
                os.kill(pid, signal.SIGKILL)
            raise AssertionError(f"rotator {' '.join(argv)} did not finish in {self.TIMEOUT}s")
        # A kill from outside can land before the child opened its output files.
        out = Path(paths["stdout"]).read_text() if os.path.exists(paths["stdout"]) else ""
        err = Path(paths["stderr"]).read_text() if os.path.exists(paths["stderr"]) else ""
        events: dict[str, Any] = {"n": 0, "labels": [], "matched": 0}
        if os.path.exists(paths["events"]):
            events = json.loads(Path(paths["events"]).read_text())
        killed_at = json.loads(Path(paths["killed"]).read_text()) if os.path.exists(paths["killed"]) else None
        for p in paths.values():
            if os.path.exists(p):
                os.remove(p)
        return Run(
            int(done["code"]),
            out,
            err,
            int(events["n"]),
            int(events["matched"]),
            list(events["labels"]),
            killed_at,
        )

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._err.close()


def wait_for(predicate: Any, timeout: float = 30.0, interval: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False
