"""Cloud Storage's buckets as the fake's Cloud KMS Inventory lists them
(rotator/backends/fake/inventory.py): apart from the fake itself, which is near this
house's module size (500 lines)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from rotator.backends.fake.inventory import versions_of
from rotator.backends.fake.store import Store
from rotator.model import Bucket, ProtectedResource
from rotator.names import versions_prefix


def protected_buckets(
    store: Store, buckets: Iterable[Bucket], key: str, home: str
) -> Iterator[ProtectedResource]:
    """The buckets whose default key is `key`, or whose generations (live, noncurrent,
    soft-deleted) a version of it encrypts: one query, not a listing per key; `buckets`
    is read after it."""
    under = versions_prefix(key)
    with store.read() as c:
        rows = c.execute(
            "SELECT DISTINCT bucket, kms_key_version FROM objects "
            "WHERE kms_key_version >= ? AND kms_key_version < ?",
            (under, under + "\uffff"),
        ).fetchall()
    under_key: dict[str, list[str]] = {}
    for bucket, version in rows:
        under_key.setdefault(bucket, []).append(version)
    for b in buckets:
        versions = versions_of(key, under_key.get(b.name, ()))
        if versions or b.default_kms_key == key:
            yield ProtectedResource(
                f"//storage.googleapis.com/projects/_/buckets/{b.name}",
                "storage.googleapis.com/Bucket",
                versions,
                home,
            )
