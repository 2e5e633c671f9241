"""Object rewrites sent from worker processes (issue 14).

One process tops out near 800 rewrites a second on this project's 2-CPU machine: each
rewrite costs 0.7-1.3 ms of CPU in the official client's HTTP stack (on the lean
transport, backends/gcp/lean_http.py, or on the default requests session), and one
interpreter runs one thread at a time. Workers spread that cost over the CPUs.

The apply process keeps everything that decides: the listing, which object needs a
rewrite (pinned and current ones never reach a worker), each bucket's write rate and
requests in flight, the tallies and the journal. A worker only sends rewrites: it gets
objects one at a time over a pipe, rewrites each through the same `rewrite_one` as the
apply process (generation precondition and re-read included), and answers with the
outcome. Its writes are paced by the apply process's rate for the bucket: the first
write of an object was paid for before the object was handed over; each later one (a
throttled retry, the next call of a large object's token loop, the retry after a
generation mismatch) asks the apply process for a token and waits for it, and a
throttled answer is reported to that bucket's rate.

A worker whose apply process is gone (killed, a second Ctrl-C) exits at once: what it
had sent ends at the service, the rest was never sent, and resume lists it again. A
worker runs in a session of its own, so a terminal's Ctrl-C reaches only the apply
process, which stops handing out objects and lets what is in flight end, as it does
without workers. A worker that dies or speaks out of turn is killed, and every object
it held is reported failed (its outcome unknown; the resume re-reads it).

Messages are pickled tuples: to a worker over its stdin, from it over a pipe of its own
(its stdout is the apply's stderr, so a stray print reaches the operator, not the
protocol, and never the apply's JSON output). Both ends are the same program.
"""

from __future__ import annotations

import importlib
import itertools
import math
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
from rotator.rewrite_object import rewrite_one

# Rewrites of one apply that make spawning workers worth it. A worker takes about half a
# second to start (the interpreter and the client library's imports), and one process
# sends about 800 rewrites a second on the lean transport (backends/gcp/lean_http.py):
# measured over the wire at 50 ms, 2,000 objects took longer with two workers than
# without (2.9 s against 2.7 s of rewrites), 20,000 less (29.1 s against 30.2 s).
WORKERS_FROM_OBJECTS = 10_000
MAX_AUTO_WORKERS = 4  # one bucket at Cloud Storage's starting rate needs about 1.3 CPUs
CLOSE_TIMEOUT = 30.0  # seconds a worker may take to end after its last answer

# What a worker answers: (outcome, bytes, the service's seconds for the last write or
# None, how many times the object was throttled).
Answer = tuple[str, int, float | None, int]


def cpus() -> int:
    """The CPUs this process may use: its affinity, within a cgroup's CPU quota (a
    container limited to one CPU on a big machine has one)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        n = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            n = min(n, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return n


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

    # The storage adapter's `worker_recipe()`: "connect" names the function that makes
    # the same adapter in the worker ("module:function"), the rest is its argument.
    recipe: dict[str, Any]
    retiring: set[str]
    dest: str
    threads: int  # requests a worker may have in flight at once


@dataclass(eq=False)
class Worker:
    """The apply process's handle on one worker."""

    process: subprocess.Popen[bytes]
    inbox: IO[bytes]  # the worker's stdin
    outbox: IO[bytes]  # the worker's answers
    ready: bool = False
    pending: dict[int, tuple[ObjectInfo, Callable[[Answer], None]]] = field(default_factory=dict)
    buckets: set[str] = field(default_factory=set)  # buckets it has been told of
    lock: threading.Lock = field(default_factory=threading.Lock)
    gone: str | None = None  # why it takes no more objects

    def send(self, message: tuple[Any, ...]) -> None:
        with self.lock:
            pickle.dump(message, self.inbox, protocol=pickle.HIGHEST_PROTOCOL)
            self.inbox.flush()


