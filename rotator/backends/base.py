"""The Backend protocol: what the engine may ask of a cloud, named after the real API
verbs (Cloud KMS, Cloud Storage JSON API). The fake and the gcp backend implement it.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Protocol

from rotator.model import (
    BatchJob,
    CryptoKey,
    CryptoKeyVersion,
    IamPolicy,
    LogEntry,
    ProtectedResource,
    ProtectedResourcesSummary,
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
    # Each service's API (rotator/services/<name>/api.py) is the backend's attribute under
    # the service's name, handed out typed by its spec: `SPEC.api(backend)`.
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

    # Each service's reads: `SPEC.reads(backend)` (rotator.services.spec).

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
