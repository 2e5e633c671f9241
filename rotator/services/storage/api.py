"""Cloud Storage as rotator calls it: StorageReads for planning (read-only), StorageApi
for apply; the fake and the gcp adapter implement StorageApi (SPEC.api / SPEC.reads)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from rotator.model import Bucket, ObjectInfo, ObjectPage, RewriteResult


class StorageReads(Protocol):
    """What planning may ask of Cloud Storage: reads only."""

    def list_buckets(self) -> Iterator[Bucket]: ...

    def get_bucket(self, name: str) -> Bucket: ...

    def test_iam_permissions(self, bucket: str, permissions: list[str]) -> list[str]:
        """The subset of `permissions` the caller holds on the bucket (testIamPermissions)."""
        ...

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
        """One page. versions=True adds noncurrent generations; soft_deleted=True lists
        only soft-deleted generations (as the JSON API does). start_offset (inclusive)
        and end_offset (exclusive) bound the names, as objects.list's startOffset and
        endOffset do (rotator.listing lists name ranges in parallel with them)."""
        ...

    def get_object(self, bucket: str, name: str, generation: int | None = None) -> ObjectInfo: ...

    def download_bytes(self, bucket: str, name: str) -> tuple[bytes, int]:
        """The live object's content and its generation."""
        ...

    def list_names(self, bucket: str, prefix: str) -> list[str]:
        """The names of the live objects under `prefix`."""
        ...


class StorageApi(StorageReads, Protocol):
    def patch_bucket_default_kms_key(self, name: str, kms_key: str | None) -> Bucket: ...

    # What rotator keeps in a bucket itself (plans, journals, the apply lock; docs/state.md).
    def upload_bytes(self, bucket: str, name: str, data: bytes, *, if_generation_match: int | None) -> int:
        """Write an object with this content; ifGenerationMatch=0: only if absent. Returns
        the new generation (PreconditionFailed when the match does not hold)."""
        ...

    def delete_object(self, bucket: str, name: str, *, if_generation_match: int | None) -> None: ...

    def rewrite_object(
        self,
        bucket: str,
        name: str,
        *,
        destination_kms_key: str | None,
        if_generation_match: int | None,
        rewrite_token: str | None = None,
        max_bytes_rewritten_per_call: int | None = None,
    ) -> RewriteResult:
        """Rewrite an object in place; destination_kms_key is a key name, never a version
        (the service encrypts with the key's primary version, R2)."""
        ...


def iter_objects(
    storage: StorageReads,
    bucket: str,
    *,
    versions: bool = False,
    soft_deleted: bool = False,
    page_size: int = 1000,
) -> Iterator[ObjectInfo]:
    """Stream every object of a bucket, one page at a time (never all in memory)."""
    token: str | None = None
    while True:
        page = storage.list_objects(
            bucket,
            versions=versions,
            soft_deleted=soft_deleted,
            page_token=token,
            page_size=page_size,
        )
        yield from page.items
        token = page.next_page_token
        if not token:
            return
