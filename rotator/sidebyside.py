"""Independent reads side by side: each on a thread of its own, a bounded number at a
time, their answers in the order of what was asked (so whatever is built from them is
built as one read after another would have built it)."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from itertools import islice
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def side_by_side(read: Callable[[T], R], items: list[T], at_once: int) -> Iterator[R]:
    """`read(item)` of every item, in their order, each on a thread of its own, up to
    `at_once` ahead of the caller. The threads are daemons: on an error (raised in
    order) the caller is not kept waiting for the ones still running, and none starts
    after it."""
    started: deque[Future[R]] = deque()
    rest = iter(items)

    def start(item: T) -> None:
        future: Future[R] = Future()

        def work() -> None:
            try:
                future.set_result(read(item))
            except BaseException as e:  # raised in order, in the caller's thread
                future.set_exception(e)

        threading.Thread(target=work, name="side-by-side", daemon=True).start()
        started.append(future)

    for item in islice(rest, at_once):
        start(item)
    while started:
        result = started.popleft().result()
        for item in islice(rest, 1):
            start(item)
        yield result
