"""The local rewrite engine: every live object of some buckets under a retiring version
is rewritten under the destination key from this machine (R11, R13.3, R14).

Buckets run side by side within one budget of requests in flight (--concurrency, one
thread pool and one HTTP connection pool of that size). Each bucket has its own write
rate (AdaptiveRate, Cloud Storage's request-rate guidance) and its own share of the
budget, sized by Little's law from that rate and the time an object takes (InFlight).
Per object there is the request itself, its tally and, every so often, a journal
checkpoint: nothing else. The requests go out from this process's threads or, for a
big job on the real backend, from worker processes (rotator.rewrite_workers: one
process's CPU tops out near 800 rewrites a second); this process decides either way.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rotator.journal import progress_across_runs
from rotator.model import Bucket, ObjectInfo
from rotator.ratelimit import GCS_START_RPS, AdaptiveRate, InFlight
from rotator.rewrite_object import needs_no_rewrite, rewrite_one
from rotator.rewrite_workers import Answer, Setup, WorkerPool
from rotator.services.storage.api import iter_objects
from rotator.services.storage.settings import RewriteSettings, bucket_progress
from rotator.services.storage.spec import SPEC as STORAGE

if TYPE_CHECKING:
    from rotator.steps.base import ApplyContext, PlannedStep

# Buckets rewritten at the same time (each lists on its own thread; the requests in
# flight are shared by all within --concurrency).
BUCKETS_AT_ONCE = 8


@dataclass
class RewriteTally:
    rewritten: int = 0
    already_current: int = 0
    pinned: int = 0
    bytes: int = 0
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def to_json(self) -> dict[str, Any]:
        return {
            "rewritten": self.rewritten,
            "already_current": self.already_current,
            "skipped_pinned": self.pinned,
            "bytes_rewritten": self.bytes,
            "failed": len(self.failures),
        }


@dataclass(eq=False)
class _Lane:
    """One bucket's rewrites: its write rate, its requests in flight, its tally."""

    bucket: Bucket
    now: Any  # the service's time its retention is judged at
    rate: AdaptiveRate
    sizer: InFlight
    tally: RewriteTally
    progress: Callable[..., None]
    bar: Any
    flight: _Flight


