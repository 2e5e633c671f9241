"""The Backend protocol: what the engine may ask of a cloud, named after the real API
verbs (Cloud KMS, Cloud Storage JSON API). The fake and the gcp backend implement it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Protocol

from rotator.model import (
    Backup,
    BatchJob,
    Bucket,
    CloudFunction,
    CryptoKey,
    CryptoKeyVersion,
    Database,
    DataflowJob,
    DataflowSnapshot,
    IamPolicy,
    LogEntry,
    ObjectInfo,
    ObjectPage,
    ProtectedResource,
    ProtectedResourcesSummary,
    RewriteResult,
    RunService,
)


class Clock(Protocol):
    def now(self) -> datetime: ...


class KmsReads(Protocol):
    """What planning may ask of Cloud KMS: reads only (the plan side is read-only)."""

    def get_crypto_key(self, name: str) -> CryptoKey: ...

    def list_locations(self, name: str) -> list[str]:
        """The location ids of project `name` (projects/P) where Cloud KMS is offered."""
        ...

    def list_key_rings(self, parent: str) -> list[str]:
        """The key ring names of one location (projects/P/locations/L)."""
        ...

    def list_crypto_keys(self, parent: str) -> list[CryptoKey]:
        """The keys of one key ring."""
        ...

    def list_crypto_key_versions(self, key: str) -> list[CryptoKeyVersion]: ...

    def get_crypto_key_version(self, name: str) -> CryptoKeyVersion: ...

    def get_iam_policy(self, key: str) -> IamPolicy: ...

    def test_iam_permissions(self, resource: str, permissions: list[str]) -> list[str]:
        """The subset of `permissions` the caller holds on the key (testIamPermissions)."""
        ...


class KmsApi(KmsReads, Protocol):
    def create_crypto_key_version(self, key: str) -> CryptoKeyVersion: ...

    def update_crypto_key_primary_version(self, key: str, version: str) -> CryptoKey: ...

    def update_crypto_key_version(self, version: str, state: str) -> CryptoKeyVersion:
        """Set state to ENABLED or DISABLED (the only states a client may set)."""
        ...

    def destroy_crypto_key_version(self, version: str) -> CryptoKeyVersion: ...

    def restore_crypto_key_version(self, version: str) -> CryptoKeyVersion: ...

    def set_iam_policy(self, key: str, policy: IamPolicy) -> IamPolicy: ...


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


class FirestoreReads(Protocol):
    def list_databases(self) -> list[Database]: ...

    def get_database(self, name: str) -> Database: ...

    def list_backups(self) -> list[Backup]: ...


class FirestoreAdminApi(FirestoreReads, Protocol):
    def restore_database(
        self, database_id: str, backup: str, *, kms_key: str | None, use_backup_encryption: bool = False
    ) -> Database: ...


class DataflowReads(Protocol):
    def list_jobs(self) -> list[DataflowJob]: ...

    def get_job(self, job: str) -> DataflowJob: ...


class DataflowApi(DataflowReads, Protocol):
    def snapshot_job(self, job: str) -> DataflowSnapshot: ...


class RunReads(Protocol):
    def list_services(self, region: str) -> list[RunService]:
        """The services of one region: Cloud Run lists per region, never all ("-")."""
        ...

    def get_service(self, name: str) -> RunService: ...

    def test_iam_permissions(self, resource: str, permissions: list[str]) -> list[str]:
        """The subset of `permissions` the caller holds on it (testIamPermissions)."""
        ...


class RunApi(RunReads, Protocol):
    def update_service(self, name: str, *, kms_key: str | None = ...) -> RunService:
        """Deploy a new revision, under `kms_key` if given (else the current key)."""
        ...


class FunctionsReads(Protocol):
    def list_functions(self) -> list[CloudFunction]: ...

    def get_function(self, name: str) -> CloudFunction: ...

    def get_repository_key(self, repository: str) -> str | None: ...

    def list_repositories(self, region: str) -> list[tuple[str, str | None]]:
        """(name, key) of one region's Artifact Registry repositories."""
        ...

    def repository_image_versions(self, repository: str, key: str) -> tuple[str, ...] | None:
        """The versions of `key` the repository's images are encrypted under, or None
        when nothing says (Artifact Registry records no version: then any may be)."""
        ...

    def test_iam_permissions(self, resource: str, permissions: list[str]) -> list[str]:
        """The subset of `permissions` the caller holds on it (testIamPermissions)."""
        ...


