"""Rate limits (rotator.ratelimit): a bucket's write rate bursts then waits, starts at
Cloud Storage's guidance and at most doubles every 20 minutes up to its cap, comes down
within seconds under throttling, and Little's law sizes the requests in flight.

Backends: none (the rate limiters on an injected clock)."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable

from rotator.ratelimit import (
    FLOOR_RPS,
    GCS_START_RPS,
    KMS_QUOTA_START_RPS,
    RAMP_EVERY_SECONDS,
    WINDOW_SECONDS,
    AdaptiveRate,
    InFlight,
    RateLimiter,
)


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_bursts_up_to_the_rate_then_waits() -> None:
    t = FakeTime()
    limiter = RateLimiter(10, clock=t.clock, sleep=t.sleep)
    waits = [limiter.acquire() for _ in range(30)]
    assert waits[:10] == [0.0] * 10
    assert all(w > 0 for w in waits[10:])
    # 30 writes at 10/s with a burst of 10 take 2 seconds, never less.
    assert abs(t.now - 2.0) < 1e-9


def test_idle_time_refills_but_never_beyond_the_burst() -> None:
    t = FakeTime()
    limiter = RateLimiter(5, clock=t.clock, sleep=t.sleep)
    for _ in range(5):
        limiter.acquire()
    t.now += 100.0
    assert [limiter.acquire() for _ in range(5)] == [0.0] * 5
    assert limiter.acquire() > 0


def test_adaptive_rate_starts_at_the_guidance_and_never_above_the_cap() -> None:
    from rotator.ratelimit import GCS_START_RPS, AdaptiveRate

    t = FakeTime()
    assert AdaptiveRate(clock=t.clock, sleep=t.sleep).rate == GCS_START_RPS
    assert AdaptiveRate(cap=50, clock=t.clock, sleep=t.sleep).rate == 50


def drive(rate: AdaptiveRate, t: FakeTime, seconds: float, throttled: Callable[[float], bool]) -> int:
    """Writes as fast as the bucket's rate lets them go for `seconds` of the fake clock;
    `throttled(now)` says whether the service answers that write with a 429. Returns
    the writes admitted (the rate the bucket was given)."""
    end, admitted = t.now + seconds, 0
    while t.now < end:
        rate.acquire()
        admitted += 1
        if throttled(t.now):
            rate.on_throttled()  # the backend retries it with backoff; the rate judges
    return admitted


def test_above_what_it_sustained_the_rate_at_most_doubles_every_20_minutes_up_to_the_cap() -> None:
    t = FakeTime()
    rate = AdaptiveRate(100, cap=350, clock=t.clock, sleep=t.sleep)
    seen: list[tuple[float, float]] = []
    for _ in range(int(3 * RAMP_EVERY_SECONDS / 10)):
        drive(rate, t, 10, lambda _now: False)
        seen.append((t.now, rate.rate))
    assert all(r == 100 for now, r in seen if now < RAMP_EVERY_SECONDS - 1)  # not before 20 minutes
    assert any(r == 200 for _, r in seen)
    for t1, r1 in seen:  # no 20-minute span more than doubles it
        assert all(r2 <= 2 * r1 for t2, r2 in seen if t1 <= t2 < t1 + RAMP_EVERY_SECONDS - 1)
    assert seen[-1][1] == 350  # capped by --max-rps


def test_a_bucket_that_does_not_write_at_its_rate_earns_no_doubling() -> None:
    """Going above the rate is for a bucket that has been running at it for 20 minutes,
    not one that was allowed it while writing a third as fast."""
    t = FakeTime()
    rate = AdaptiveRate(300, clock=t.clock, sleep=t.sleep)
    for _ in range(int(2 * RAMP_EVERY_SECONDS / 0.01)):  # 100 writes/s for 40 minutes
        rate.acquire()
        t.now += 0.01
    assert rate.rate == 300
    drive(rate, t, RAMP_EVERY_SECONDS + 5, lambda _now: False)  # then 20 minutes at the rate
    assert rate.rate == 600


def test_a_few_throttled_answers_never_slow_the_bucket_down() -> None:
    t = FakeTime()
    rate = AdaptiveRate(800, clock=t.clock, sleep=t.sleep)
    writes = itertools.count()
    drive(rate, t, 5, lambda _now: next(writes) % 20 == 0)  # every 20th write throttled
    assert rate.rate == 800 and rate.decreases == 0 and rate.throttled > 0


def test_ten_percent_random_throttling_keeps_at_least_70_percent_of_the_clean_rate() -> None:
    clean_t, noisy_t = FakeTime(), FakeTime()
    clean = drive(AdaptiveRate(clock=clean_t.clock, sleep=clean_t.sleep), clean_t, 60, lambda _n: False)
    dice = random.Random(14)
    noisy_rate = AdaptiveRate(clock=noisy_t.clock, sleep=noisy_t.sleep)
    noisy = drive(noisy_rate, noisy_t, 60, lambda _n: dice.random() < 0.10)
    assert noisy_rate.throttled > 0.08 * noisy
    assert noisy >= 0.70 * clean, f"{noisy} writes against {clean} without throttling"


def test_slow_small_buckets_with_ten_percent_throttling_keep_their_rate_too() -> None:
    for start in (KMS_QUOTA_START_RPS, 20.0):
        clean_t, noisy_t = FakeTime(), FakeTime()
        clean = drive(
            AdaptiveRate(start, clock=clean_t.clock, sleep=clean_t.sleep), clean_t, 120, lambda _n: False
        )
        dice = random.Random(int(start))
        coin = dice.random
        noisy = drive(
            AdaptiveRate(start, clock=noisy_t.clock, sleep=noisy_t.sleep),
            noisy_t,
            120,
            lambda _n, coin=coin: coin() < 0.1,  # type: ignore[misc]
        )
        assert noisy >= 0.70 * clean, (start, noisy, clean)


def test_a_429_storm_brings_the_rate_down_within_seconds_and_back_up_once_it_ends() -> None:
    t = FakeTime()
    rate = AdaptiveRate(clock=t.clock, sleep=t.sleep)
    drive(rate, t, 10, lambda _n: False)
    assert rate.rate == GCS_START_RPS
    storm_start, storm_end = t.now, t.now + 30
    trace: list[tuple[float, float]] = []
    for _ in range(60 * 10):  # a minute in tenths of a second: 30 s of storm, 30 s after
        drive(rate, t, 0.1, lambda now: storm_start <= now < storm_end)
        trace.append((t.now, rate.rate))
    during = [(now - storm_start, r) for now, r in trace if now < storm_end]
    after = [(now - storm_end, r) for now, r in trace if now >= storm_end]
    # Down within seconds: an eighth of the rate within 3 s, the floor within 6 s...
    assert all(r <= GCS_START_RPS / 8 for s, r in during if s >= 3), during[:40]
    assert all(r == FLOOR_RPS for s, r in during if s >= 6)
    # ...never below the documented floor...
    assert min(r for _, r in trace) == FLOOR_RPS
    # ...and back to the rate it sustained within seconds of the storm's end.
    assert all(r == GCS_START_RPS for s, r in after if s >= 8), after[:100]
    assert rate.decreases >= 7


def test_the_rate_comes_down_at_most_once_per_window() -> None:
    t = FakeTime()
    rate = AdaptiveRate(800, clock=t.clock, sleep=t.sleep)
    for _ in range(100):  # a burst of throttled answers at one instant: one window
        rate.on_throttled()
    assert rate.rate == 800  # judged when the window ends, not per answer
    t.now += WINDOW_SECONDS
    rate.on_throttled()
    assert rate.rate == 400
    for _ in range(100):
        rate.on_throttled()
    assert rate.rate == 400 and rate.decreases == 1


def test_little_s_law_sizes_the_requests_in_flight_up_to_the_cap() -> None:
    current = {"rate": 1000.0}
    flight = InFlight(256, lambda: current["rate"], first_latency=0.05)
    assert flight.limit() == math.ceil(1000 * 0.05 * InFlight.HEADROOM)  # 63 at 50 ms
    for _ in range(2 * InFlight.WINDOW):
        flight.observe(0.2)  # the service got slower: more in flight for the same rate
    assert flight.latency == 0.2
    assert flight.limit() == 250
    capped = InFlight(64, lambda: current["rate"], first_latency=0.2)
    assert capped.limit() == 64  # --concurrency caps it
    current["rate"] = FLOOR_RPS  # a throttled bucket needs few
    assert flight.limit() == InFlight.MIN
    assert InFlight(2, lambda: current["rate"]).limit() == 2  # and never more than the cap


def test_in_flight_follows_the_round_trip_not_answers_kept_waiting_on_a_busy_client() -> None:
    """Answers that waited for the interpreter (or a retry's backoff) are slow samples;
    the least round trip in a window is the service's, and the flight follows it."""
    flight = InFlight(256, lambda: 1000.0, first_latency=0.05)
    for i in range(InFlight.WINDOW):
        flight.observe(0.05 if i % 10 == 0 else 0.4)  # most answers queued behind others
    assert flight.latency == 0.05 and flight.limit() == 63
    for _ in range(2 * InFlight.WINDOW):  # a window later only the new round trips count
        flight.observe(0.1)
    assert flight.latency == 0.1 and flight.limit() == 125


def test_a_request_sleeping_before_its_retry_gets_a_slot_of_its_own() -> None:
    flight = InFlight(256, lambda: 1000.0, first_latency=0.05)
    base = flight.limit()
    for _ in range(30):
        flight.backoff(started=True)
    assert flight.limit() == base + 30
    for _ in range(30):
        flight.backoff(started=False)
    assert flight.limit() == base
    small = InFlight(40, lambda: 1000.0, first_latency=0.05)
    for _ in range(30):
        small.backoff(started=True)
    assert small.limit() == 40  # still within --concurrency


def test_adaptive_rate_paces_writes_at_its_rate() -> None:
    from rotator.ratelimit import AdaptiveRate

    t = FakeTime()
    rate = AdaptiveRate(10, clock=t.clock, sleep=t.sleep)
    for _ in range(30):
        rate.acquire()
    assert abs(t.now - 2.0) < 1e-9