class Rewriter:
    """One step's local rewrites over some buckets: sent from this process's threads, or
    from worker processes (rotator.rewrite_workers) when the backend can start them and
    the job is big enough; this process decides either way."""

    def __init__(self, ctx: ApplyContext, step: PlannedStep, retiring: set[str], dest: str):
        self.ctx, self.step, self.retiring, self.dest = ctx, step, retiring, dest
        self.storage = STORAGE.api(ctx.backend)
        self.cap = max(1, ctx.concurrency)
        self.budget = threading.BoundedSemaphore(self.cap)
        self.report_lock = threading.Lock()  # the journal and the progress lines are shared
        self.rates: dict[str, AdaptiveRate] = {}
        self.sizers: dict[str, InFlight] = {}
        self.workers: WorkerPool | None = None
        self._thread = threading.local()  # backoffs the current thread's object went into

    def run(self, buckets: list[Bucket]) -> list[RewriteTally]:
        if not buckets:
            return []
        size_pool = getattr(self.storage, "size_pool", None)
        if size_pool is not None:
            size_pool(self.cap + BUCKETS_AT_ONCE)  # the rewrites and each bucket's listing
        for bucket in buckets:
            # One write rate per bucket (Cloud Storage's guidance), judged on throttling.
            rate = RewriteSettings.of(self.ctx).bucket_rate(self.step.data.get("start_rps", GCS_START_RPS))
            self.rates[bucket.name] = rate
            self.sizers[bucket.name] = InFlight(self.cap, _rate_of(rate))
        if hasattr(self.storage, "on_throttle"):
            self.storage.on_throttle = self._throttled
        tallies = [RewriteTally() for _ in buckets]
        self.workers = self._start_workers(buckets)
        with (
            ThreadPoolExecutor(max_workers=self.cap, thread_name_prefix="rewrite") as pool,
            ThreadPoolExecutor(max_workers=min(BUCKETS_AT_ONCE, len(buckets))) as feeders,
        ):
            jobs = [feeders.submit(self._bucket, pool, b, t) for b, t in zip(buckets, tallies, strict=True)]
            try:
                for job in jobs:
                    job.result()
            except BaseException:
                # A failing feeder, or a second Ctrl-C: the workers are killed now (what
                # they held is answered as failed), so the feeders' drain does not wait
                # for it.
                if self.workers is not None:
                    self.workers.kill()
                raise
        if self.workers is not None:
            self.workers.close()
        return tallies

    def _start_workers(self, buckets: list[Bucket]) -> WorkerPool | None:
        """Worker processes for a big job, when the backend can start them (the gcp
        adapter gives a recipe to connect the same way; the fake's state lives in this
        process) and --workers does not say 0."""
        recipe, report_retry = (getattr(self.storage, n, None) for n in ("worker_recipe", "report_retry"))
        if recipe is None or report_retry is None:
            return None
        planned = sum(c["objects"] for b in buckets for c in planned_changes(self.step, b.name))
        # A resumed step: what earlier runs rewrote is listed as current, never sent again;
        # a few objects left are not worth a worker's start.
        earlier = progress_across_runs(self.ctx.journal.events).get(self.step.id, {})
        count = RewriteSettings.of(self.ctx).workers_for(max(0, planned - earlier.get("rewritten", 0)))
        if not count:
            return None
        setup = Setup(recipe(), self.retiring, self.dest, threads=self.cap)
        try:
            workers = WorkerPool(count, setup, self._grant, report_retry)
        except OSError as e:  # no process to spare, say: this one sends them all
            self.ctx.emit(f"could not start rewrite worker processes ({e}): rewriting from this one")
            return None
        # Said when started, not "sent": a worker that cannot start leaves its share here.
        self.ctx.emit(f"starting {count} rewrite worker process(es) (--workers; 0: none)")
        return workers

    def _throttled(self, bucket: str) -> None:
        """A write to `bucket` was throttled; its retry (after the backend's backoff)
        also waits for a token, so a storm slows retries down as well as new writes."""
        rate, sizer = self.rates.get(bucket), self.sizers.get(bucket)
        if rate is not None and sizer is not None:
            _count_throttled(rate, sizer)
            self._thread.backoffs = getattr(self._thread, "backoffs", 0) + 1
            rate.acquire()

    def _grant(self, bucket: str, throttled: bool, reply: Callable[[], None]) -> None:
        """A worker asks for a token for one more write to `bucket` (after a throttled
        answer when `throttled`): as _throttled, on a thread of the grant pool."""
        try:
            rate, sizer = self.rates[bucket], self.sizers[bucket]
            if throttled:
                _count_throttled(rate, sizer)
            rate.acquire()
        finally:
            reply()  # never leave a worker's thread waiting

    def _bucket(self, pool: ThreadPoolExecutor, bucket: Bucket, tally: RewriteTally) -> None:
        ctx = self.ctx
        planned = planned_changes(self.step, bucket.name)
        bar = ctx.progress_bars(
            f"gs://{bucket.name}", sum(c["objects"] for c in planned), sum(c["bytes"] for c in planned)
        )
        lane = _Lane(
            bucket,
            ctx.backend.clock.now(),
            self.rates[bucket.name],
            self.sizers[bucket.name],
            tally,
            bucket_progress(ctx, self.step.id, bucket.name),
            bar,
            _Flight(),
        )
        try:
            for obj in self._listing(bucket.name):
                if ctx.stopping():
                    break  # SIGINT/SIGTERM: start nothing new; what is in flight ends below
                if obj.kms_key_version not in self.retiring:
                    continue  # never touch an object that is already current
                lane.flight.enter(lane.sizer.limit())
                self.budget.acquire()  # released when its request is answered (_release)
                try:
                    self._start(pool, lane, obj)
                except BaseException:
                    self.budget.release()
                    lane.flight.leave(None)
                    raise
        finally:
            lane.flight.drain()
        bar.close()
        with self.report_lock:
            lane.progress(tally.to_json(), final=True)

    def _start(self, pool: ThreadPoolExecutor, lane: _Lane, obj: ObjectInfo) -> None:
        """Rewrite `obj` on a ready worker process, or on a thread of this one (no
        worker, or none started yet)."""
        workers = self.workers
        worker = workers.ready() if workers is not None else None
        if workers is None or worker is None:
            pool.submit(self._one, lane, obj).add_done_callback(lane.flight.leave)
            return
        skip = needs_no_rewrite(obj, self.retiring, lane.bucket, lane.now)
        if skip:  # nothing to write (a hold, a retention): no token, no worker
            self._finished(lane, skip, 0, None, 0)
            lane.flight.leave(None)
            return
        lane.rate.acquire()  # the first write's token: a worker asks for the later ones

        def answered(answer: Answer) -> None:
            error: BaseException | None = None
            try:
                self._finished(lane, *answer)
            except BaseException as e:  # e.g. the journal's disk is full: the feeder raises it
                error = e
            lane.flight.left(error)

        workers.rewrite(worker, obj, lane.bucket, lane.now, answered)

    def _one(self, lane: _Lane, obj: ObjectInfo) -> None:
        sent = 0.0

        def before_write() -> None:
            nonlocal sent
            lane.rate.acquire()  # each call is a write: it waits for the bucket's rate
            sent = time.monotonic()

        self._thread.backoffs = 0
        try:
            outcome, size = rewrite_one(
                self.storage, obj, self.retiring, self.dest, lane.bucket, lane.now, before_write=before_write
            )
        except BaseException:
            self._release(lane, self._thread.backoffs)
            raise
        # The service's time, not the wait for a token (a retried one's is never the least: no harm).
        latency = time.monotonic() - sent if sent else None
        self._finished(lane, outcome, size, latency, self._thread.backoffs)

    def _release(self, lane: _Lane, backoffs: int) -> None:
        self.budget.release()
        for _ in range(backoffs):
            lane.sizer.backoff(started=False)

    def _finished(self, lane: _Lane, outcome: str, size: int, latency: float | None, backoffs: int) -> None:
        """One object answered, here or by a worker: its place in the budget, the
        round trip it took, its tally, the journal and the progress line."""
        self._release(lane, backoffs)
        if latency is not None:
            lane.sizer.observe(latency)
        tally = lane.tally
        with self.report_lock:
            if outcome == "rewritten":
                tally.rewritten += 1
                tally.bytes += size
            elif outcome == "current":
                tally.already_current += 1
            elif outcome == "pinned":
                tally.pinned += 1
            else:
                tally.failures.append(outcome)
            lane.progress(tally.to_json())
            if outcome in ("rewritten", "current"):
                lane.bar.update(1, size)

    def _listing(self, bucket: str) -> Iterator[ObjectInfo]:
        # One page after another is enough here: a page is 1,000 objects, a second's
        # writes at the guidance's rate.
        return iter_objects(self.storage, bucket)


