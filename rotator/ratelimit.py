"""Write rates for object rewrites. Thread-safe; time and sleep are injectable so
tests never sleep.

Cloud Storage's guidance for a bucket: start at about 1,000 object writes per second
and at most double every 20 minutes. AdaptiveRate follows it per bucket, halves on
throttling (429/503) and never exceeds --max-rps.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

GCS_START_RPS = 1000.0  # Cloud Storage's suggested initial write rate per bucket
KMS_QUOTA_START_RPS = 100.0  # HSM / EXTERNAL keys spend Cloud HSM / EKM quota (R6)
RAMP_EVERY_SECONDS = 20 * 60  # at most double every 20 minutes
MIN_RPS = 1.0
HALVE_EVERY_SECONDS = 1.0  # one burst of throttling answers halves the rate once


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
            self.rate = rate
            self.capacity = max(1.0, rate)
            self._tokens = min(self._tokens, self.capacity)


class AdaptiveRate:
    """One bucket's write rate: starts at `start` (capped by `cap`), doubles after
    RAMP_EVERY_SECONDS without throttling, halves on each throttling signal."""

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
        self._since = clock()
        self._last_halved = float("-inf")
        self._lock = threading.Lock()
        self.throttled = 0

    @property
    def rate(self) -> float:
        return self._bucket.rate

    def acquire(self) -> float:
        with self._lock:
            now = self._clock()
            if now - self._since >= RAMP_EVERY_SECONDS:
                doubled = self.rate * 2
                self._bucket.set_rate(min(doubled, self.cap) if self.cap else doubled)
                self._since = now
        return self._bucket.acquire()

    def on_throttled(self) -> None:
        """The service said slow down (429/503): halve, at most once per HALVE_EVERY
        (requests in flight all report the same overload), and wait a period to ramp."""
        with self._lock:
            self.throttled += 1
            now = self._clock()
            if now - self._last_halved >= HALVE_EVERY_SECONDS:
                self._bucket.set_rate(max(MIN_RPS, self.rate / 2))
                self._last_halved = now
            self._since = now


class Unlimited:
    rate = float("inf")

    def acquire(self) -> float:
        return 0.0

    def on_throttled(self) -> None:
        pass
