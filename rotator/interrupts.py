"""SIGINT and SIGTERM during an apply: the first one asks the apply to stop starting new
work; calls in flight end (a bounded number: the rewrite window), are journaled, and
the apply exits 130 or 143 with a resume hint. A second signal stops at once (still
safe: every change is re-checked on resume, as after a kill)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from rotator.errors import Interrupted, RotatorError

HANDLED = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Set by a signal handler, read by the engine and the steps' loops."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signal_number: int | None = None
        self.abort_error: RotatorError | None = None

    def abort(self, error: RotatorError) -> None:
        """Stop for a reason other than a signal (the gs:// lock was lost): no new work
        starts, and where the apply stops it raises `error` instead of Interrupted."""
        if self.abort_error is None:
            self.abort_error = error
        self._event.set()

    def request(self, signal_number: int) -> None:
        self.signal_number = signal_number
        self._event.set()

    @property
    def stopping(self) -> bool:
        return self._event.is_set()

    def sleep(self, seconds: float) -> None:
        """A sleep a signal cuts short (waits poll with it)."""
        self._event.wait(seconds)

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signal_number).name if self.signal_number else "signal"

    def error(self, where: str, plan_path: str) -> RotatorError:
        if self.abort_error is not None:
            return self.abort_error
        return Interrupted(
            f"interrupted by {self.signal_name} {where}; calls in flight ended and were journaled; "
            f"run the same apply to resume: rotator apply {plan_path}",
            signal_number=self.signal_number or signal.SIGINT,
            resource=plan_path,
        )


@contextmanager
def stop_on_signals(stop: StopRequest) -> Iterator[StopRequest]:
    """Install the handlers for the duration (only the main thread can)."""
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        if stop.stopping:  # a second signal: stop now
            raise KeyboardInterrupt
        stop.request(signum)

    previous = {s: signal.getsignal(s) for s in HANDLED}
    for s in HANDLED:
        signal.signal(s, handler)
    try:
        yield stop
    finally:
        for s, old in previous.items():
            signal.signal(s, old)
