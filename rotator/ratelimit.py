"""Write rates and requests in flight for object rewrites. Thread-safe; time and sleep
are injectable so tests never sleep.

Cloud Storage's request-rate guidance (https://cloud.google.com/storage/docs/request-rate,
"Request rate and access distribution guidelines"):
- a bucket starts with an IO capacity of about 1,000 object writes per second;
- above that, ramp up gradually, "no faster than doubling over a period of 20 minutes";
- on increased latency or error rates, "pause your ramp-up or reduce the request rate
  temporarily", and retry 408, 429 and 5xx answers with exponential backoff.

AdaptiveRate follows it per bucket. Each throttled answer is retried by the backend's
RetryPolicy (exponential backoff with jitter); the bucket's rate itself comes down
(halves) only when the share of throttled answers over a short window passes
THROTTLED_SHARE: a few random 503s are the service's noise, not a signal to slow the
whole bucket down. After a backoff the rate climbs back quickly (doubling every
window) to the highest rate the bucket already sustained; only going above that (and
above the 1,000/s start) follows the 20-minute doubling. It never goes below FLOOR_RPS
and never above --max-rps.

InFlight sizes the requests in flight per bucket by Little's law: the rate times the
observed time one object takes, up to --concurrency.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

GCS_START_RPS = 1000.0  # Cloud Storage's initial write capacity per bucket (guidance above)
KMS_QUOTA_START_RPS = 100.0  # HSM / EXTERNAL keys spend Cloud HSM / EKM quota (R6)
RAMP_EVERY_SECONDS = 20 * 60  # above the sustained rate: at most double every 20 minutes
FLOOR_RPS = 5.0  # the rate never comes down below this (documented in README)
WINDOW_SECONDS = 0.5  # the throttled share is judged over windows this long...
WINDOW_MIN_ANSWERS = 10  # ...holding at least this many answers (a longer window otherwise)
WINDOW_MAX_SECONDS = 5.0  # ...but no longer than this: a trickle is judged too
THROTTLED_SHARE = 0.25  # above this share of throttled answers the rate halves
USED_SHARE = 0.8  # a window below this share of the rate does not count toward a doubling
# A throttled rewrite's first backoff while its bucket's rate paces the retries (the
# rewrite engine: every retry waits for a token of the bucket's AdaptiveRate, and a
# throttled share above THROTTLED_SHARE halves that rate). Google's retry strategy
# starts at one second for a client with nothing else easing the load (rotator's
# RetryPolicy elsewhere: 0.5 s plus as much jitter); here the bucket's rate eases it,
# and a backoff only spreads one object's attempts. A longer start would leave the few
# objects refused three times in a row (0.1% at 10% throttling: two in 2,000) running
# seconds after all the others; from 0.1 s, doubling with as much jitter, three
# refusals cost under a second. The backoff still doubles up to the RetryPolicy's
# maximum, with three more attempts (the gcp adapter) for the same patience in all.
PACED_FIRST_BACKOFF = 0.1
# --concurrency's default: a cap, not a target. 1,000 writes/s at 100-250 ms an object
# (a slow region, retries) needs 125-310 in flight; InFlight keeps only what the rate needs.
DEFAULT_CONCURRENCY = 256


class RateLimiter:
    """A token bucket at a fixed rate."""

    def __init__(
        self,
        rate: float,
        *,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.capacity = burst if burst is not None else max(1.0, rate)
        self._tokens = self.capacity
        self._clock, self._sleep = clock, sleep
        self._last = clock()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take one token, waiting if none is left; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= 1
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait:
            self._sleep(wait)
        return wait

    def set_rate(self, rate: float) -> None:
        with self._lock:
            now = self._clock()
            # Settle the tokens earned at the old rate before the new one applies.
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self.rate = rate
            self.capacity = max(1.0, rate)
            self._tokens = min(self._tokens, self.capacity)


class AdaptiveRate:
    """One bucket's write rate (see the module docstring for the guidance it follows).

    `acquire()` before each request that writes, first attempts and retries alike (a
    retry is a write too: during a storm it waits its turn like the others);
    `on_throttled()` for each answer that said slow down (408, 429, 5xx).
    """

    def __init__(
        self,
        start: float = GCS_START_RPS,
        *,
        cap: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.cap = cap
        first = min(start, cap) if cap else start
        self._bucket = RateLimiter(first, clock=clock, sleep=sleep)
        self._clock = clock
        self._lock = threading.Lock()
        now = clock()
        # The guidance lets a bucket start at `start`: that counts as sustained.
        self.sustained = first
        self._ramped_at = now  # the last doubling above `sustained` (or the start)
        self._window_start = now
        self._sent = 0
        self._throttled_in_window = 0
        self.throttled = 0  # throttled answers over the whole run
        self.decreases = 0

    @property
    def rate(self) -> float:
        return self._bucket.rate

    def acquire(self) -> float:
        with self._lock:
            self._sent += 1
            self._judge(self._clock())
        return self._bucket.acquire()

    def on_throttled(self) -> None:
        with self._lock:
            self.throttled += 1
            self._throttled_in_window += 1
            self._judge(self._clock())

    def _judge(self, now: float) -> None:
        """At the end of a window: halve if too many answers were throttled; otherwise
        climb back to the sustained rate, or past it per the 20-minute guidance."""
        elapsed = now - self._window_start
        if elapsed < WINDOW_SECONDS:
            return
        # Requests sent in the window (a throttled answer whose request was counted
        # elsewhere, e.g. before the window, still counts as one).
        sent = max(self._sent, self._throttled_in_window)
        if sent < WINDOW_MIN_ANSWERS and elapsed < WINDOW_MAX_SECONDS:
            return
        share = self._throttled_in_window / sent if sent else 0.0
        rate = self.rate
        if share > THROTTLED_SHARE:
            self._set(max(FLOOR_RPS, rate / 2))
            self.decreases += 1
            self._ramped_at = now  # pause the ramp above the sustained rate
        elif rate < self.sustained:
            self._set(min(self.sustained, rate * 2))  # recover quickly: the bucket took it
        elif sent < USED_SHARE * rate * elapsed:
            # The bucket is not writing at this rate (too few objects in flight, a slow
            # listing): the 20 minutes count only while it does, so a doubling never
            # allows a jump the service has not seen the half of.
            self._ramped_at = now
        elif now - self._ramped_at >= RAMP_EVERY_SECONDS:
            self.sustained = self._capped(rate * 2)  # the guidance's ramp: 2x per 20 min
            self._set(self.sustained)
            self._ramped_at = now
        self._window_start, self._sent, self._throttled_in_window = now, 0, 0

    def _capped(self, rate: float) -> float:
        return min(rate, self.cap) if self.cap else rate

    def _set(self, rate: float) -> None:
        self._bucket.set_rate(self._capped(rate))


class InFlight:
    """How many rewrites a bucket keeps in flight: Little's law, L = rate x latency.

    The latency is the round trip of a request as the service answers it: the least
    seen over the last WINDOW answers (so it follows a service that slows down within a
    window) rather than an average, which on a busy client also counts the time answers
    wait for the interpreter and would grow the flight that makes them wait (measured:
    150 in flight ran slower than 64). Requests sleeping in a retry's backoff do not
    count against it: each gets a slot of its own (`backing_off`). HEADROOM covers the
    jitter; at least MIN, at most `cap` (--concurrency, all buckets together)."""

    HEADROOM = 1.25
    MIN = 4
    WINDOW = 200  # answers per window of the round-trip minimum

    def __init__(self, cap: int, rate: Callable[[], float], first_latency: float = 0.05):
        self.cap = max(1, cap)
        self._rate = rate
        self._lock = threading.Lock()
        self._previous_min = first_latency  # until a window has been seen
        self._current_min = math.inf
        self._seen = 0
        self.backing_off = 0

    @property
    def latency(self) -> float:
        return min(self._previous_min, self._current_min)

    def observe(self, seconds: float) -> None:
        """One request's round trip (not its backoff)."""
        with self._lock:
            self._current_min = min(self._current_min, seconds)
            self._seen += 1
            if self._seen >= self.WINDOW:
                self._previous_min, self._current_min, self._seen = self._current_min, math.inf, 0

    def backoff(self, started: bool) -> None:
        """A request began (or ended) sleeping before its retry."""
        with self._lock:
            self.backing_off += 1 if started else -1

    def limit(self) -> int:
        wanted = math.ceil(self._rate() * self.latency * self.HEADROOM) + self.backing_off
        return max(min(self.MIN, self.cap), min(self.cap, wanted))


