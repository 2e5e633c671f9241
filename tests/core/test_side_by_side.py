"""Independent reads side by side (rotator.sidebyside): the answers in the order asked,
a bounded number running at a time, an error raised in order, and nothing started
after it.

Backends: none (plain functions on threads)."""

from __future__ import annotations

import threading
import time

import pytest

from rotator.sidebyside import side_by_side


class Reads:
    def __init__(self, fail: int | None = None):
        self.lock = threading.Lock()
        self.running = self.peak = 0
        self.started: list[int] = []
        self.fail = fail

    def __call__(self, n: int) -> int:
        with self.lock:
            self.started.append(n)
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            time.sleep(0.02 if n % 2 else 0.005)  # answers come back out of order
            if n == self.fail:
                raise ValueError(f"read {n} failed")
            return n * n
        finally:
            with self.lock:
                self.running -= 1


def test_the_answers_come_in_the_order_asked_with_a_few_at_a_time() -> None:
    reads = Reads()
    assert list(side_by_side(reads, list(range(12)), 4)) == [n * n for n in range(12)]
    assert 2 <= reads.peak <= 4


def test_an_error_is_raised_in_order_and_nothing_starts_after_it() -> None:
    reads = Reads(fail=3)
    got: list[int] = []
    with pytest.raises(ValueError, match="read 3 failed"):
        for answer in side_by_side(reads, list(range(20)), 4):
            got.append(answer)
    assert got == [0, 1, 4]  # every answer before the failed one, none after
    assert max(reads.started) <= 3 + 4  # at most `at_once` ahead of the reader


def test_nothing_to_read_reads_nothing() -> None:
    assert list(side_by_side(Reads(), [], 4)) == []
