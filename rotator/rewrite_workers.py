"""Object rewrites sent from worker processes (issue 14).

One process tops out near 800 rewrites a second on this project's 2-CPU machine: each
rewrite costs about a millisecond of CPU in the official client's HTTP stack, and one
interpreter runs one thread at a time. Workers spread that cost over the CPUs.

The apply process keeps everything that decides: the listing, which object needs a
rewrite, each bucket's write rate and requests in flight, the tallies and the journal.
A worker only sends rewrites: it gets objects one at a time over a pipe, rewrites each
through the same `rewrite_one` as the apply process (generation precondition and
re-read included), and answers with the outcome. Its writes are paced by the apply
process's rate for the bucket: the first write of an object was paid for before the
object was handed over; each later one (a throttled retry, the next call of a large
object's token loop, the retry after a generation mismatch) asks the apply process for
a token and waits for it, and a throttled answer is reported to that bucket's rate.

A worker whose apply process is gone (killed, a second Ctrl-C) exits at once: what it
had sent ends at the service, the rest was never sent, and resume lists it again.
Signals are the apply process's: Ctrl-C reaches the whole process group, and a worker
ignores it so that what is in flight ends and is tallied, as in one process.

Messages are pickled tuples over the worker's stdin and stdout, between two processes
of the same program (the worker's own stdout is pointed at its stderr, so a stray print
cannot corrupt them).
"""

from __future__ import annotations

import functools
import itertools
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from rotator.model import Bucket, ObjectInfo

# Rewrites of one apply that make spawning workers worth it: a worker takes about half a
# second to start (the interpreter and the client library's imports).
WORKERS_FROM_OBJECTS = 1000
MAX_AUTO_WORKERS = 4  # one bucket at Cloud Storage's starting rate needs about 1.3 CPUs
CLOSE_TIMEOUT = 30.0  # seconds a worker may take to end after its last answer

# What a worker answers: (outcome, bytes, the service's seconds for the last write or
# None, how many times the object was throttled).
Answer = tuple[str, int, float | None, int]


def cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def auto_workers(objects: int) -> int:
    """How many worker processes an apply with `objects` rewrites starts by default:
    none on one CPU or for a small job, else one per CPU up to MAX_AUTO_WORKERS."""
    n = cpus()
    return 0 if n < 2 or objects < WORKERS_FROM_OBJECTS else min(n, MAX_AUTO_WORKERS)


class RetriedInWorker(Exception):
    """A worker's retry, as the apply process's retry reporting (-v) gets it."""


@dataclass
class Setup:
    """What a worker needs before its first object."""

    recipe: dict[str, Any]  # the storage adapter's, to connect the same way (worker_recipe)
    retiring: set[str]
    dest: str
    threads: int  # requests a worker may have in flight at once


