"""Listing a big bucket in parallel name ranges (objects.list's startOffset/endOffset).

One page is listed first. If the bucket has more, the rest is split into name ranges
from that first sample of names: its alphabet and its span give the width of about one
page, and the open end is cut into ranges of growing width (1, 2, 4... pages) so that
any bucket, however big, is covered after one round. A lister whose range turns out to
hold more than a page, while other listers have nothing to list, cuts the rest at its
next page into page-wide pieces (by that page's span) and the rest after them.

Every object comes out exactly once, in no set order: pages are handed to the reader
as they arrive. A bounded number of pages is held or asked for at a time whatever the
bucket's size (memory stays flat). What reads them and needs an order (the examples a
plan names) keeps the smallest names itself (rotator.services.storage.uses).

Before (issue 14): pages came out in name order. The reader waited for the range
nearest it, and when the pages held for ranges further on filled the look-ahead, that
range was listed one page after another: 1,000,000 objects at 50 ms a request spent
11 of their 28 s with one request in flight.
"""

from __future__ import annotations

import bisect
import heapq
import os
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from rotator.model import ObjectInfo

LISTERS = 16  # list requests in flight per bucket, at most
LOOKAHEAD_PAGES = 2 * LISTERS  # pages listed ahead of the reader or being listed, at most
MAX_DIGITS = 12  # name positions a split point is computed over


@dataclass(eq=False)
class _Range:
    """Names in [lo, hi) (hi None: to the end), less `skip`: generations of `lo` an
    earlier page already gave."""

    lo: str
    hi: str | None
    skip: frozenset[tuple[str, int]] = frozenset()

    def __lt__(self, other: _Range) -> bool:  # the nearest range is taken first
        return self.lo < other.lo


@dataclass(eq=False)
class _Job:
    """A lister's place in its range: the page token to go on with, and the last name
    listed so far with the generations of it listed so far (where the rest starts)."""

    range: _Range
    token: str | None = None
    last: str | None = None
    tail: frozenset[tuple[str, int]] = frozenset()

    def after(self, items: list[ObjectInfo], token: str | None) -> None:
        self.token = token
        if not items:
            return
        last = items[-1].name
        gens = frozenset((o.name, o.generation) for o in items if o.name == last)
        # One name's generations can span pages: remember them all, or a range that
        # starts at that name would give the earlier ones again.
        self.tail = gens | self.tail if last == self.last else gens
        self.last = last


def iter_objects_parallel(
    storage: Any,
    bucket: str,
    *,
    versions: bool = False,
    soft_deleted: bool = False,
    page_size: int = 1000,
    listers: int = LISTERS,
) -> Iterator[ObjectInfo]:
    """Every object of a bucket exactly once, in no set order, listed by up to `listers`
    requests at a time. A bucket of one page costs one request, as a plain listing does.
    An error in any range is raised as soon as it happens (pages listed and not read yet
    are dropped): a caller that needs every object stops there."""
    first = storage.list_objects(bucket, versions=versions, soft_deleted=soft_deleted, page_size=page_size)
    yield from first.items
    if not first.next_page_token:
        return
    if listers <= 1 or not first.items:
        yield from _sequential(storage, bucket, first.next_page_token, versions, soft_deleted, page_size)
        return
    job = _Job(_Range("", None), "")
    job.after(first.items, first.next_page_token)
    lister = _Listers(storage, bucket, versions, soft_deleted, page_size, listers)
    yield from lister.run(_pieces(job, [o.name for o in first.items], listers))


def _sequential(
    storage: Any, bucket: str, token: str, versions: bool, soft_deleted: bool, page_size: int
) -> Iterator[ObjectInfo]:
    while token:
        page = storage.list_objects(
            bucket, versions=versions, soft_deleted=soft_deleted, page_token=token, page_size=page_size
        )
        yield from page.items
        token = page.next_page_token


def _pieces(job: _Job, sample: list[str], pieces: int) -> list[_Range]:
    """What `job` has not listed, as up to `pieces` ranges cut at split points computed
    from `sample` (the names of its last page)."""
    assert job.last is not None
    hi = job.range.hi
    points = split_points(sample, hi, pieces)
    bounds = [job.last, *points]
    return [
        _Range(lo, hi_, job.tail if lo == job.last else frozenset())
        for lo, hi_ in zip(bounds, [*points, hi], strict=True)
    ]


