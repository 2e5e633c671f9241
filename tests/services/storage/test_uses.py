"""Cloud Storage's scanner (rotator/services/storage/uses.py): a bucket's soft-deleted
generations are listed beside its live and noncurrent ones, not after them, and a few
buckets beside each other, with the same findings, in the same order, as one listing
after another.

Backends: fake (in memory, its storage wrapped to watch the listings)."""

from __future__ import annotations

import random
import threading
import time
from datetime import datetime, timezone
from typing import Any

import pytest
import worlds
from worlds import APP_KEY, fleet_on_shared_buckets, make_world, obj, v

from rotator import apierrors as api
from rotator.backends.fake import FakeBackend
from rotator.inventory import scan_key
from rotator.model import LIVE, ObjectPage
from rotator.pins import EXAMPLES
from rotator.services.storage import uses
from rotator.services.storage.spec import LIVE_OBJECT, NONCURRENT_GENERATION, SOFT_DELETED_GENERATION
from rotator.services.storage.uses import bucket_uses

NOW = datetime(2026, 11, 1, tzinfo=timezone.utc)


class Watched:
    """The fake's storage; the live listing's first page waits (up to `wait` seconds)
    until the soft-deleted listing has asked for its own."""

    def __init__(self, inner: Any, wait: float = 5.0, fail_soft: bool = False):
        self.inner, self.wait, self.fail_soft = inner, wait, fail_soft
        self.soft_asked = threading.Event()
        self.overlapped = False

    def list_objects(self, bucket: str, **kw: Any) -> ObjectPage:
        if kw.get("soft_deleted"):
            self.soft_asked.set()
            if self.fail_soft:
                raise api.Unavailable("soft-deleted listing failed")
        elif not kw.get("page_token"):
            self.overlapped = self.soft_asked.wait(self.wait)
        return self.inner.list_objects(bucket, **kw)


def _sequential(storage: Any, bucket: Any) -> dict[Any, Any]:
    """The groups as one pass after the other gives them (the listing never waits)."""
    return bucket_uses(Watched(storage, wait=0), bucket, NOW, None, None)


def test_the_soft_deleted_listing_runs_beside_the_live_one_with_the_same_groups() -> None:
    backend = FakeBackend.from_dict(fleet_on_shared_buckets())
    kinds: set[str] = set()
    for bucket in backend.storage.list_buckets():
        watched = Watched(backend.storage)
        seen: list[tuple[str, int]] = []
        found = bucket_uses(watched, bucket, NOW, None, lambda b, n, seen=seen: seen.append((b, n)))
        assert watched.overlapped, "the live listing waited for the soft-deleted one to end"
        expected = _sequential(backend.storage, bucket)
        assert list(found) == list(expected)  # the same groups, in the same order
        assert [g.__dict__ for g in found.values()] == [g.__dict__ for g in expected.values()]
        listed = len(backend.storage.list_objects(bucket.name, versions=True).items)
        listed += len(backend.storage.list_objects(bucket.name, soft_deleted=True).items)
        assert seen == [(bucket.name, listed)]  # every generation of both listings counted
        kinds |= {kind for _, kind in found}
    # not vacuous: the fleet has live, noncurrent and soft-deleted generations under keys
    assert {LIVE_OBJECT, NONCURRENT_GENERATION, SOFT_DELETED_GENERATION} <= kinds


def test_groups_the_two_listings_share_count_both() -> None:
    """Not expected of Cloud Storage (a soft-deleted generation is a kind of its own),
    but were the two listings to give one version the same kind in one bucket, neither
    hides the other: both count, as in one pass after the other."""

    class SoftAsLive(Watched):
        def list_objects(self, bucket: str, **kw: Any) -> ObjectPage:
            page = super().list_objects(bucket, **kw)
            if kw.get("soft_deleted"):
                return ObjectPage([o._replace(state=LIVE) for o in page.items], page.next_page_token)
            return page

    version = v(APP_KEY, 1)
    deleted = [
        {"generation": 1, "kms_key_version": version, "size": 5, "hard_delete_time": "2026-11-29T00:00:00Z"}
    ]
    live = [obj("a", version, size=7, generation=2, soft_deleted=deleted), obj("b", version, size=9)]
    backend = FakeBackend.from_dict(make_world(storage=[worlds.bucket(objects=live)]))
    (target,) = backend.storage.list_buckets()
    found = bucket_uses(SoftAsLive(backend.storage, wait=0), target, NOW, None, None)
    assert (found[(version, LIVE_OBJECT)].count, found[(version, LIVE_OBJECT)].bytes) == (3, 21)


def test_an_error_in_the_soft_deleted_listing_is_raised() -> None:
    backend = FakeBackend.from_dict(fleet_on_shared_buckets())
    bucket = next(iter(backend.storage.list_buckets()))
    with pytest.raises(api.Unavailable, match="soft-deleted listing failed"):
        bucket_uses(Watched(backend.storage, fail_soft=True), bucket, NOW, None, None)


