"""The local rewrite engine (rotator.rewrites): buckets side by side within one budget
of requests in flight (--concurrency), every object under a retiring version rewritten
exactly once, none of the current ones touched.

Backends: fake."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from worlds import APP_KEY, bucket, key, make_backend, obj, v

from rotator import playbooks
from rotator.engine import apply_plan
from rotator.plan import build_plan, resolve_params

BUCKETS = ("b-one", "b-two", "b-three")
OTHER = APP_KEY.rsplit("/", 1)[0] + "/other"


class Watched:
    """The fake's storage, counting rewrites in flight (all buckets, each bucket) and
    per object; the first rewrite of every bucket waits until each bucket has sent one,
    which only buckets rewritten side by side can do."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.lock = threading.Lock()
        self.in_flight: Counter[str] = Counter()
        self.peak_total = 0
        self.per_object: Counter[tuple[str, str]] = Counter()
        self.all_started = threading.Barrier(len(BUCKETS), timeout=30)
        self.started: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def rewrite_object(self, bucket: str, name: str, **kw: Any) -> Any:
        with self.lock:
            first = bucket not in self.started
            self.started.add(bucket)
            self.in_flight[bucket] += 1
            self.peak_total = max(self.peak_total, sum(self.in_flight.values()))
            self.per_object[(bucket, name)] += 1
        try:
            if first:
                self.all_started.wait()
            time.sleep(0.001)
            return self.inner.rewrite_object(bucket, name, **kw)
        finally:
            with self.lock:
                self.in_flight[bucket] -= 1


def test_buckets_are_rewritten_side_by_side_within_one_budget(tmp_path: Path) -> None:
    storage = [
        bucket(
            b,
            [obj(f"old/{i:03d}", v(APP_KEY, 1)) for i in range(40)]
            + [obj(f"current/{i:03d}", v(OTHER, 1)) for i in range(10)],
        )
        for b in BUCKETS
    ]
    backend = make_backend(
        storage=storage,
        kms=[key(APP_KEY, {1: "ENABLED", 2: "ENABLED"}, primary=2), key(OTHER, {1: "ENABLED"})],
    )
    watched = Watched(backend.storage)
    backend.storage = watched  # type: ignore[assignment]
    pb = playbooks.load("rotate-key")
    doc = build_plan(backend, pb, resolve_params(pb, APP_KEY, None, {}))
    result = apply_plan(backend, doc, "sha", str(tmp_path / "plan.json"), concurrency=4)
    rewrite = next(r for r in result["results"].values() if "rewritten" in r)
    assert rewrite["rewritten"] == 3 * 40 and rewrite["failed"] == 0
    # The three buckets met at the barrier: they ran at the same time...
    assert watched.started == set(BUCKETS)
    # ...and never more than --concurrency rewrites were in flight, all buckets together.
    assert 3 <= watched.peak_total <= 4
    # Exactly one rewrite per object under the retiring version, none for current ones.
    assert set(watched.per_object.values()) == {1}
    assert len(watched.per_object) == 3 * 40
    assert not any(name.startswith("current/") for _, name in watched.per_object)


def test_an_unexpected_error_in_one_rewrite_stops_the_step_instead_of_vanishing(tmp_path: Path) -> None:
    import pytest

    backend = make_backend(
        storage=[bucket("b-one", [obj(f"old/{i:03d}", v(APP_KEY, 1)) for i in range(30)])],
        kms=[key(APP_KEY, {1: "ENABLED", 2: "ENABLED"}, primary=2)],
    )
    inner = backend.storage

    class Broken:
        def __getattr__(self, name: str) -> Any:
            return getattr(inner, name)

        def rewrite_object(self, bucket: str, name: str, **kw: Any) -> Any:
            if name == "old/007":
                raise RuntimeError("a bug, not an API error")
            return inner.rewrite_object(bucket, name, **kw)

    backend.storage = Broken()  # type: ignore[assignment]
    pb = playbooks.load("rotate-key")
    doc = build_plan(backend, pb, resolve_params(pb, APP_KEY, None, {}))
    with pytest.raises(RuntimeError, match="a bug"):
        apply_plan(backend, doc, "sha", str(tmp_path / "plan.json"), concurrency=4)
