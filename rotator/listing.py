"""Listing a big bucket in parallel name ranges (objects.list's startOffset/endOffset).

One page is listed first. If the bucket has more, the rest is split into name ranges
from that first sample of names: its alphabet and its span give the width of about one
page, and the open end is cut into ranges of growing width (1, 2, 4... pages) so that
any bucket, however big, is covered after one round. A range that turns out to hold
more than a page splits again while listers are idle, evenly between its last name and
its end. Objects come out in name order, as one listing would give them, and only
LOOKAHEAD_PAGES pages are held at a time whatever the bucket's size (memory stays
flat); the range being read always proceeds.
"""

from __future__ import annotations

import bisect
import heapq
import os
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from rotator.model import ObjectInfo

LISTERS = 16  # list requests in flight per bucket
LOOKAHEAD_PAGES = 2 * LISTERS  # pages listed ahead of the reader, at most
MAX_DIGITS = 12  # name positions a split point is computed over


@dataclass(eq=False)
class _Range:
    """Names in [lo, hi) (hi None: to the end), less `skip`: generations of `lo` an
    earlier page already gave."""

    lo: str
    hi: str | None
    skip: frozenset[tuple[str, int]] = frozenset()
    pages: deque[list[ObjectInfo]] = field(default_factory=deque)
    children: list[_Range] = field(default_factory=list)
    done: bool = False
    error: BaseException | None = None

    def __lt__(self, other: _Range) -> bool:  # pending ranges are taken in name order
        return self.lo < other.lo


def iter_objects_parallel(
    storage: Any,
    bucket: str,
    *,
    versions: bool = False,
    soft_deleted: bool = False,
    page_size: int = 1000,
    listers: int = LISTERS,
) -> Iterator[ObjectInfo]:
    """Every object of a bucket in name order, listed by up to `listers` requests at a
    time. A bucket of one page costs one request, as a plain listing does."""
    first = storage.list_objects(bucket, versions=versions, soft_deleted=soft_deleted, page_size=page_size)
    yield from first.items
    if not first.next_page_token:
        return
    if listers <= 1 or not first.items:
        yield from _sequential(storage, bucket, first.next_page_token, versions, soft_deleted, page_size)
        return
    lister = _Lister(storage, bucket, versions, soft_deleted, page_size, listers)
    yield from lister.run(_rest(first.items, None, listers))


def _sequential(
    storage: Any, bucket: str, token: str, versions: bool, soft_deleted: bool, page_size: int
) -> Iterator[ObjectInfo]:
    while token:
        page = storage.list_objects(
            bucket, versions=versions, soft_deleted=soft_deleted, page_token=token, page_size=page_size
        )
        yield from page.items
        token = page.next_page_token


def _rest(items: list[ObjectInfo], hi: str | None, pieces: int) -> list[_Range]:
    """The names after a full page, up to `hi`, as up to `pieces` ranges."""
    last = items[-1].name
    skip = frozenset((o.name, o.generation) for o in items if o.name == last)
    names = [o.name for o in items]
    points = split_points(names, hi, pieces)
    bounds = [last, *points]
    return [
        _Range(lo, hi_, skip if lo == last else frozenset())
        for lo, hi_ in zip(bounds, [*points, hi], strict=True)
    ]


