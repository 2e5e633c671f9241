"""The domain records both backends return. Plain, typed, no behaviour beyond helpers.

ObjectInfo is a named tuple, not a frozen dataclass: inventory streams millions of
them, and a frozen dataclass's constructor sets each of its 14 fields through
object.__setattr__ (2.1 us against 0.8 us: a tenth of a 1 M plan's CPU, client and
test server alike). It is as immutable and compares by value the same.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Generic, NamedTuple, TypeVar

from rotator.names import key_of, location_of, version_id

T = TypeVar("T")


class Listing(list[T], Generic[T]):
    """What a list call returned, and the locations it could not reach: Google's
    all-locations lists answer with a partial result and `unreachable` (functions v2
    ListFunctionsResponse, Firestore ListBackupsResponse; Dataflow's failed_location)
    instead of failing. What was not listed is not inspected: assumed in use."""

    def __init__(self, items: Iterable[T] = (), unreachable: Iterable[str] = ()):
        super().__init__(items)
        self.unreachable: tuple[str, ...] = tuple(sorted(set(unreachable)))


def unreachable_of(listing: Iterable[object]) -> tuple[str, ...]:
    """The locations a list could not reach (none for a plain list)."""
    return getattr(listing, "unreachable", ())


# KMS version states (R1)
ENABLED = "ENABLED"
DISABLED = "DISABLED"
DESTROY_SCHEDULED = "DESTROY_SCHEDULED"
DESTROYED = "DESTROYED"
VERSION_STATES = (ENABLED, DISABLED, DESTROY_SCHEDULED, DESTROYED, "PENDING_GENERATION")

ENCRYPTER_DECRYPTER = "roles/cloudkms.cryptoKeyEncrypterDecrypter"

# Cloud Storage generation states (R18)
LIVE = "live"
NONCURRENT = "noncurrent"
SOFT_DELETED = "soft_deleted"


@dataclass(frozen=True)
class CryptoKey:
    name: str
    protection_level: str
    primary: int | None
    destroy_scheduled_duration: timedelta
    rotation_period: timedelta | None = None  # automatic rotation; None: none
    next_rotation_time: datetime | None = None

    @property
    def location(self) -> str:
        return location_of(self.name)


@dataclass(frozen=True)
class CryptoKeyVersion:
    name: str
    state: str
    destroy_time: datetime | None = None
    create_time: datetime | None = None

    @property
    def number(self) -> int:
        return version_id(self.name)

    @property
    def key(self) -> str:
        return key_of(self.name)


@dataclass
class IamPolicy:
    bindings: dict[str, list[str]] = field(default_factory=dict)
    etag: str = ""

    def members(self, role: str) -> list[str]:
        return self.bindings.get(role, [])


@dataclass(frozen=True)
class BucketRetention:
    period: timedelta
    locked: bool


@dataclass(frozen=True)
class Bucket:
    name: str
    location: str
    default_kms_key: str | None
    versioning: bool
    soft_delete: timedelta
    retention: BucketRetention | None = None


class ObjectInfo(NamedTuple):
    bucket: str
    name: str
    generation: int
    kms_key_version: str | None
    size: int
    created: datetime
    state: str = LIVE
    temporary_hold: bool = False
    event_based_hold: bool = False
    retention_mode: str | None = None
    retain_until: datetime | None = None
    hard_delete_time: datetime | None = None
    customer_supplied_key: bool = False
    # What Cloud Storage says the bucket policy holds it until (`retentionExpirationTime`);
    # None: not given, computed from the creation time and the policy's period.
    retention_expires: datetime | None = None

    @property
    def held(self) -> bool:
        return self.temporary_hold or self.event_based_hold


@dataclass(frozen=True)
class ObjectPage:
    items: list[ObjectInfo]
    next_page_token: str | None


@dataclass(frozen=True)
class RewriteResult:
    done: bool
    total_bytes: int
    bytes_rewritten: int
    rewrite_token: str | None
    resource: ObjectInfo | None


# -- Firestore (R20-R24) ---------------------------------------------------------------
@dataclass(frozen=True)
class Database:
    name: str
    location: str
    kms_key: str | None
    active_key_versions: tuple[str, ...]
    reencryption_due: datetime | None = None  # when a pending re-encryption completes
    # Firestore's `uid`: a database deleted and created again under the same name (the
    # only way to change its key, R20) is another database with another uid.
    uid: str = ""


@dataclass(frozen=True)
class Backup:
    name: str
    database: str
    snapshot_time: datetime
    expire_time: datetime
    kms_key_version: str | None
    database_uid: str = ""  # the uid of the database it was taken from ("" = unknown)


# -- Dataflow (R30-R34) ----------------------------------------------------------------
@dataclass(frozen=True)
class DataflowSnapshot:
    id: str
    job: str
    created: datetime
    state: str


@dataclass(frozen=True)
class DataflowJob:
    id: str
    name: str
    region: str
    type: str
    streaming_engine: bool
    state: str
    created: datetime
    kms_key: str | None
    kms_key_version: str | None
    snapshots: tuple[DataflowSnapshot, ...] = ()

    @property
    def running(self) -> bool:
        return self.state == "RUNNING"


# -- Cloud Run (R40, R41, R43) and functions (R42) ---------------------------------------
@dataclass(frozen=True)
class RunRevision:
    name: str
    kms_key: str | None
    kms_key_version: str | None
    traffic_percent: int
    # A tag gives the revision its own URL: it serves through it whatever its share.
    tags: tuple[str, ...] = ()
    # Its share is assigned by name, not by "latest": a new revision does not take it.
    pinned: bool = False
    # When it was deployed (Revision.create_time); None: not known (a world file's own).
    deployed: datetime | None = None

    @property
    def serving(self) -> bool:
        return self.traffic_percent > 0 or bool(self.tags)


@dataclass(frozen=True)
class RunService:
    name: str
    revocation_action: str
    revisions: tuple[RunRevision, ...]

    @property
    def region(self) -> str:
        return location_of(self.name)

    @property
    def latest(self) -> RunRevision | None:
        return self.revisions[-1] if self.revisions else None


@dataclass(frozen=True)
class CloudFunction:
    name: str
    kms_key: str | None
    kms_key_version: str | None
    docker_repository: str | None
    # When it was last deployed (Function.update_time); None: not known (a world file's own).
    deployed: datetime | None = None

    @property
    def region(self) -> str:
        return location_of(self.name)


@dataclass(frozen=True)
class ProtectedResource:
    """A resource Cloud KMS Inventory says a key protects (the cross-check)."""

    name: str  # e.g. //storage.googleapis.com/projects/_/buckets/B
    resource_type: str  # e.g. storage.googleapis.com/Bucket
    versions: tuple[str, ...]
    project: str = ""  # the project id it lives in ("" when the API did not say)

    @property
    def product(self) -> str:
        return self.resource_type.split("/", 1)[0]


@dataclass(frozen=True)
class ProtectedResourcesSummary:
    """Cloud KMS Inventory's per-key summary (GetProtectedResourcesSummary): counts only,
    no names or versions. Needs no organization, only cloudkms.cryptoKeys.get on the key."""

    key: str
    resource_count: int
    project_count: int
    resource_types: dict[str, int]  # e.g. {"bigquery.googleapis.com/Table": 1}
    cloud_products: dict[str, int]  # e.g. {"bigquery": 1}


# -- Cloud Storage batch operations (large re-encryptions) ------------------------------
@dataclass(frozen=True)
class BatchJob:
    name: str
    bucket: str
    state: str  # QUEUED | RUNNING | SUCCEEDED | FAILED | CANCELED
    total: int
    succeeded: int
    failed: int
    errors: tuple[tuple[str, str], ...] = ()  # (object uri, error), a sample

    @property
    def done(self) -> bool:
        return self.state in ("SUCCEEDED", "FAILED", "CANCELED")


@dataclass(frozen=True)
class LogEntry:
    """A service's log line about a failure caused by its key (R22, R41)."""

    time: datetime
    service: str
    resource: str
    message: str