class WorkerPool:
    """Worker processes for the rewrites of one step.

    `grant(bucket, throttled, reply)` is called (on a thread of its own) when a worker
    asks for a write token; it calls `reply()` once the bucket's rate gives one.
    `retried(error, attempt)` tells the apply process's retry reporting (-v) of a
    worker's retry. Raises OSError when a worker cannot be started (none is left)."""

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
        self.workers: list[Worker] = []
        try:
            for _ in range(count):
                self.workers.append(self._spawn(setup))
        except BaseException:
            for worker in self.workers:
                worker.process.kill()
                worker.process.wait()
            self._grants.shutdown(wait=False)
            raise
        self._readers = [
            threading.Thread(target=self._read, args=(w,), name="worker-reader", daemon=True)
            for w in self.workers
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _spawn(setup: Setup) -> Worker:
        answers, theirs = os.pipe()
        # The worker imports exactly what this process imports (its sys.path), never a
        # `rotator` that happens to sit in the current directory.
        path = f"import sys; sys.path[:] = {sys.path!r}"
        code = f"{path}; from rotator.rewrite_workers import serve; serve({theirs})"
        try:
            process = subprocess.Popen(
                [sys.executable, "-c", code],
                stdin=subprocess.PIPE,
                stdout=2,  # a stray print goes where the apply's messages go
                pass_fds=(theirs,),
                start_new_session=True,  # a terminal's Ctrl-C is the apply process's
            )
        except BaseException:
            os.close(answers)
            raise
        finally:
            os.close(theirs)
        assert process.stdin is not None
        worker = Worker(process, process.stdin, os.fdopen(answers, "rb"))
        worker.send(("setup", setup))
        return worker

    def ready(self) -> Worker | None:
        """The ready worker with the fewest rewrites in flight (None: none is ready yet)."""
        with self._lock:
            ready = [w for w in self.workers if w.ready and w.gone is None]
            return min(ready, key=lambda w: len(w.pending)) if ready else None

    def rewrite(
        self, worker: Worker, obj: ObjectInfo, bucket: Bucket, now: datetime, done: Callable[[Answer], None]
    ) -> None:
        """Hand `obj` to `worker` (its first write's token already taken). `done` gets
        the answer, once, on the worker's reader thread (or here, if it is gone); this
        never raises."""
        n = next(self._ids)
        with self._lock:
            if worker.gone is None:
                worker.pending[n] = (obj, done)
        if n not in worker.pending:
            done(_lost(obj, worker.gone or "gone"))
            return
        if bucket.name not in worker.buckets:  # only this thread sends this bucket's objects
            worker.buckets.add(bucket.name)
            self._send(worker, ("bucket", bucket, now))
        self._send(worker, ("rewrite", n, obj))

    def _send(self, worker: Worker, message: tuple[Any, ...]) -> None:
        try:
            worker.send(message)
        except Exception as e:  # its pipe broke or was closed: it is lost
            self._lose(worker, f"could not reach it ({type(e).__name__}: {e})")

    def _read(self, worker: Worker) -> None:
        try:
            while self._handle(worker, pickle.load(worker.outbox)):
                pass
        except EOFError:
            self._lose(worker, f"it exited with code {worker.process.wait()}")
        except BaseException as e:  # a message out of turn: never wait on a worker we cannot read
            self._lose(worker, f"{type(e).__name__} while reading its answers: {e}")

    def _handle(self, worker: Worker, message: tuple[Any, ...]) -> bool:
        tag = message[0]
        if tag == "done":
            _, n, answer = message
            with self._lock:
                held = worker.pending.pop(n, None)  # None: already failed (_lose)
            if held is not None:
                held[1](answer)
        elif tag == "token":
            _, req, bucket, throttled = message
            self._grants.submit(self._grant, bucket, throttled, lambda: self._send(worker, ("grant", req)))
        elif tag == "retried":
            try:
                self._retried(RetriedInWorker(message[1]), message[2])
            except Exception:  # telling -v must never stop the rewrites
                pass
        elif tag == "ready":
            worker.ready = True
        elif tag == "bye":
            with self._lock:
                worker.gone = worker.gone or "ended"
            return False
        else:
            raise ValueError(f"unknown message {tag!r}")
        return True

    def _lose(self, worker: Worker, why: str) -> None:
        """A worker gone before its end: it is killed, and every object it held is
        failed (its outcome is unknown: the rewrite may or may not have happened; a
        resumed apply lists it again, and the generation precondition makes a repeat
        safe)."""
        if worker.process.poll() is None:
            worker.process.kill()
        with self._lock:
            if worker.gone is None:
                worker.gone = why
            held, worker.pending = worker.pending, {}
        for obj, done in held.values():
            done(_lost(obj, why))

    def close(self) -> None:
        """Each worker ends once what it holds has been answered."""
        for worker in self.workers:
            if worker.gone is None:
                self._send(worker, ("end",))
        self._finish(wait=True)

    def kill(self) -> None:
        """Stop at once (the apply is failing or stopped hard): every worker is killed;
        what it had sent ends at the service, what it held is reported failed."""
        for worker in self.workers:
            if worker.process.poll() is None:
                worker.process.kill()
        self._finish(wait=False)

    def _finish(self, wait: bool) -> None:
        for worker in self.workers:
            try:
                worker.inbox.close()
            except OSError:
                pass
        for worker, reader in zip(self.workers, self._readers, strict=True):
            reader.join(CLOSE_TIMEOUT)
            if reader.is_alive() or worker.process.poll() is None:
                try:
                    worker.process.wait(CLOSE_TIMEOUT if wait else 0.1)
                except subprocess.TimeoutExpired:
                    self._lose(worker, "it did not end")
                    worker.process.wait()
            worker.outbox.close()
        self._grants.shutdown(wait=wait, cancel_futures=not wait)


def _lost(obj: ObjectInfo, why: str) -> Answer:
    return (f"gs://{obj.bucket}/{obj.name}: the rewrite worker stopped before answering ({why})", 0, None, 0)


# -- the worker's side -------------------------------------------------------------------


class _Serving:
    """One worker process: rewrites what it gets, asks for a token before each later
    write of an object, answers each object once."""

    def __init__(self, setup: Setup, outbox: IO[bytes]):
        self.setup, self.outbox = setup, outbox
        self.out_lock = threading.Lock()
        self.buckets: dict[str, tuple[Bucket, datetime]] = {}
        self.grants: dict[int, threading.Event] = {}
        self.requests = itertools.count()
        self.local = threading.local()  # the current object's backoffs and first write
        module, function = setup.recipe["connect"].split(":")
        connect = getattr(importlib.import_module(module), function)
        self.storage = connect(setup.recipe, on_retry=self._retried)
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


def serve(answers_fd: int) -> None:
    """A worker's main, spawned by WorkerPool: messages in on stdin, answers out on
    `answers_fd`. Any end but the apply process's "end" is an immediate exit: nothing
    more may be sent once the apply process cannot hear of it."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    inbox, outbox = sys.stdin.buffer, os.fdopen(answers_fd, "wb")
    try:
        kind, setup = pickle.load(inbox)
        assert kind == "setup"
        serving = _Serving(setup, outbox)
    except EOFError:  # the apply process is gone already
        os._exit(1)
    except BaseException as e:  # no credentials, no client library: the apply goes on without it
        print(f"rotator rewrite worker: could not start: {e}", file=sys.stderr, flush=True)
        os._exit(2)
    try:
        serving.send(("ready",))
        while serving.handle(pickle.load(inbox)):
            pass
        serving.pool.shutdown(wait=True)
        serving.send(("bye",))
        outbox.close()
        sys.stderr.flush()
    except BaseException:  # the apply process is gone (EOF), or a message out of turn
        os._exit(1)
    os._exit(0)  # no interpreter teardown (0.1-0.2 s): the apply process waits for this exit