def split_points(sample: list[str], hi: str | None, pieces: int) -> list[str]:
    """Names strictly between the sample's last name and `hi` cutting what lies between
    into up to `pieces` ranges. Names are read as numbers over the sample's alphabet
    (from where the sample's names differ, carried into the positions before it that
    use the same alphabet). The sample's own span is about a page wide: toward a known
    end each range but the last is that wide (the listers take the next pages in name
    order, the rest waits its turn); toward the open end range i is 2**i times that
    wide."""
    last = sample[-1]
    if pieces < 2:
        return []
    # The sample's last run of names that share one more character with its last name
    # says best what follows: a page that spans prefixes ("current/..." then "old/...")
    # would otherwise be read as one page-wide stretch from "c" to "o", so wide that no
    # split fell before the bucket's end, and the rest was listed one page at a time
    # before it could be split (two rounds of requests more in a 2,200-object bucket).
    run = _last_run(sample)
    q = _common(run[0], last)
    if hi is not None:
        q = min(q, _common(last, hi))
    alphabet = sorted({c for name in run for c in name[q:]} | set((hi or "")[q:]))
    if len(alphabet) < 2:
        return []
    start = q
    while start > 0 and last[start - 1] in alphabet and q - start < MAX_DIGITS // 2:
        start -= 1
    digits = min(MAX_DIGITS, max(len(last), len(hi or "")) - start)
    if digits <= 0:
        return []
    prefix, base = last[:start], len(alphabet)

    def value(name: str) -> int:
        v = 0
        for c in name[start : start + digits].ljust(digits, alphabet[0]):
            v = v * base + min(bisect.bisect_left(alphabet, c), base - 1)
        return v

    def name_of(v: int) -> str:
        out = []
        for _ in range(digits):
            v, d = divmod(v, base)
            out.append(alphabet[d])
        return prefix + "".join(reversed(out))

    low, top = value(last), base**digits
    # About a page wide: the run's span, scaled to the sample's length.
    width = max(1, (low - value(run[0])) * (len(sample) - 1) // max(1, len(run) - 1))
    if hi is not None:  # a page's width each, the rest in the last one
        cuts = [low + width * i for i in range(1, pieces)]
    else:
        cuts = [low + width * (2**i - 1) for i in range(1, pieces)]
    points: list[str] = []
    for v in cuts:
        if v >= top:
            break
        name = name_of(v)
        if name > (points[-1] if points else last) and (hi is None or name < hi):
            points.append(name)
    return points


def _last_run(sample: list[str]) -> list[str]:
    """The names at the end of the (sorted) sample that share with its last name one
    character more than the whole sample does, where they are at least half of it (a
    page that ends in another prefix); otherwise the sample itself (a short run is too
    few names to read the alphabet or the span from)."""
    last = sample[-1]
    q = _common(sample[0], last)
    if q >= len(last):
        return sample
    i = len(sample) - 1
    while i > 0 and sample[i - 1][: q + 1] == last[: q + 1]:
        i -= 1
    return sample[i:] if 2 * (len(sample) - i) >= len(sample) and sample[i] != last else sample


def _common(a: str, b: str) -> int:
    return len(os.path.commonprefix([a, b]))


class _Listers:
    """Listers (threads) and the reader (the caller's thread) around one lock. A lister
    takes a range nobody lists (the nearest first), asks for its pages one after another
    while fewer than LOOKAHEAD_PAGES pages plus one per lister are held or asked for,
    and cuts the rest of its range into pieces when listers wait with nothing to list."""

    def __init__(
        self, storage: Any, bucket: str, versions: bool, soft_deleted: bool, page_size: int, listers: int
    ):
        self.storage, self.bucket, self.page_size, self.listers = storage, bucket, page_size, listers
        self.versions, self.soft_deleted = versions, soft_deleted
        self.cond = threading.Condition()
        self.pending: list[_Range] = []  # a heap of ranges no lister has
        self.pages: deque[list[ObjectInfo]] = deque()  # listed, not read yet
        self.asked = 0  # list requests in flight
        self.busy = 0  # listers with a range
        self.idle = 0  # listers waiting for a range
        self.error: BaseException | None = None
        self.closed = False

    def run(self, ranges: list[_Range]) -> Iterator[ObjectInfo]:
        for r in ranges:
            heapq.heappush(self.pending, r)
        for _ in range(self.listers):
            threading.Thread(target=self._work, name=f"list-{self.bucket}", daemon=True).start()
        try:
            while True:
                with self.cond:
                    while not self.pages and self.error is None and not self._finished():
                        self.cond.wait()
                    if self.error is not None:
                        raise self.error
                    if not self.pages:
                        return
                    page = self.pages.popleft()
                    self.cond.notify_all()
                yield from page
        finally:
            with self.cond:
                self.closed = True
                self.cond.notify_all()

    def _finished(self) -> bool:
        return not self.pending and not self.busy

    def _room(self) -> bool:
        """Memory: pages held and asked for stay under a bound whatever the bucket's size."""
        return len(self.pages) + self.asked < LOOKAHEAD_PAGES + self.listers

    def _turn(self, job: _Job | None) -> _Job | None:
        """Wait (under the lock) until this lister may ask for a page: of its job's range,
        or of a range it takes. None: nothing is left to list, or the reader stopped."""
        while not self.closed and self.error is None:
            if job is not None or self.pending:
                if self._room():
                    if job is None:
                        self.busy += 1
                        job = _Job(heapq.heappop(self.pending))
                    return job
                self.cond.wait()
            elif self.busy:  # another lister may cut its range for this one
                self.idle += 1
                self.cond.wait()
                self.idle -= 1
            else:
                break
        self.cond.notify_all()
        return None

    def _work(self) -> None:
        job: _Job | None = None
        try:
            while True:
                with self.cond:
                    job = self._turn(job)
                    if job is None:
                        return
                    self.asked += 1
                job = self._ask(job)
        except BaseException as e:  # a failed request, or anything else: the reader raises it
            with self.cond:
                if self.error is None:
                    self.error = e
                self.cond.notify_all()  # the reader and the other listers stop

    def _ask(self, job: _Job) -> _Job | None:
        """One page of the job's range; the job to go on with (None: the range is done)."""
        r = job.range
        page = self.storage.list_objects(
            self.bucket,
            versions=self.versions,
            soft_deleted=self.soft_deleted,
            page_token=job.token,
            page_size=self.page_size,
            start_offset=r.lo or None,
            end_offset=r.hi,
        )
        items = [o for o in page.items if (o.name, o.generation) not in r.skip] if r.skip else page.items
        with self.cond:
            self.asked -= 1
            if items:
                self.pages.append(items)
            self.cond.notify_all()
            job.after(page.items, page.next_page_token)
            if page.next_page_token:
                # Listers with nothing to list get a piece each (the rest waits its turn).
                wanting = self.idle - len(self.pending)
                if wanting <= 0 or not page.items:
                    return job
                pieces = _pieces(job, [o.name for o in page.items], wanting + 1)
                if len(pieces) < 2:
                    return job
                for piece in pieces:
                    heapq.heappush(self.pending, piece)
            self.busy -= 1
            return None
