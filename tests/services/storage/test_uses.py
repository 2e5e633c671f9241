"""Cloud Storage's scanner (rotator/services/storage/uses.py): a bucket's soft-deleted
generations are listed beside its live and noncurrent ones, not after them, with the
same groups as one pass after the other.

Backends: fake (in memory, its storage wrapped to watch the listings)."""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from typing import Any

import pytest
from worlds import fleet_on_shared_buckets

from rotator import apierrors as api
from rotator.backends.fake import FakeBackend
from rotator.model import ObjectPage
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


def test_an_error_in_the_soft_deleted_listing_is_raised() -> None:
    backend = FakeBackend.from_dict(fleet_on_shared_buckets())
    bucket = next(iter(backend.storage.list_buckets()))
    with pytest.raises(api.Unavailable, match="soft-deleted listing failed"):
        bucket_uses(Watched(backend.storage, fail_soft=True), bucket, NOW, None, None)
