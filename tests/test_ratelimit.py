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
