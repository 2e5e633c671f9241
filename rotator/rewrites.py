"""The local rewrite engine: every live object of some buckets under a retiring version
is rewritten under the destination key from this machine (R11, R13.3, R14).

Buckets run side by side within one budget of requests in flight (--concurrency, one
thread pool and one HTTP connection pool of that size). Each bucket has its own write
rate (AdaptiveRate, Cloud Storage's request-rate guidance) and its own share of the
budget, sized by Little's law from that rate and the time an object takes (InFlight).
Per object there is the request itself, its tally and, every so often, a journal
checkpoint: nothing else.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rotator import apierrors as api
from rotator.model import Bucket, ObjectInfo
from rotator.ratelimit import GCS_START_RPS, AdaptiveRate, InFlight
from rotator.services.storage.api import StorageApi, iter_objects
from rotator.services.storage.settings import RewriteSettings, bucket_progress
from rotator.services.storage.spec import SPEC as STORAGE
from rotator.storage_rules import overwrite_blocker

if TYPE_CHECKING:
    from rotator.steps.base import ApplyContext, PlannedStep

# Buckets rewritten at the same time (each lists on its own thread; the requests in
# flight are shared by all within --concurrency).
BUCKETS_AT_ONCE = 8

# A rewrite whose generation precondition fails is re-read and retried this often
# before the object is reported (an application keeps rewriting it).
MAX_PRECONDITION_RETRIES = 3


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


def rewrite_one(
    storage: StorageApi,
    obj: ObjectInfo,
    retiring: set[str],
    dest: str,
    bucket: Bucket,
    now: Any,
    before_write: Callable[[], object] = lambda: None,
) -> tuple[str, int]:
    """Rewrite one object if it still needs it. Returns ('rewritten'|'current'|'pinned'
    | a failure description, bytes). The generation precondition means an application's
    concurrent write is never overwritten: on a mismatch the object is re-read and
    re-checked."""
    where = f"gs://{obj.bucket}/{obj.name}"
    for _ in range(MAX_PRECONDITION_RETRIES + 1):
        if obj.kms_key_version not in retiring:
            return "current", 0
        if obj.held or overwrite_blocker(obj, bucket, now):
            return "pinned", 0  # reported by inventory as an R16 pin; cannot be rewritten
        token = None
        try:
            while True:
                before_write()  # each call is a write: it waits for the bucket's rate
                result = storage.rewrite_object(
                    obj.bucket,
                    obj.name,
                    destination_kms_key=dest,
                    if_generation_match=obj.generation,
                    rewrite_token=token,
                )
                if result.done:
                    return "rewritten", obj.size
                token = result.rewrite_token
        except api.PreconditionFailed:
            try:
                obj = storage.get_object(obj.bucket, obj.name)
            except api.NotFound:
                return "current", 0  # deleted meanwhile: nothing left to protect
        except api.NotFound as e:
            try:  # deleted meanwhile, or a failure that says 404? Only a second look tells.
                storage.get_object(obj.bucket, obj.name)
            except api.NotFound:
                return "current", 0
            return f"{where}: {e}", 0
        except api.ApiError as e:
            return f"{where}: {e}", 0
    return f"{where}: generation kept changing under rotator (ifGenerationMatch)", 0


class Rewriter:
    """One step's local rewrites over some buckets."""

    def __init__(self, ctx: ApplyContext, step: PlannedStep, retiring: set[str], dest: str):
        self.ctx, self.step, self.retiring, self.dest = ctx, step, retiring, dest
        self.storage = STORAGE.api(ctx.backend)
        self.cap = max(1, ctx.concurrency)
        self.budget = threading.BoundedSemaphore(self.cap)
        self.report_lock = threading.Lock()  # the journal and the progress lines are shared
        self.rates: dict[str, AdaptiveRate] = {}
        self.sizers: dict[str, InFlight] = {}
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
        with (
            ThreadPoolExecutor(max_workers=self.cap, thread_name_prefix="rewrite") as pool,
            ThreadPoolExecutor(max_workers=min(BUCKETS_AT_ONCE, len(buckets))) as feeders,
        ):
            jobs = [feeders.submit(self._bucket, pool, b, t) for b, t in zip(buckets, tallies, strict=True)]
            for job in jobs:
                job.result()
        return tallies

    def _throttled(self, bucket: str) -> None:
        """A write to `bucket` was throttled; its retry (after the backend's backoff)
        also waits for a token, so a storm slows retries down as well as new writes."""
        rate, sizer = self.rates.get(bucket), self.sizers.get(bucket)
        if rate is not None and sizer is not None:
            rate.on_throttled()
            sizer.backoff(started=True)  # a slot of its own while it sleeps
            self._thread.backoffs = getattr(self._thread, "backoffs", 0) + 1
            rate.acquire()

    def _bucket(self, pool: ThreadPoolExecutor, bucket: Bucket, tally: RewriteTally) -> None:
        ctx, storage = self.ctx, self.storage
        now = ctx.backend.clock.now()
        progress = bucket_progress(ctx, self.step.id, bucket.name)
        planned = [c for c in self.step.changes if c.get("bucket") == f"gs://{bucket.name}"]
        bar = ctx.progress_bars(
            f"gs://{bucket.name}", sum(c["objects"] for c in planned), sum(c["bytes"] for c in planned)
        )
        rate, sizer = self.rates[bucket.name], self.sizers[bucket.name]

        def one(obj: ObjectInfo) -> None:
            sent = [0.0]

            def before_write() -> None:
                rate.acquire()  # each call is a write: it waits for the bucket's rate
                sent[0] = time.monotonic()

            try:
                outcome, size = rewrite_one(
                    storage, obj, self.retiring, self.dest, bucket, now, before_write=before_write
                )
            finally:
                self.budget.release()
                for _ in range(getattr(self._thread, "backoffs", 0)):
                    sizer.backoff(started=False)
                self._thread.backoffs = 0
            if sent[0]:  # the service's time, not the wait for a token (a retried one's
                sizer.observe(time.monotonic() - sent[0])  # is never the least: no harm)
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
                progress(tally.to_json())
                if outcome in ("rewritten", "current"):
                    bar.update(1, size)

        flight = _Flight()
        try:
            for obj in self._listing(bucket.name):
                if ctx.stopping():
                    break  # SIGINT/SIGTERM: start nothing new; what is in flight ends below
                if obj.kms_key_version not in self.retiring:
                    continue  # never touch an object that is already current
                flight.enter(sizer.limit())
                self.budget.acquire()  # released by `one` when its request is answered
                try:
                    pool.submit(one, obj).add_done_callback(flight.leave)
                except BaseException:
                    self.budget.release()
                    flight.leave(None)
                    raise
        finally:
            flight.drain()
        bar.close()
        with self.report_lock:
            progress(tally.to_json(), final=True)

    def _listing(self, bucket: str) -> Iterator[ObjectInfo]:
        # One page after another is enough here: a page is 1,000 objects, a second's
        # writes at the guidance's rate.
        return iter_objects(self.storage, bucket)


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
        error = future.exception() if future is not None else None
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
