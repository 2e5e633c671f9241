"""Cloud Storage's uses of a key: buckets whose default key it is (R15), and every
generation of every object under its versions (R14, R16, R18).

Two streamed passes per bucket, side by side (live + noncurrent, and soft-deleted);
nothing holds every object in memory. Uses are aggregated per (version, bucket, kind)
with a few example names, the count, the bytes and the date the group frees the version.
"""

from __future__ import annotations

import bisect
import threading
from datetime import datetime
from functools import partial
from typing import Any

from rotator.listing import iter_objects_parallel
from rotator.model import ENABLED, LIVE, NONCURRENT, SOFT_DELETED, Bucket, ObjectInfo
from rotator.names import versions_prefix
from rotator.pins import EXAMPLES, PinGroup, VersionUse, version_use
from rotator.scan import ProgressFn, Scan
from rotator.services.storage.spec import (
    BUCKET_DEFAULT,
    HELD_OBJECT,
    LIVE_OBJECT,
    NONCURRENT_GENERATION,
    RETAINED_OBJECT,
    SOFT_DELETED_GENERATION,
    UNREADABLE_OBJECT,
)
from rotator.services.storage.spec import SPEC as STORAGE
from rotator.sidebyside import side_by_side
from rotator.storage_rules import locked, overwrite_blocker, retention_expiry


def classify(
    obj: ObjectInfo, bucket: Bucket, version_state: str, now: datetime
) -> tuple[str, datetime | None, str]:
    """The pin kind of one generation, when it frees the version, and a detail."""
    if obj.state == SOFT_DELETED:
        return SOFT_DELETED_GENERATION, obj.hard_delete_time, ""
    if obj.state == NONCURRENT:
        return NONCURRENT_GENERATION, None, ""
    if obj.held:
        return HELD_OBJECT, None, "temporary hold" if obj.temporary_hold else "event-based hold"
    blocker = overwrite_blocker(obj, bucket, now)
    if blocker is not None:
        expiry = retention_expiry(obj, bucket)
        return RETAINED_OBJECT, expiry, ("locked " if locked(obj, bucket) else "unlocked ") + "retention"
    if version_state != ENABLED:
        return UNREADABLE_OBJECT, None, f"version is {version_state}"
    return LIVE_OBJECT, None, ""


# What one bucket's objects hold, by (version name, pin kind as if the version were
# ENABLED): a group per version and kind, with the bucket's few examples, never every
# object. `classify` depends on the version's state only to tell a live object from an
# unreadable one, so the same groups serve every key (report: one listing per bucket).
BucketUses = dict[tuple[str, str], PinGroup]


def bucket_uses(
    storage: Any, bucket: Bucket, now: datetime, prefix: str | None, progress: ProgressFn | None
) -> BucketUses:
    """One streamed pass over a bucket's live and noncurrent generations, and beside it
    (on a thread of its own: an independent listing, so it no longer waits for the other
    to end) one over its soft-deleted ones: the groups of every version named
    `prefix...` (None: of every key)."""

    def listed(soft_deleted: bool) -> tuple[BucketUses, int]:
        live_progress = None if soft_deleted else progress
        return _listed_uses(storage, bucket, now, prefix, soft_deleted=soft_deleted, progress=live_progress)

    # Daemon threads, as the listers are: when one pass fails (or is interrupted), its
    # error goes up and the other's answer is not waited for.
    (out, seen), (deleted, seen_deleted) = side_by_side(listed, [False, True], 2)
    # The groups in the order one pass after the other gave them. The keys do not meet
    # (a soft-deleted generation is a kind of its own); were they to, both count.
    for key, part in deleted.items():
        if key in out:
            _fold(out[key], part, part.detail)
        else:
            out[key] = part
    if progress:
        progress(bucket.name, seen + seen_deleted)
    return out


def _listed_uses(
    storage: Any,
    bucket: Bucket,
    now: datetime,
    prefix: str | None,
    *,
    soft_deleted: bool,
    progress: ProgressFn | None = None,
) -> tuple[BucketUses, int]:
    """One listing of a bucket (live + noncurrent, or soft-deleted), streamed: its
    groups, and how many generations it listed. The listing gives pages in no set
    order; each group is told as one listing in name order would tell it (see _Firsts)."""
    out: BucketUses = {}
    firsts: dict[tuple[str, str], _Firsts] = {}
    seen = 0
    for obj in iter_objects_parallel(
        storage, bucket.name, versions=not soft_deleted, soft_deleted=soft_deleted
    ):
        seen += 1
        if progress and seen % 10000 == 0:
            progress(bucket.name, seen)
        kv = obj.kms_key_version
        if not kv or (prefix is not None and not kv.startswith(prefix)):
            continue
        kind, frees, detail = classify(obj, bucket, ENABLED, now)
        key = (kv, kind)
        group = out.get(key)
        if group is None:
            group = out[key] = PinGroup(kind, f"gs://{bucket.name}")
            first = firsts[key] = _Firsts()
        else:
            first = firsts[key]
        group.add(obj.name, obj.size, frees)  # its examples are first's (below)
        first.saw(obj, detail)
    for key, group in out.items():
        firsts[key].tell(group)
    # The groups in the order a listing in name order meets them.
    return {key: out[key] for key in sorted(out, key=lambda k: firsts[k].least())}, seen