class Unlimited:
    rate = float("inf")

    def acquire(self) -> float:
        return 0.0

    def on_throttled(self) -> None:
        pass


KMS_READS_PER_MINUTE = 300  # Cloud KMS's default read quota, per project per minute


class PerMinuteQuota:
    """At most `limit` calls per project in any 60 seconds (a sliding window): the calls
    of the next minute wait for the oldest to leave it. Cloud KMS counts read requests
    per project per minute, so rotator counts them the same way, client side."""

    def __init__(
        self,
        limit: int = KMS_READS_PER_MINUTE,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit, self._clock, self._sleep = limit, clock, sleep
        self._calls: dict[str, list[float]] = {}
        self._lock = threading.Lock()
        self.waited = 0.0

    def acquire(self, project: str) -> float:
        """Wait until one more call for `project` stays within the quota; returns the wait."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                calls = [t for t in self._calls.get(project, []) if t > now - 60.0]
                if len(calls) < self.limit:
                    calls.append(now)
                    self._calls[project] = calls
                    self.waited += waited
                    return waited
                self._calls[project] = calls
                wait = calls[0] + 60.0 - now
            self._sleep(wait)
            waited += wait


class QuotaKms:
    """A KmsApi whose reads (get_*, list_*) each take a place in the project's quota;
    everything else passes through."""

    def __init__(self, inner: object, quota: PerMinuteQuota):
        self._inner, self._quota = inner, quota

    def __getattr__(self, name: str) -> object:
        value = getattr(self._inner, name)
        if not (callable(value) and name.startswith(("get_", "list_"))):
            return value

        def read(resource: str, *args: object, **kwargs: object) -> object:
            project = resource.split("/")[1] if resource.startswith("projects/") else ""
            self._quota.acquire(project)
            return value(resource, *args, **kwargs)

        return read