class FunctionsApi(FunctionsReads, Protocol):
    def redeploy_function(
        self, name: str, *, kms_key: str | None = ..., docker_repository: str | None = ...
    ) -> CloudFunction: ...

    def create_repository(self, repository: str, *, kms_key: str | None) -> None: ...


class StorageBatchApi(Protocol):
    """Cloud Storage batch operations: Google's engine for rewrites past one machine."""

    def write_manifest(self, bucket: str, name: str, rows: Iterable[tuple[str, str, int]]) -> str:
        """Write a CSV manifest (bucket,name,generation per row); returns its gs:// URI."""
        ...

    def job_name(self, job_id: str) -> str:
        """The full name a job created with `job_id` has (local: no call)."""
        ...

    def create_job(self, job_id: str, bucket: str, manifest_uri: str, kms_key: str) -> BatchJob: ...

    def get_job(self, name: str) -> BatchJob: ...


class InventoryApi(Protocol):
    """Cloud KMS Inventory (kmsinventory.googleapis.com): what Google says a key protects,
    across every product, including those rotator does not manage."""

    def get_protected_resources_summary(self, key: str) -> ProtectedResourcesSummary:
        """Counts by resource type and project; needs no organization (roles/cloudkms.viewer
        on the key)."""
        ...

    def search_protected_resources(self, organization: str, key: str) -> list[ProtectedResource]:
        """Names and versions; needs an organization and roles/cloudkms.protectedResourcesViewer
        on it."""
        ...

    def list_crypto_keys(self, project: str) -> list[CryptoKey]:
        """Every key of a project (KeyDashboardService.ListCryptoKeys)."""
        ...


class LogsApi(Protocol):
    def key_failures(self, since: datetime) -> list[LogEntry]:
        """Services' log lines since `since` about failures caused by their key."""
        ...


class Backend(Protocol):
    project: str
    project_number: str
    kms: KmsApi
    storage: StorageApi
    firestore: FirestoreAdminApi
    dataflow: DataflowApi
    run: RunApi
    functions: FunctionsApi
    batch: StorageBatchApi
    logs: LogsApi
    inventory: InventoryApi
    organization: str | None  # the organization Cloud KMS Inventory searches (None: summary only)
    clock: Clock

    def apply_lock(self, key: str) -> AbstractContextManager[None]:
        """Held for a whole apply; a second apply on the same key must refuse."""
        ...

    def describe(self) -> dict[str, str]:
        """What a plan records so apply can check it runs against the same world."""
        ...

    def for_project(self, project: str) -> Backend:
        """The same cloud seen from another project (its services' resources), to inspect
        what else uses a key (plan --project A --project B)."""
        ...


class ReadOnlyBackend(Protocol):
    """The backend as planning sees it: reads only. `rotator plan` never changes the world;
    with this type a mutating call on the plan side does not type-check (mypy), instead of
    being a convention. Every Backend is one (the same object, seen through fewer verbs)."""

    @property
    def project(self) -> str: ...

    @property
    def project_number(self) -> str: ...

    @property
    def kms(self) -> KmsReads: ...

    @property
    def storage(self) -> StorageReads: ...

    @property
    def firestore(self) -> FirestoreReads: ...

    @property
    def dataflow(self) -> DataflowReads: ...

    @property
    def run(self) -> RunReads: ...

    @property
    def functions(self) -> FunctionsReads: ...

    @property
    def logs(self) -> LogsApi: ...

    @property
    def inventory(self) -> InventoryApi: ...

    @property
    def organization(self) -> str | None: ...

    @property
    def clock(self) -> Clock: ...

    def describe(self) -> dict[str, str]:
        """What a plan records so apply can check it runs against the same world."""
        ...

    def for_project(self, project: str) -> ReadOnlyBackend:
        """The same cloud seen from another project, read-only."""
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