class _Firsts:
    """A group's first members in name order, whatever order they were listed in: its
    examples (the first EXAMPLES generations, a noncurrent one named with its number)
    and its detail (the first one that has one)."""

    __slots__ = ("examples", "detail")

    def __init__(self) -> None:
        self.examples: list[tuple[str, int, str]] = []  # (name, generation, state), sorted
        self.detail: tuple[str, int, str] | None = None  # (name, generation, detail)

    def saw(self, obj: ObjectInfo, detail: str) -> None:
        examples = self.examples
        # Most objects come after the last example: one comparison of names and done.
        if len(examples) < EXAMPLES or obj.name <= examples[-1][0]:
            member = (obj.name, obj.generation, obj.state)
            if len(examples) < EXAMPLES or member < examples[-1]:
                bisect.insort(examples, member)
                del examples[EXAMPLES:]
        if detail and (self.detail is None or (obj.name, obj.generation) < self.detail[:2]):
            self.detail = (obj.name, obj.generation, detail)

    def least(self) -> tuple[str, int]:
        name, generation, _ = self.examples[0]
        return name, generation

    def tell(self, group: PinGroup) -> None:
        group.examples = [f"{n}#{g}" if state != LIVE else n for n, g, state in self.examples]
        if self.detail is not None:
            group.detail = self.detail[2]


def _attribute(found: BucketUses, key_name: str, uses: dict[int, VersionUse]) -> None:
    """The groups of `found` under versions of this key, into its uses (a live object
    under a version that is not ENABLED cannot be read: R14)."""
    for (kv, kind), part in found.items():
        use = version_use(uses, key_name, kv)
        if use is None:
            continue
        detail = part.detail
        if kind == LIVE_OBJECT and use.version.state != ENABLED:
            kind, detail = UNREADABLE_OBJECT, f"version is {use.version.state}"
        _fold(use.group(kind, part.resource), part, detail)


def _fold(group: PinGroup, part: PinGroup, detail: str) -> None:
    """`part`'s members into `group`, as if they had been added to it one by one."""
    if detail and not group.detail:
        group.detail = detail
    group.count += part.count
    group.bytes += part.bytes
    group.dateless = group.dateless or part.dateless
    if part.frees_at is not None and (group.frees_at is None or part.frees_at > group.frees_at):
        group.frees_at = part.frees_at
    group.examples += part.examples[: EXAMPLES - len(group.examples)]


# Buckets listed side by side, each with its own listers (rotator.listing): a project of
# many small buckets no longer waits one round trip after another per bucket.
BUCKETS_AT_ONCE = 4


def scan(s: Scan) -> None:
    """Every bucket (and which default to the key), then what each one's objects hold:
    one listing per bucket for all the keys of a report (ScanCache), or only this key's
    versions for a plan. Up to BUCKETS_AT_ONCE buckets are listed at a time; what each
    holds is added in the buckets' order, as one listing after another gave it."""
    storage = STORAGE.reads(s.backend)
    s.buckets = list(storage.list_buckets())
    prefix = versions_prefix(s.key)
    progress = _one_at_a_time(s.progress)

    def read(bucket: Bucket) -> BucketUses:
        if s.cache is not None:
            every = partial(_every_key, storage, bucket, s.now)
            return s.cache.memo(s.backend, ("bucket", bucket.name), every)
        return bucket_uses(storage, bucket, s.now, prefix, progress)

    for bucket, found in zip(s.buckets, side_by_side(read, s.buckets, BUCKETS_AT_ONCE), strict=True):
        if bucket.default_kms_key == s.key:
            s.default_for.append(bucket.name)
            if s.primary in s.uses:
                s.uses[s.primary].group(BUCKET_DEFAULT, f"gs://{bucket.name}").add(bucket.name)
        _attribute(found, s.key, s.uses)


def _one_at_a_time(progress: ProgressFn | None) -> ProgressFn | None:
    """`progress`, called by one bucket's listing at a time."""
    if progress is None:
        return None
    lock = threading.Lock()

    def report(bucket: str, seen: int) -> None:
        with lock:
            progress(bucket, seen)

    return report


def _every_key(storage: Any, bucket: Bucket, now: datetime) -> BucketUses:
    return bucket_uses(storage, bucket, now, None, None)
