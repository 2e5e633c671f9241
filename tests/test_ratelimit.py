from __future__ import annotations

from rotator.ratelimit import RateLimiter


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


def test_adaptive_rate_doubles_at_most_every_20_minutes_up_to_the_cap() -> None:
    from rotator.ratelimit import RAMP_EVERY_SECONDS, AdaptiveRate

    t = FakeTime()
    rate = AdaptiveRate(100, cap=350, clock=t.clock, sleep=t.sleep)
    t.now += RAMP_EVERY_SECONDS - 1
    rate.acquire()
    assert rate.rate == 100  # not yet 20 minutes
    t.now += 1
    rate.acquire()
    assert rate.rate == 200
    t.now += 60
    rate.acquire()
    assert rate.rate == 200  # the next doubling waits another 20 minutes
    t.now += RAMP_EVERY_SECONDS
    rate.acquire()
    assert rate.rate == 350  # capped by --max-rps


def test_adaptive_rate_halves_on_throttling_and_restarts_the_ramp() -> None:
    from rotator.ratelimit import RAMP_EVERY_SECONDS, AdaptiveRate

    t = FakeTime()
    rate = AdaptiveRate(800, clock=t.clock, sleep=t.sleep)
    t.now += RAMP_EVERY_SECONDS - 10
    rate.on_throttled()
    rate.on_throttled()  # the same burst: halved once
    assert rate.rate == 400
    t.now += 1.0
    rate.on_throttled()  # a later burst halves again
    assert rate.rate == 200 and rate.throttled == 3
    t.now += 14
    rate.acquire()
    assert rate.rate == 200  # throttling restarted the 20-minute wait


def test_adaptive_rate_paces_writes_at_its_rate() -> None:
    from rotator.ratelimit import AdaptiveRate

    t = FakeTime()
    rate = AdaptiveRate(10, clock=t.clock, sleep=t.sleep)
    for _ in range(30):
        rate.acquire()
    assert abs(t.now - 2.0) < 1e-9