@dataclass(eq=False)
class Worker:
    """The apply process's handle on one worker."""

    process: subprocess.Popen[bytes]
    inbox: IO[bytes]  # the worker's stdin
    ready: bool = False
    in_flight: int = 0
    pending: dict[int, tuple[ObjectInfo, Callable[[Answer], None]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    gone: str | None = None  # why it can take no more objects

    def send(self, message: tuple[Any, ...]) -> None:
        with self.lock:
            pickle.dump(message, self.inbox, protocol=pickle.HIGHEST_PROTOCOL)
            self.inbox.flush()


class WorkerPool:
    """Worker processes for the rewrites of one step.

    `grant(bucket, throttled, reply)` is called (on a thread of its own) when a worker
    asks for a write token; it calls `reply()` once the bucket's rate gives one.
    `retried(error, attempt)` tells the apply process's retry reporting (-v) of a
    worker's retry."""

    def __init__(
        self,
        count: int,
        setup: Setup,
        grant: Callable[[str, bool, Callable[[], None]], None],
        retried: Callable[[BaseException, int], None],
    ):
        self._grant, self._retried = grant, retried
        self._ids = itertools.count()
        self._grants = ThreadPoolExecutor(max_workers=max(1, setup.threads), thread_name_prefix="grant")
        self._lock = threading.Lock()
        self.workers = [self._spawn(setup) for _ in range(count)]
        self._readers = [
            threading.Thread(target=self._read, args=(w,), name="worker-reader", daemon=True)
            for w in self.workers
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _spawn(setup: Setup) -> Worker:
        root = str(Path(__file__).resolve().parent.parent)  # where `rotator` is importable from
        path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
        env = dict(os.environ, PYTHONPATH=path)
        process = subprocess.Popen(
            [sys.executable, "-c", "from rotator.rewrite_workers import serve; serve()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        assert process.stdin is not None
        worker = Worker(process, process.stdin)
        worker.send(("setup", setup))
        return worker

    def bucket(self, bucket: Bucket, now: datetime) -> None:
        """A bucket whose objects come next, and the time its retention is judged at."""
        for worker in self.workers:
            if worker.gone is None:
                self._send(worker, ("bucket", bucket, now))

    def ready(self) -> Worker | None:
        """The ready worker with the fewest rewrites in flight (None: none is ready yet)."""
        with self._lock:
            ready = [w for w in self.workers if w.ready and w.gone is None]
            return min(ready, key=lambda w: w.in_flight) if ready else None

    def rewrite(self, worker: Worker, obj: ObjectInfo, done: Callable[[Answer], None]) -> None:
        """Hand `obj` to `worker` (its first write's token already taken); `done` gets the
        answer on the worker's reader thread."""
        n = next(self._ids)
        with self._lock:
            worker.pending[n] = (obj, done)
            worker.in_flight += 1
        self._send(worker, ("rewrite", n, obj))

    def _send(self, worker: Worker, message: tuple[Any, ...]) -> None:
        try:
            worker.send(message)
        except OSError as e:  # it died: its reader fails what it held
            self._lose(worker, f"its pipe broke ({e})")

    def _read(self, worker: Worker) -> None:
        assert worker.process.stdout is not None
        outbox = worker.process.stdout
        while True:
            try:
                message = pickle.load(outbox)
            except (EOFError, OSError, pickle.UnpicklingError):
                code = worker.process.wait()
                self._lose(worker, f"it exited with code {code}")
                return
            tag = message[0]
            if tag == "done":
                _, n, answer = message
                with self._lock:
                    held = worker.pending.pop(n, None)  # None: already failed (_lose)
                    worker.in_flight -= held is not None
                if held is not None:
                    held[1](answer)
            elif tag == "token":
                _, req, bucket, throttled = message
                reply = functools.partial(self._send, worker, ("grant", req))
                self._grants.submit(self._grant, bucket, throttled, reply)
            elif tag == "retried":
                self._retried(RetriedInWorker(message[1]), message[2])
            elif tag == "ready":
                worker.ready = True
            elif tag == "bye":
                worker.gone = worker.gone or "ended"
                return

    def _lose(self, worker: Worker, why: str) -> None:
        """A worker gone before its end: every object it held is failed (its outcome is
        unknown: the rewrite may or may not have happened; a resumed apply lists it
        again, and the generation precondition makes a repeat safe)."""
        with self._lock:
            if worker.gone is None:
                worker.gone = why
            held, worker.pending = worker.pending, {}
            worker.in_flight = 0
        for obj, done in held.values():
            where = f"gs://{obj.bucket}/{obj.name}"
            done((f"{where}: the rewrite worker stopped before answering ({why})", 0, None, 0))

    def close(self) -> None:
        """Each worker ends once what it holds has been answered."""
        for worker in self.workers:
            if worker.gone is None:
                self._send(worker, ("end",))
            try:
                worker.inbox.close()
            except OSError:
                pass
        for worker, reader in zip(self.workers, self._readers, strict=True):
            reader.join(CLOSE_TIMEOUT)
            try:
                worker.process.wait(CLOSE_TIMEOUT)
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()
            if worker.process.stdout is not None:
                worker.process.stdout.close()
        self._grants.shutdown(wait=True)

    def kill(self) -> None:
        """Stop at once (the apply is failing): what a worker had sent ends at the service."""
        for worker in self.workers:
            if worker.process.poll() is None:
                worker.process.kill()
        self.close()


# -- the worker's side -------------------------------------------------------------------


class _Serving:
    """One worker process: rewrites what it gets, asks for a token before each later
    write of an object, answers each object once."""

    def __init__(self, setup: Setup, outbox: IO[bytes]):
        from rotator.services.storage.gcp import connect_alone

        self.setup, self.outbox = setup, outbox
        self.out_lock = threading.Lock()
        self.buckets: dict[str, tuple[Bucket, datetime]] = {}
        self.grants: dict[int, threading.Event] = {}
        self.requests = itertools.count()
        self.local = threading.local()  # the current object's backoffs and first write
        self.storage = connect_alone(setup.recipe, on_retry=self._retried)
        self.storage.size_pool(setup.threads)
        self.storage.on_throttle = self._throttled
        self.pool = ThreadPoolExecutor(max_workers=max(1, setup.threads), thread_name_prefix="rewrite")

    def send(self, message: tuple[Any, ...]) -> None:
        with self.out_lock:
            pickle.dump(message, self.outbox, protocol=pickle.HIGHEST_PROTOCOL)
            self.outbox.flush()

    def token(self, bucket: str, throttled: bool) -> None:
        """Wait for the apply process's token for one more write to `bucket`."""
        req = next(self.requests)
        granted = self.grants[req] = threading.Event()
        self.send(("token", req, bucket, throttled))
        granted.wait()

    def _throttled(self, bucket: str) -> None:
        self.local.backoffs += 1
        self.token(bucket, throttled=True)

    def _retried(self, error: BaseException, attempt: int) -> None:
        self.send(("retried", str(error), attempt))

    def rewrite(self, n: int, obj: ObjectInfo) -> None:
        from rotator.rewrite_object import rewrite_one

        bucket, now = self.buckets[obj.bucket]
        self.local.backoffs, self.local.paid = 0, True
        sent = 0.0

        def before_write() -> None:
            nonlocal sent
            if self.local.paid:
                self.local.paid = False  # the apply process took the first write's token
            else:
                self.token(obj.bucket, throttled=False)
            sent = time.monotonic()

        outcome, size = rewrite_one(
            self.storage, obj, self.setup.retiring, self.setup.dest, bucket, now, before_write=before_write
        )
        latency = time.monotonic() - sent if sent else None
        self.send(("done", n, (outcome, size, latency, self.local.backoffs)))

    def handle(self, message: tuple[Any, ...]) -> bool:
        """One message from the apply process; False at the end."""
        tag = message[0]
        if tag == "rewrite":
            self.pool.submit(self._guarded, message[1], message[2])
        elif tag == "grant":
            self.grants.pop(message[1]).set()
        elif tag == "bucket":
            bucket, now = message[1], message[2]
            self.buckets[bucket.name] = (bucket, now)
        elif tag == "end":
            return False
        return True

    def _guarded(self, n: int, obj: ObjectInfo) -> None:
        try:
            self.rewrite(n, obj)
        except BaseException as e:  # a bug, not a service's answer (rewrite_one answers those)
            where = f"gs://{obj.bucket}/{obj.name}"
            self.send(("done", n, (f"{where}: {type(e).__name__} in the rewrite worker: {e}", 0, None, 0)))


def serve() -> None:
    """A worker's main, spawned by WorkerPool."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    inbox = sys.stdin.buffer
    outbox = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # the protocol has the pipe; a stray print goes to stderr
    try:
        kind, setup = pickle.load(inbox)
        assert kind == "setup"
        try:
            serving = _Serving(setup, outbox)
        except Exception as e:  # no credentials, no client library: the apply goes on without it
            print(f"rotator rewrite worker: could not start: {e}", file=sys.stderr)
            os._exit(2)
        serving.send(("ready",))
        while serving.handle(pickle.load(inbox)):
            pass
    except EOFError:
        os._exit(1)  # the apply process is gone: send nothing more (see the module docstring)
    serving.pool.shutdown(wait=True)
    serving.send(("bye",))
    outbox.close()