def planned_changes(step: PlannedStep, bucket: str) -> list[dict[str, Any]]:
    """The step's planned changes to `bucket` (its objects and bytes to rewrite)."""
    return [c for c in step.changes if c.get("bucket") == f"gs://{bucket}"]


def _count_throttled(rate: AdaptiveRate, sizer: InFlight) -> None:
    """A throttled answer: the bucket's rate judges it, and the request sleeping in its
    backoff gets a slot of its own meanwhile."""
    rate.on_throttled()
    sizer.backoff(started=True)


def _rate_of(rate: AdaptiveRate) -> Callable[[], float]:
    return lambda: rate.rate


class _Flight:
    """One bucket's rewrites in flight: the feeder waits below a limit; each finished
    rewrite leaves (a counter and a condition: cheaper per object than waiting on the
    set of futures). An error in a rewrite is raised in the feeder."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.count = 0
        self.error: BaseException | None = None

    def enter(self, limit: int) -> None:
        with self.cond:
            while self.count >= limit and self.error is None:
                self.cond.wait()
            if self.error is not None:
                raise self.error
            self.count += 1

    def leave(self, future: Future[None] | None) -> None:
        self.left(future.exception() if future is not None else None)

    def left(self, error: BaseException | None) -> None:
        """One rewrite ended (with the error it raised, if any)."""
        with self.cond:
            self.count -= 1
            if error is not None and self.error is None:
                self.error = error
            self.cond.notify()

    def drain(self) -> None:
        with self.cond:
            while self.count:
                self.cond.wait()
            if self.error is not None:
                raise self.error
