"""Progress of long work on stderr: a bar per bucket on a terminal (tqdm), a line every
few seconds otherwise (logs, CI), nothing with -q or --output json."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Protocol, TextIO

from rotator.units import human_bytes


class Progress(Protocol):
    def update(self, objects: int, nbytes: int) -> None: ...

    def close(self) -> None: ...


ProgressFactory = Callable[[str, int, int], Progress]


class NoProgress:
    def update(self, objects: int, nbytes: int) -> None:
        pass

    def close(self) -> None:
        pass


class ProgressLines:
    """For a log: one line every `interval` seconds, and one at the end."""

    def __init__(
        self,
        label: str,
        total: int,
        total_bytes: int,
        *,
        stream: TextIO,
        interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        unit: str = "objects",
    ):
        self.label, self.total, self.total_bytes, self.unit = label, total, total_bytes, unit
        self.stream, self.interval, self.clock = stream, interval, clock
        self.done = self.nbytes = 0
        self.start = self.last = clock()

    def update(self, objects: int, nbytes: int) -> None:
        self.done += objects
        self.nbytes += nbytes
        if self.clock() - self.last >= self.interval:
            self._line()

    def close(self) -> None:
        self._line()

    def _line(self) -> None:
        now = self.clock()
        self.last = now
        rate = self.done / max(now - self.start, 1e-9)
        left = max(self.total - self.done, 0)
        eta = f", ETA {left / rate:.0f}s" if rate > 0 and left else ""
        pct = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        print(
            f"{self.label}: {self.done:,}/{self.total:,} {self.unit}{pct}, {human_bytes(self.nbytes)}, "
            f"{rate:.0f}/s{eta}",
            file=self.stream,
            flush=True,
        )


class ProgressBar:
    """For a terminal: a tqdm bar with objects, bytes, rate and ETA."""

    def __init__(self, label: str, total: int, total_bytes: int, *, stream: TextIO, unit: str = "obj"):
        from tqdm import tqdm

        self.bar = tqdm(
            total=total, desc=label, unit=unit, unit_scale=True, file=stream, dynamic_ncols=True, leave=True
        )
        self.nbytes = 0

    def update(self, objects: int, nbytes: int) -> None:
        self.nbytes += nbytes
        self.bar.set_postfix_str(human_bytes(self.nbytes), refresh=False)
        self.bar.update(objects)

    def close(self) -> None:
        self.bar.close()


def factory_for(
    *, quiet: bool, json_output: bool, stream: TextIO | None = None, unit: str = "objects"
) -> ProgressFactory:
    out = stream or sys.stderr
    if quiet or json_output:
        return lambda _label, _total, _bytes: NoProgress()
    if out.isatty():
        short = "obj" if unit == "objects" else unit
        return lambda label, total, nbytes: ProgressBar(label, total, nbytes, stream=out, unit=short)
    return lambda label, total, nbytes: ProgressLines(label, total, nbytes, stream=out, unit=unit)
