"""Parallel listing by name ranges (rotator.listing): the same objects as one listing,
each exactly once (in no set order), whatever the names look like, with bounded
look-ahead and requests side by side to the end.

Backends: none (parallel listing over pages the test serves)."""

from __future__ import annotations

import bisect
import random
import string
import threading
import time
from typing import Any

import pytest

from rotator import listing
from rotator.listing import iter_objects_parallel, split_points
from rotator.model import ObjectInfo, ObjectPage


class ListedStorage:
    """objects.list over sorted (name, generation) pairs, with startOffset/endOffset,
    counting requests and what it answered. `delay` stands for the network."""

    def __init__(self, names: list[tuple[str, int]], delay: float = 0.0):
        self.rows = sorted(names)
        self.delay = delay
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.in_flight = self.peak = 0
        self.answered: set[tuple[str, int]] = set()  # objects handed out in any page

    def list_objects(
        self,
        bucket: str,
        *,
        versions: bool = False,
        soft_deleted: bool = False,
        page_token: str | None = None,
        page_size: int = 1000,
        start_offset: str | None = None,
        end_offset: str | None = None,
    ) -> ObjectPage:
        with self.lock:
            self.requests.append({"start": start_offset, "end": end_offset, "token": page_token})
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        try:
            if self.delay:
                time.sleep(self.delay)
            if page_token:
                name, gen = page_token.rsplit("#", 1)
                i = bisect.bisect_right(self.rows, (name, int(gen)))
            else:
                i = bisect.bisect_left(self.rows, (start_offset or "", -1))
            out = []
            while i < len(self.rows) and len(out) <= page_size:
                if end_offset is not None and self.rows[i][0] >= end_offset:
                    break
                out.append(self.rows[i])
                i += 1
            token = None
            if len(out) > page_size:
                out = out[:page_size]
                token = f"{out[-1][0]}#{out[-1][1]}"
            with self.lock:
                self.answered.update(out)
            return ObjectPage([_obj(bucket, n, g) for n, g in out], token)
        finally:
            with self.lock:
                self.in_flight -= 1


def _obj(bucket: str, name: str, generation: int) -> ObjectInfo:
    from datetime import datetime, timezone

    return ObjectInfo(
        bucket=bucket,
        name=name,
        generation=generation,
        kms_key_version=None,
        size=1,
        created=datetime(2026, 1, 1, tzinfo=timezone.utc),
    )


def _shapes() -> dict[str, list[tuple[str, int]]]:
    dice = random.Random(14)
    hexes = {"".join(dice.choices("0123456789abcdef", k=16)) for _ in range(3000)}
    words = {
        "".join(dice.choices(string.ascii_letters + string.digits + "/._-", k=dice.randint(1, 30)))
        for _ in range(3000)
    }
    return {
        "zero-padded": [(f"old/{i:07d}", 1) for i in range(5000)],
        "two prefixes": [(f"a/{i:05d}", 1) for i in range(2500)] + [(f"current/{i}", 1) for i in range(2500)],
        "hex": [(h, 1) for h in hexes],
        "anything": [(w, 1) for w in words] + [("é/ü", 1), ("日本/語", 1), ("~", 1)],
        "generations of one name across pages": [("same", g) for g in range(1, 120)]
        + [(f"x{i}", 1) for i in range(300)],
        # Every name's generations span pages: a range split or handed back after a page
        # must skip all of the generations of its first name listed before, not just
        # those of the last page.
        "many generations of every name": [
            (f"k{i:03d}", g) for i in range(80) for g in range(1, 1 + 37 + i % 50)
        ],
    }