class Overlapping:
    """The fake's storage, each listing a little slow, counting the buckets being listed
    at once (and which were listed at all); `fail` names a bucket whose listing fails."""

    def __init__(self, inner: Any, fail: str = ""):
        self.inner, self.fail = inner, fail
        self.lock = threading.Lock()
        self.now: dict[str, int] = {}
        self.peak = 0
        self.listed: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def list_objects(self, bucket: str, **kw: Any) -> ObjectPage:
        with self.lock:
            self.now[bucket] = self.now.get(bucket, 0) + 1
            self.peak = max(self.peak, sum(1 for n in self.now.values() if n))
            self.listed.append(bucket)
        try:
            time.sleep(0.02)
            if bucket == self.fail:
                raise api.Unavailable(f"{bucket}: listing failed")
            return self.inner.list_objects(bucket, **kw)
        finally:
            with self.lock:
                self.now[bucket] -= 1


def _many_buckets() -> FakeBackend:
    buckets = [
        worlds.bucket(
            f"bucket-{i}",
            [obj(f"o/{j}", v(APP_KEY, 1 + (i + j) % 2), size=10 + j) for j in range(3)],
            default_kms_key=APP_KEY if i % 3 else None,
        )
        for i in range(10)
    ]
    return FakeBackend.from_dict(make_world(storage=buckets))


def _findings(backend: FakeBackend) -> Any:
    inv = scan_key(backend, APP_KEY, services=["storage"])
    groups = {
        n: [(g.kind, g.resource, g.count, g.bytes) for g in u.groups.values()]
        for n, u in inv.versions.items()
    }
    return groups, inv.default_for, [b.name for b in inv.buckets]


def test_buckets_are_listed_side_by_side_with_the_findings_of_one_after_another(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    backend = _many_buckets()
    watched = Overlapping(backend.storage)
    monkeypatch.setattr(backend, "storage", watched)
    together = _findings(backend)
    assert 2 <= watched.peak <= uses.BUCKETS_AT_ONCE, watched.peak
    monkeypatch.setattr(uses, "BUCKETS_AT_ONCE", 1)
    alone = Overlapping(backend.storage.inner)
    monkeypatch.setattr(backend, "storage", alone)
    assert _findings(backend) == together  # the same groups, in the same order
    assert alone.peak == 1
    groups, default_for, buckets = together
    assert buckets == [f"bucket-{i}" for i in range(10)]
    assert default_for == [f"bucket-{i}" for i in range(10) if i % 3]
    assert sum(count for g in groups.values() for kind, _, count, _ in g if kind == LIVE_OBJECT) == 30


def test_a_bucket_that_fails_is_raised_in_order_and_no_bucket_after_it_is_started(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    backend = _many_buckets()
    watched = Overlapping(backend.storage, fail="bucket-1")
    monkeypatch.setattr(backend, "storage", watched)
    with pytest.raises(api.Unavailable, match="bucket-1: listing failed"):
        scan_key(backend, APP_KEY, services=["storage"])
    # bucket-0 read, bucket-1 raised: only the buckets up to BUCKETS_AT_ONCE ahead were started.
    assert set(watched.listed) <= {f"bucket-{i}" for i in range(1 + uses.BUCKETS_AT_ONCE)}, watched.listed


def test_the_groups_are_the_same_whatever_order_the_listing_gives_objects_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The parallel listing hands pages over as they arrive: a group's examples, its
    detail and the order of the groups are still those of one listing in name order
    (the first EXAMPLES generations, the first detail, groups as first met)."""
    doc = fleet_on_shared_buckets()
    held = [
        obj(f"held/{i:02d}", v(APP_KEY, 1), temporary_hold=i % 3 == 0, event_based_hold=i % 3 != 0)
        for i in range(9)
    ]
    versioned = [
        obj(
            f"ver/{i:02d}",
            v(APP_KEY, 2),
            generation=5,
            noncurrent=[{"generation": g, "kms_key_version": v(APP_KEY, 1), "size": 3} for g in (1, 2, 3)],
        )
        for i in range(4)
    ]
    doc["storage"][0]["objects"] += held + versioned
    backend = FakeBackend.from_dict(doc)
    in_order = uses.iter_objects_parallel

    def shuffled(storage: Any, bucket: str, **kw: Any) -> Any:
        objects = list(in_order(storage, bucket, **kw))
        random.Random(len(objects)).shuffle(objects)
        return iter(objects)

    buckets = list(backend.storage.list_buckets())
    expected = [bucket_uses(backend.storage, b, NOW, None, None) for b in buckets]
    monkeypatch.setattr(uses, "iter_objects_parallel", shuffled)
    found = [bucket_uses(backend.storage, b, NOW, None, None) for b in buckets]
    for got, want in zip(found, expected, strict=True):
        assert list(got) == list(want)  # the same groups, in the same order
        assert [g.__dict__ for g in got.values()] == [g.__dict__ for g in want.values()]
    # Not vacuous: groups with more members than examples, noncurrent ones named with
    # their generation, and a detail that differs between members.
    groups = [g for bucket_groups in expected for g in bucket_groups.values()]
    assert any(g.count > EXAMPLES for g in groups)
    assert any(e.endswith("#1") for g in groups for e in g.examples)
    assert {"temporary hold", "event-based hold"} & {g.detail for g in groups} == {"temporary hold"}