def split_points(sample: list[str], hi: str | None, pieces: int) -> list[str]:
    """Names strictly between the sample's last name and `hi` cutting what lies between
    into up to `pieces` ranges. Names are read as numbers over the sample's alphabet
    (from where the sample's names differ, carried into the positions before it that
    use the same alphabet). Toward a known end the cuts are even; toward the open end
    range i is 2**i times the sample's own span wide."""
    last = sample[-1]
    if pieces < 2:
        return []
    q = _common(sample[0], last)
    if hi is not None:
        q = min(q, _common(last, hi))
    alphabet = sorted({c for name in sample for c in name[q:]} | set((hi or "")[q:]))
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
    if hi is not None:
        high = value(hi) if hi[:start] == prefix else top
        cuts = [low + (high - low) * i // pieces for i in range(1, pieces)]
    else:
        width = max(1, value(last) - value(sample[0]))
        cuts = [low + width * (2**i - 1) for i in range(1, pieces)]
    points: list[str] = []
    for v in cuts:
        if v >= top:
            break
        name = name_of(v)
        if name > (points[-1] if points else last) and (hi is None or name < hi):
            points.append(name)
    return points


def _common(a: str, b: str) -> int:
    return len(os.path.commonprefix([a, b]))


class _Lister:
    def __init__(
        self, storage: Any, bucket: str, versions: bool, soft_deleted: bool, page_size: int, listers: int
    ):
        self.storage, self.bucket, self.page_size, self.listers = storage, bucket, page_size, listers
        self.versions, self.soft_deleted = versions, soft_deleted
        self.cond = threading.Condition()
        self.pending: list[_Range] = []
        self.busy = 0
        self.idle = 0
        self.held = 0  # pages listed and not read yet
        self.head: _Range | None = None  # the range being read
        self.closed = False

    def run(self, ranges: list[_Range]) -> Iterator[ObjectInfo]:
        for r in ranges:
            heapq.heappush(self.pending, r)
        threads = [
            threading.Thread(target=self._work, name=f"list-{self.bucket}", daemon=True)
            for _ in range(self.listers)
        ]
        for t in threads:
            t.start()
        try:
            stack = list(reversed(ranges))
            while stack:
                r = stack.pop()
                with self.cond:
                    self.head = r
                    self.cond.notify_all()
                while True:
                    with self.cond:
                        while not r.pages and not r.done:
                            self.cond.wait()
                        if not r.pages:
                            break
                        page = r.pages.popleft()
                        self.held -= 1
                        self.cond.notify_all()
                    yield from page
                if r.error is not None:
                    raise r.error
                stack.extend(reversed(r.children))
        finally:
            with self.cond:
                self.closed = True
                self.cond.notify_all()

    def _take(self) -> _Range | None:
        with self.cond:
            self.idle += 1
            while not self.pending and not self.closed and self.busy:
                self.cond.wait()
            self.idle -= 1
            if self.closed or not self.pending:
                self.cond.notify_all()
                return None
            self.busy += 1
            return heapq.heappop(self.pending)

    def _work(self) -> None:
        while (r := self._take()) is not None:
            self._run(r)

    def _run(self, r: _Range) -> None:
        try:
            self._list(r)
        except BaseException as e:  # handed to the reader, which raises it in order
            r.error = e
        with self.cond:
            r.done = True
            self.busy -= 1
            self.cond.notify_all()

    def _list(self, r: _Range) -> None:
        token: str | None = None
        while True:
            # Wait while enough is listed ahead, unless the reader waits for this range.
            # If it waits for a range nobody has taken, list that one first.
            with self.cond:
                head: _Range | None = None
                while not self.closed:
                    if self.held < LOOKAHEAD_PAGES or (r is self.head and not r.pages):
                        break
                    if self.head is not None and self.head in self.pending:
                        head = self.head
                        self.pending.remove(head)
                        heapq.heapify(self.pending)
                        self.busy += 1
                        break
                    self.cond.wait()
                if self.closed:
                    return
            if head is not None:
                self._run(head)
                continue
            page = self.storage.list_objects(
                self.bucket,
                versions=self.versions,
                soft_deleted=self.soft_deleted,
                page_token=token,
                page_size=self.page_size,
                start_offset=r.lo or None,
                end_offset=r.hi,
            )
            items = [o for o in page.items if (o.name, o.generation) not in r.skip] if r.skip else page.items
            token = page.next_page_token
            with self.cond:
                r.pages.append(items)
                self.held += 1
                self.cond.notify_all()
                if not token:
                    return
                if self.idle and not self.pending and page.items:
                    children = _rest(page.items, r.hi, self.idle + 1)
                    if len(children) > 1:
                        r.children = children
                        for c in children:
                            heapq.heappush(self.pending, c)
                        return