@pytest.mark.parametrize("shape", list(_shapes()))
def test_parallel_listing_gives_every_object_exactly_once(shape: str) -> None:
    rows = _shapes()[shape]
    storage = ListedStorage(rows, delay=0.001)
    got = [(o.name, o.generation) for o in iter_objects_parallel(storage, "b", page_size=50, listers=8)]
    assert sorted(got) == sorted(rows)  # none missing, none twice
    # Ranges were listed side by side (not one page after another)...
    assert storage.peak > 1
    assert any(r["start"] for r in storage.requests)
    # ...without wasting many requests on empty ranges.
    pages = -(-len(rows) // 50)
    assert len(storage.requests) <= 3 * pages + 2 * 8, (len(storage.requests), pages)


def test_one_page_costs_one_request() -> None:
    storage = ListedStorage([(f"o{i}", 1) for i in range(40)])
    assert len(list(iter_objects_parallel(storage, "b", page_size=50))) == 40
    assert len(storage.requests) == 1


def test_the_lister_holds_a_bounded_number_of_pages_whatever_the_bucket_size(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Memory stays flat: a slow reader never lets the listers run further ahead than
    LOOKAHEAD_PAGES pages, plus one page per lister in flight."""
    monkeypatch.setattr(listing, "LOOKAHEAD_PAGES", 6)
    storage = ListedStorage([(f"old/{i:06d}", 1) for i in range(20000)])
    most = 0
    for n, _ in enumerate(iter_objects_parallel(storage, "b", page_size=20, listers=4), 1):
        if n % 20 == 0:
            time.sleep(0.0005)  # a slow reader
            with storage.lock:
                most = max(most, len(storage.answered) - n)  # listed and not read yet
    assert n == 20000
    assert most <= (6 + 4 + 1) * 20, most
    assert most > 20  # it did list ahead


def test_an_error_in_a_range_is_raised_and_the_listers_stop() -> None:
    class Failing(ListedStorage):
        def list_objects(self, bucket: str, **kw: Any) -> ObjectPage:
            if kw.get("start_offset") and kw["start_offset"] >= "old/003000":
                raise RuntimeError("boom")
            return super().list_objects(bucket, **kw)

    storage = Failing([(f"old/{i:06d}", 1) for i in range(5000)], delay=0.002)
    seen: list[str] = []
    with pytest.raises(RuntimeError, match="boom"):
        for o in iter_objects_parallel(storage, "b", page_size=100, listers=4):
            seen.append(o.name)
    assert len(seen) < 5000 and len(set(seen)) == len(seen)
    time.sleep(0.05)  # requests in flight when it was raised end
    asked = len(storage.requests)
    time.sleep(0.1)
    assert len(storage.requests) == asked  # no lister asks for more


def test_split_points_fall_strictly_between_and_in_order() -> None:
    sample = [f"old/{i:07d}" for i in range(1000)]
    open_end = split_points(sample, None, 8)
    assert open_end == sorted(open_end) and open_end[0] > sample[-1]
    assert open_end[:3] == ["old/0001998", "old/0003996", "old/0007992"]  # 1, 2, 4 pages wide
    bounded = split_points(sample, "old/0100000", 4)
    assert len(bounded) == 3 and sample[-1] < bounded[0] < bounded[1] < bounded[2] < "old/0100000"
    assert split_points(["same", "same"], None, 8) == []  # nothing to split on


def test_listers_stay_side_by_side_to_the_end_of_a_big_bucket() -> None:
    """The look-ahead goes to the ranges nearest the reader, and the range being read is
    split among the listers in page-wide pieces: with a reader that has work to do,
    most requests go out beside several others, to the end of a big bucket (before,
    ranges further on filled the look-ahead and the widest ones, at the end, were
    listed one page after another: 2.4 in flight on average here)."""

    class Watched(ListedStorage):
        def __init__(self, names: list[tuple[str, int]]):
            super().__init__(names, delay=0.005)
            self.beside: list[int] = []  # requests in flight as each one starts, itself included

        def list_objects(self, bucket: str, **kw: Any) -> ObjectPage:
            with self.lock:
                self.beside.append(self.in_flight + 1)
            return super().list_objects(bucket, **kw)

    rows = [(f"old/{i:06d}", 1) for i in range(20000)]
    storage = Watched(rows)
    got = []
    for o in iter_objects_parallel(storage, "b", page_size=20):
        got.append(o.name)
        if len(got) % 20 == 0:
            time.sleep(0.0001)  # a reader with work to do
    assert sorted(got) == [n for n, _ in rows]
    assert sum(storage.beside) / len(storage.beside) >= 5, sum(storage.beside) / len(storage.beside)
    # Before the reader stopped waiting for the range nearest it, a look-ahead full of
    # pages further on left that range listed one page after another: a request alone.
    alone = storage.beside[1:].count(1) / len(storage.beside)
    assert alone <= 0.02, alone
    pages = len(rows) // 20
    assert len(storage.requests) <= 1.15 * pages, (len(storage.requests), pages)  # before: 1.28


def test_the_rest_of_a_range_skips_every_generation_of_its_first_name_listed_before() -> None:
    """A range handed back or split after a page starts at the page's last name: the
    generations of that name already listed, on this page or the ones before, are
    skipped (a name's generations can span pages)."""
    job = listing._Job(listing._Range("a", "z", frozenset({("a", 1)})), token="t")
    job.after([_obj("b", "a", 2), _obj("b", "k", 1), _obj("b", "k", 2)], "t2")
    job.after([_obj("b", "k", 3), _obj("b", "k", 4)], "t3")
    (rest,) = listing._pieces(job, ["k"], 2)  # one name: no split point, the rest whole
    assert (rest.lo, rest.hi) == ("k", "z")
    assert rest.skip == {("k", 1), ("k", 2), ("k", 3), ("k", 4)}
    job.after([_obj("b", "m", 1)], "t4")
    assert listing._pieces(job, ["m"], 2)[0].skip == {("m", 1)}


def test_a_lister_that_fails_outside_its_request_is_raised_not_waited_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Whatever ends a lister thread (not only a failed request) reaches the reader: it
    would otherwise wait for that lister's range forever."""
    calls = [0]
    cut = listing._pieces

    def failing(*args: Any) -> Any:
        calls[0] += 1
        if calls[0] > 1:  # the first split (of the first page) works; a lister's fails
            raise MemoryError("out of memory while splitting")
        return cut(*args)

    monkeypatch.setattr(listing, "_pieces", failing)
    storage = ListedStorage([(f"old/{i:06d}", 1) for i in range(20000)], delay=0.002)
    done = threading.Event()
    raised: list[BaseException] = []

    def read() -> None:
        try:
            for _ in iter_objects_parallel(storage, "b", page_size=20, listers=4):
                pass
        except BaseException as e:
            raised.append(e)
        done.set()

    threading.Thread(target=read, daemon=True).start()
    assert done.wait(30), "the reader waited for a lister that was gone"
    assert calls[0] > 1 and len(raised) == 1 and isinstance(raised[0], MemoryError)


def test_a_first_page_that_spans_two_prefixes_splits_the_rest_at_once() -> None:
    """200 names under "current/" then "old/...": the first page ends in the old/ names,
    and the rest is split by their span (a page wide first), not by the page's whole
    span from "c" to "o" (so wide that nothing was split before the bucket's end, and
    the next page was listed alone before the rest could be split)."""
    sample = [f"current/{i:04d}" for i in range(200)] + [f"old/{i:04d}" for i in range(800)]
    assert split_points(sample, None, 8) == ["old/1798", "old/3796", "old/7792"]
    rows = [(n, 1) for n in sample] + [(f"old/{i:04d}", 1) for i in range(800, 2000)]
    storage = ListedStorage(rows, delay=0.01)
    got = [(o.name, o.generation) for o in iter_objects_parallel(storage, "b", page_size=1000)]
    assert sorted(got) == sorted(rows)
    first, *rest = storage.requests
    assert first["start"] is None and rest
    # The rest in one round: every range asked for from the first page's split, none
    # page after page.
    assert sorted(r["start"] for r in rest) == ["old/0799", "old/1798", "old/3796", "old/7792"], rest
    assert all(r["token"] is None for r in rest)
