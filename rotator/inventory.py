"""What each version of a key protects, and what pins it (README, "What pins a version").

One streamed pass per bucket (live + noncurrent, then soft-deleted); nothing holds
every object in memory. Uses are aggregated per (version, bucket, kind) with a few
example names, the count, the bytes and the date the group frees the version.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from rotator import apierrors as api
from rotator.agents import FIRESTORE, FUNCTIONS, RUN, STORAGE
from rotator.backends.base import Backend
from rotator.listing import iter_objects_parallel
from rotator.locations import key_region
from rotator.model import (
    ENABLED,
    LIVE,
    NONCURRENT,
    SOFT_DELETED,
    Backup,
    Bucket,
    CryptoKey,
    CryptoKeyVersion,
    Database,
    Listing,
    ObjectInfo,
    ProtectedResource,
    ProtectedResourcesSummary,
    RunService,
    unreachable_of,
)
from rotator.names import KeyName
from rotator.services import COVERED_PRODUCTS, PIN_KINDS, SERVICES, WINDOW_OF, service_of
from rotator.services.core import INVENTORY_UNREADABLE, OTHER_PROJECT, PRIMARY, UNCOVERED, UNLISTED
from rotator.services.dataflow.spec import DATAFLOW_JOB, DATAFLOW_KEY
from rotator.services.firestore.spec import FIRESTORE_ACTIVE, FIRESTORE_BACKUP, FIRESTORE_KEY
from rotator.services.functions.spec import FUNCTION, FUNCTION_KEY, REPOSITORY_IMAGES, REPOSITORY_KEY
from rotator.services.run.spec import RUN_IDLE, RUN_KEY, RUN_SERVING
from rotator.services.spec import PinKind
from rotator.services.storage.spec import (
    BUCKET_DEFAULT,
    HELD_OBJECT,
    LIVE_OBJECT,
    NONCURRENT_GENERATION,
    RETAINED_OBJECT,
    SOFT_DELETED_GENERATION,
    UNREADABLE_OBJECT,
)
from rotator.storage_rules import locked, overwrite_blocker, retention_expiry
from rotator.timeutil import format_time

EXAMPLES = 5

# A new primary takes effect eventually, not at once. Cloud KMS resource consistency page
# (rotator/backends/gcp/CONTRACT.md, UpdateCryptoKeyPrimaryVersion): "While such
# eventually-consistent changes propagate, Encrypt operations for a CryptoKey might use
# the CryptoKey's previous primary version"; changes "typically propagate within 1
# minute, but may take up to 3 hours in exceptional cases". So a revision or function
# deployed within this bound of a primary change may be under the previous primary,
# whatever KMS says is primary now (R43 with R2).
PROPAGATION = timedelta(hours=3)
PROPAGATION_TEXT = f"{PROPAGATION.total_seconds() / 3600:g} h"


@dataclass
class PinGroup:
    """A set of uses of one version in one place, of one kind."""

    kind: str
    resource: str
    count: int = 0
    bytes: int = 0
    frees_at: datetime | None = None  # the latest date among the group; None = no date
    dateless: bool = False  # some member frees on an event with no date (hold, lifecycle)
    examples: list[str] = field(default_factory=list)
    detail: str = ""
    # Members whose key rotator inferred (e.g. a backup of a deleted database: "may be any
    # key"): they pin, but do not show the key in use in their project.
    inferred: int = 0
    # The end of the KMS propagation window a deploy fell in (RUN_WINDOW, FUNCTION_WINDOW);
    # None there: the window of a primary not made yet (a plan's own rotation).
    after: datetime | None = None

    @property
    def named(self) -> int:
        """Members that name this key (or one of its versions) themselves."""
        return self.count - self.inferred

    @property
    def spec(self) -> PinKind:
        return PIN_KINDS[self.kind]

    @property
    def frees_when(self) -> str:
        """The event that frees the group, with the date it waits for when it has one."""
        after = (
            format_time(self.after)
            if self.after
            else f"the new primary's propagation window ({PROPAGATION_TEXT} from its creation)"
        )
        return self.spec.frees_when.format(after=after)

    @property
    def rule(self) -> str:
        return self.spec.rule

    def frees_on(self) -> datetime | None:
        """The date the whole group frees the version; None if unknown or event-driven."""
        return None if self.dateless else self.frees_at

    def add(self, what: str, size: int = 0, frees_at: datetime | None = None) -> None:
        self.count += 1
        self.bytes += size
        if frees_at is None:
            self.dateless = True
        elif self.frees_at is None or frees_at > self.frees_at:
            self.frees_at = frees_at
        if len(self.examples) < EXAMPLES:
            self.examples.append(what)

    def to_json(self) -> dict[str, object]:
        frees = self.frees_on()
        return {
            "kind": self.kind,
            "resource": self.resource,
            "rule": self.rule,
            "count": self.count,
            "bytes": self.bytes,
            "blocks_disable": self.spec.blocks_disable,
            "blocks_destroy": self.spec.blocks_destroy,
            "frees_at": frees.strftime("%Y-%m-%dT%H:%M:%SZ") if frees else None,
            "frees_when": self.frees_when,
            "examples": self.examples,
            "detail": self.detail,
        }


@dataclass
class VersionUse:
    version: CryptoKeyVersion
    is_primary: bool
    groups: dict[tuple[str, str], PinGroup] = field(default_factory=dict)

    def group(self, kind: str, resource: str) -> PinGroup:
        g = self.groups.get((kind, resource))
        if g is None:
            g = self.groups[(kind, resource)] = PinGroup(kind, resource)
        return g

    def pins(self) -> list[PinGroup]:
        """Deterministic whatever order the APIs listed things in: by kind, then resource."""
        order = list(PIN_KINDS)
        return sorted(self.groups.values(), key=lambda g: (order.index(g.kind), g.resource))


@dataclass
class KeyInventory:
    key: CryptoKey
    now: datetime
    versions: dict[int, VersionUse]
    buckets: list[Bucket]
    default_for: list[str]  # buckets whose default key is this key
    uninspected: list[str] = field(default_factory=list)  # services left out by --services
    kms_inventory: KmsInventoryView | None = None  # what Cloud KMS Inventory said

    @property
    def cross_check(self) -> str:
        return self.kms_inventory.line() if self.kms_inventory else "not read"

    def version(self, number: int) -> VersionUse:
        return self.versions[number]

    def services_using(self) -> list[str]:
        """Services that use the key (any version, or the key itself), in SERVICES order."""
        found = {s for u in self.versions.values() for g in u.pins() if (s := service_of(g.kind))}
        if self.default_for:
            found.add(STORAGE)
        return [s for s in SERVICES if s in found]

    def rewrite_work(self, retiring: Iterable[int]) -> dict[str, dict[int, tuple[int, int]]]:
        """bucket -> version -> (objects, bytes) of rewritable live objects."""
        out: dict[str, dict[int, tuple[int, int]]] = {}
        for n in retiring:
            for g in self.versions[n].pins():
                if g.kind == LIVE_OBJECT:
                    bucket = g.resource.removeprefix("gs://")
                    out.setdefault(bucket, {})[n] = (g.count, g.bytes)
        return out


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


ProgressFn = Callable[[str, int], None]


@dataclass(frozen=True)
class PrimaryWindow:
    """The propagation window of one version (PROPAGATION from when it became primary).
    A revision (serving or idle) or a function that KMS's word puts under `primary`
    (rotator recorded the primary of its deploy) but that was deployed before `ends` may
    be under one of `previous` instead, so it pins them too: until it is redeployed after
    `ends` (serving, a function), or deleted (idle)."""

    primary: str  # the version's name
    number: int
    ends: datetime | None  # None: the version's create time is unknown (the safe side: open)
    previous: tuple[int, ...]
    starts: datetime | None = None  # its create time (None: unknown)

    def holds(self, version: str | None, deployed: datetime | None) -> bool:
        """Deployed under the primary by KMS's word, while the change still propagated.
        No deploy time: a world file's own resource, deployed before its clock started;
        deployed before the version existed: not in its window (a deploy that did not
        change the version, e.g. a function update that did not rebuild)."""
        return (
            version == self.primary
            and deployed is not None
            and (self.starts is None or deployed >= self.starts)
            and (self.ends is None or deployed < self.ends)
        )

    def pin(self, uses: dict[int, VersionUse], kind: str, resource: str, what: str) -> None:
        for n in self.previous:
            group = uses[n].group(kind, resource)
            group.add(what)
            # Several windows may pin the same group: it frees after the last one.
            if group.after is None or (self.ends is not None and self.ends > group.after):
                group.after = self.ends
            group.detail = (
                PIN_KINDS[kind].window_note
                + f"was deployed within {PROPAGATION_TEXT} of version {self.number} becoming primary, "
                "so it may be under this version (Cloud KMS propagation)"
            )


# The windows of a key's versions, by version name (a resource's recorded version).
Windows = dict[str, PrimaryWindow]


def _pin_window(
    windows: Windows | None,
    uses: dict[int, VersionUse],
    direct: str,
    version: str | None,
    deployed: datetime | None,
    resource: str,
    what: str,
) -> None:
    """A use recorded under a version and deployed in that version's window also pins
    the versions that may have been primary before it, as the window kind of `direct`."""
    window = (windows or {}).get(version or "")
    if window is not None and window.holds(version, deployed):
        window.pin(uses, WINDOW_OF[direct], resource, what)


def redeploy_window_pin(kind: str, resource: str, what: str) -> PinGroup:
    """What a redeploy right after a plan's own rotation will pin: the primary it
    replaces, until a redeploy after the new primary's window (whose end is known only
    once the apply made it; PinGroup.frees_when)."""
    group = PinGroup(kind, resource)
    group.add(what)
    group.detail = (
        "will be deployed right after this plan makes a new primary, so it may be under this "
        f"version (Cloud KMS propagation, up to {PROPAGATION_TEXT})"
    )
    return group


def primary_windows(
    crypto_key: CryptoKey, versions: list[CryptoKeyVersion], replaced: tuple[int, int] | None = None
) -> Windows:
    """The window of every version that had one (some version may have been primary
    before it), whatever its state now and whether it is still primary: a deploy in a
    version's window pins what may have been primary before, after the primary moved on.
    The versions that may have been primary meanwhile: the one it replaced when rotator's
    own apply made it primary (`replaced` = (made, replaced)); otherwise every ENABLED
    version created before it (numbers follow creation), the safe side. When a version
    became primary is read as its create time: a lower bound, right for rotator's
    rotations (created and made primary at once); a version made primary by hand long
    after its creation opens a later window that rotator does not see (README, "real
    Google Cloud backend")."""
    made, before = replaced or (None, None)
    candidates = [v.number for v in versions if v.state == ENABLED]
    out: Windows = {}
    for current in versions:
        previous: tuple[int, ...]
        if (
            made == current.number
            and before is not None
            and before != made
            and any(v.number == before for v in versions)
        ):
            previous = (before,)
        else:
            previous = tuple(n for n in candidates if n < current.number)
        if previous:
            ends = current.create_time + PROPAGATION if current.create_time else None
            out[current.name] = PrimaryWindow(
                current.name, current.number, ends, previous, current.create_time
            )
    return out


def _uses_found(uses: dict[int, VersionUse]) -> int:
    """How many uses naming this key rotator's own listing found (services' pins, not the
    primary, nor a use that only may be under the key: that says nothing of its project)."""
    return sum(g.named for u in uses.values() for g in u.pins() if service_of(g.kind))


def _services_found(uses: dict[int, VersionUse]) -> set[str]:
    """The services where rotator's own listing found a use naming this key."""
    return {s for u in uses.values() for g in u.pins() if g.named and (s := service_of(g.kind)) is not None}


# What one bucket's objects hold, by (version name, pin kind as if the version were
# ENABLED): a group per version and kind, with the bucket's few examples, never every
# object. `classify` depends on the version's state only to tell a live object from an
# unreadable one, so the same groups serve every key (report: one listing per bucket).
BucketUses = dict[tuple[str, str], PinGroup]


def bucket_uses(
    storage: Any, bucket: Bucket, now: datetime, prefix: str | None, progress: ProgressFn | None
) -> BucketUses:
    """One streamed pass over a bucket (live + noncurrent, then soft-deleted): the groups
    of every version named `prefix...` (None: of every key)."""
    out: BucketUses = {}
    seen = 0
    for soft in (False, True):
        for obj in iter_objects_parallel(storage, bucket.name, versions=not soft, soft_deleted=soft):
            seen += 1
            if progress and seen % 10000 == 0:
                progress(bucket.name, seen)
            kv = obj.kms_key_version
            if not kv or (prefix is not None and not kv.startswith(prefix)):
                continue
            kind, frees, detail = classify(obj, bucket, ENABLED, now)
            group = out.get((kv, kind))
            if group is None:
                group = out[(kv, kind)] = PinGroup(kind, f"gs://{bucket.name}")
            if detail and not group.detail:
                group.detail = detail
            name = obj.name if obj.state == LIVE else f"{obj.name}#{obj.generation}"
            group.add(name, obj.size, frees)
    if progress:
        progress(bucket.name, seen)
    return out


def _attribute(found: BucketUses, key_name: str, uses: dict[int, VersionUse]) -> None:
    """The groups of `found` under versions of this key, into its uses (a live object
    under a version that is not ENABLED cannot be read: R14)."""
    prefix = key_name + "/cryptoKeyVersions/"
    for (kv, kind), part in found.items():
        if not kv.startswith(prefix):
            continue
        use = uses.get(int(kv[len(prefix) :]))
        if use is None:
            continue
        detail = part.detail
        if kind == LIVE_OBJECT and use.version.state != ENABLED:
            kind, detail = UNREADABLE_OBJECT, f"version is {use.version.state}"
        group = use.group(kind, part.resource)
        if detail and not group.detail:
            group.detail = detail
        group.count += part.count
        group.bytes += part.bytes
        group.dateless = group.dateless or part.dateless
        if part.frees_at is not None and (group.frees_at is None or part.frees_at > group.frees_at):
            group.frees_at = part.frees_at
        group.examples += part.examples[: EXAMPLES - len(group.examples)]


class ScanCache:
    """What `report` reads once per project for all its keys, not once per key: each
    bucket's objects (as bucket_uses groups, bounded by versions, not objects) and each
    list of the other services. A plan reads the world afresh (no cache)."""

    def __init__(self) -> None:
        self._views: dict[str, _ListedOnce] = {}
        self._buckets: dict[tuple[str, str], BucketUses] = {}

    def view(self, backend: Backend) -> Backend:
        if backend.project not in self._views:
            self._views[backend.project] = _ListedOnce(backend)
        return cast(Backend, self._views[backend.project])

    def bucket_uses(self, backend: Backend, bucket: Bucket, now: datetime) -> BucketUses:
        if (backend.project, bucket.name) not in self._buckets:
            self._buckets[(backend.project, bucket.name)] = bucket_uses(
                backend.storage, bucket, now, None, None
            )
        return self._buckets[(backend.project, bucket.name)]


class _Once:
    """A service whose `names` calls are made once per arguments; the rest pass through."""

    def __init__(self, inner: Any, names: frozenset[str]):
        self._inner, self._names = inner, names
        self._answers: dict[tuple[str, tuple[Any, ...]], Any] = {}

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if name not in self._names:
            return value

        def once(*args: Any) -> Any:
            if (name, args) not in self._answers:
                found = value(*args)
                if name.startswith("list_"):  # an iterator is read once: keep what it gave
                    found = Listing(list(found), unreachable=unreachable_of(found))
                self._answers[(name, args)] = found
            return self._answers[(name, args)]

        return once


class _ListedOnce:
    """A project as ScanCache shows it: the same, with every list a scan makes read once."""

    def __init__(self, backend: Backend):
        self._backend = backend
        self.storage = _Once(backend.storage, frozenset({"list_buckets"}))
        self.firestore = _Once(backend.firestore, frozenset({"list_databases", "list_backups"}))
        self.dataflow = _Once(backend.dataflow, frozenset({"list_jobs"}))
        self.run = _Once(backend.run, frozenset({"list_services"}))
        self.functions = _Once(
            backend.functions, frozenset({"list_functions", "list_repositories", "get_repository_key"})
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)


def _scan_project(
    backend: Backend,
    key_name: str,
    uses: dict[int, VersionUse],
    primary: int | None,
    now: datetime,
    services: list[str],
    progress: ProgressFn | None,
    cache: ScanCache | None = None,
    windows: Windows | None = None,
) -> tuple[list[Bucket], list[str]]:
    """One project's services: its buckets (and which default to the key), then the rest."""
    if cache is not None:
        backend = cache.view(backend)
    buckets = list(backend.storage.list_buckets()) if STORAGE in services else []
    default_for = []
    prefix = key_name + "/cryptoKeyVersions/"
    for bucket in buckets:
        if bucket.default_kms_key == key_name:
            default_for.append(bucket.name)
            if primary in uses:
                uses[primary].group(BUCKET_DEFAULT, f"gs://{bucket.name}").add(bucket.name)
        found = (
            cache.bucket_uses(backend, bucket, now)
            if cache is not None
            else bucket_uses(backend.storage, bucket, now, prefix, progress)
        )
        _attribute(found, key_name, uses)
    if FIRESTORE in services:
        _scan_firestore(backend, key_name, uses, primary, now)
    if "dataflow" in services:
        _scan_dataflow(backend, key_name, uses, primary)
    if RUN in services:
        _scan_run(backend, key_name, uses, primary, windows)
    if FUNCTIONS in services:
        _scan_functions(backend, key_name, uses, primary, windows)
    return buckets, default_for


def scan_key(
    backend: Backend,
    key: KeyName | str,
    *,
    services: Iterable[str] = SERVICES,
    progress: ProgressFn | None = None,
    projects: Iterable[str] = (),
    acknowledged: bool = False,
    crypto_key: CryptoKey | None = None,
    cache: ScanCache | None = None,
    replaced: tuple[int, int] | None = None,
) -> KeyInventory:
    """Inventory one key across the project's services (those in `services`), and what
    Cloud KMS Inventory says of every product. `projects`: those rotator inspected (the
    backend's by default); `acknowledged`: the operator accepted an unreadable Cloud KMS
    Inventory (plan --acknowledge-unreadable-inventory); `cache`: lists already read for
    another key of the same report (ScanCache); `replaced`: (the primary rotator's own
    apply made, the version it replaced), see primary_windows."""
    projects = tuple(projects)
    services = list(services)
    key_name = str(key)
    if crypto_key is None:  # `report` has it from the key list already: one KMS read less
        crypto_key = backend.kms.get_crypto_key(key_name)
    versions = backend.kms.list_crypto_key_versions(key_name)
    uses = {v.number: VersionUse(v, v.number == crypto_key.primary) for v in versions}
    now = backend.clock.now()
    if crypto_key.primary in uses:
        uses[crypto_key.primary].group(PRIMARY, key_name).add(key_name)
    inspected = projects or (backend.project,)
    found: set[str] = set()  # the inspected projects where rotator's listing found the key in use
    windows = primary_windows(crypto_key, versions, replaced)
    buckets, default_for = _scan_project(
        backend, key_name, uses, crypto_key.primary, now, services, progress, cache, windows
    )
    if _uses_found(uses):
        found.add(backend.project)
    for other in inspected[1:]:
        before = _uses_found(uses)
        _scan_project(
            backend.for_project(other),
            key_name,
            uses,
            crypto_key.primary,
            now,
            services,
            progress,
            cache,
            windows,
        )
        if _uses_found(uses) > before:
            found.add(other)
    view = read_kms_inventory(
        backend,
        key_name,
        uses,
        projects=inspected,
        acknowledged=acknowledged,
        found=found,
        services=services,
    )
    uninspected = [s for s in SERVICES if s not in services]
    return KeyInventory(crypto_key, now, uses, buckets, default_for, uninspected, view)


def _version_use(uses: dict[int, VersionUse], key: str, version: str | None) -> VersionUse | None:
    prefix = key + "/cryptoKeyVersions/"
    if not version or not version.startswith(prefix):
        return None
    return uses.get(int(version[len(prefix) :]))


def _versions_used(
    uses: dict[int, VersionUse], key: str, version: str | None, resource_key: str | None
) -> list[VersionUse]:
    """The versions a resource depends on. Some APIs do not say which version a resource
    was encrypted under (a Firestore backup, a Dataflow job, a Cloud Run revision not
    deployed by rotator): then it may be any version of its key, and the safe side is
    that it pins them all (when unsure, assume in use: rotator.rules)."""
    use = _version_use(uses, key, version)
    if use is not None:
        return [use]
    if version is None and resource_key == key:
        return list(uses.values())
    return []


def _pin_unlisted(uses: dict[int, VersionUse], service: str, listing: Iterable[object]) -> None:
    """Every version is pinned by each location a list could not reach."""
    for location in unreachable_of(listing):
        for use in uses.values():
            use.group(UNLISTED, f"{service} in {location}").add(location)


def _pin_primary(uses: dict[int, VersionUse], primary: int | None, kind: str, resource: str) -> None:
    if primary in uses:
        uses[primary].group(kind, resource).add(resource)


def _elsewhere(name: str, backend: Backend) -> bool:
    """A resource named under another project than the one inspected: that project's
    own inspection (--project) accounts for it, not this one's."""
    parts = name.split("/")
    return (
        len(parts) > 1
        and parts[0] == "projects"
        and parts[1] not in (backend.project, backend.project_number)
    )


def _scan_firestore(
    backend: Backend, key: str, uses: dict[int, VersionUse], primary: int | None, now: datetime
) -> None:
    listed = backend.firestore.list_databases()
    _pin_unlisted(uses, "Firestore databases", listed)
    for db in listed:
        if _elsewhere(db.name, backend):
            continue
        if db.kms_key == key:
            _pin_primary(uses, primary, FIRESTORE_KEY, db.name)
        for version in db.active_key_versions:
            use = _version_use(uses, key, version)
            if use is not None:
                # Still being re-encrypted away from: frees when the re-encryption is due.
                leaving = db.reencryption_due is not None and version != db.active_key_versions[-1]
                use.group(FIRESTORE_ACTIVE, db.name).add(db.name, 0, db.reencryption_due if leaving else None)
    databases = {db.name: db for db in listed}
    backups = backend.firestore.list_backups()
    _pin_unlisted(uses, "Firestore backups", backups)
    for backup in backups:
        if _elsewhere(backup.name, backend):
            continue
        source, known = _backup_key(backup, databases)
        # Neither a version nor a database names the key: it may be any key (the safe side),
        # which pins, but is no evidence the key is in use in this project.
        inferred = not known and _version_use(uses, key, backup.kms_key_version) is None
        for use in _versions_used(uses, key, backup.kms_key_version, source if known else key):
            g = use.group(FIRESTORE_BACKUP, backup.database)
            g.add(backup.name, 0, backup.expire_time)
            g.inferred += inferred


def _backup_key(backup: Backup, databases: dict[str, Database]) -> tuple[str | None, bool]:
    """The key a backup is under (None: Google default encryption), and whether anything
    says so. The Backup resource names
    only its database (R24): the database's key when that database still exists (a key is
    fixed at creation, R20). A database deleted, or deleted and created again under the
    same name (another uid), says nothing about its backups: the caller takes them to be
    under the key it inspects (the safe side), without counting that as a use it found."""
    source = databases.get(backup.database)
    same = source is not None and (
        not backup.database_uid or not source.uid or source.uid == backup.database_uid
    )
    return (source.kms_key, True) if source is not None and same else (None, False)


def _scan_dataflow(backend: Backend, key: str, uses: dict[int, VersionUse], primary: int | None) -> None:
    jobs = backend.dataflow.list_jobs()
    _pin_unlisted(uses, "Dataflow jobs", jobs)
    for job in jobs:
        if not job.running:
            continue
        where = f"dataflow job {job.id} ({job.name}, {job.region})"
        if job.kms_key == key:
            _pin_primary(uses, primary, DATAFLOW_KEY, where)
        for use in _versions_used(uses, key, job.kms_key_version, job.kms_key):
            use.group(DATAFLOW_JOB, where).add(job.id)


def run_services(backend: Backend, key: str) -> list[RunService]:
    """The Cloud Run services that can use `key`: those of its region (R7). Cloud Run
    lists one region at a time; a multi-region or global key serves none."""
    region = key_region(key)
    return backend.run.list_services(region) if region else []


def inspected_run_services(backend: Backend, key: str, projects: Iterable[str]) -> list[RunService]:
    """The Cloud Run services of every inspected project (--project) that can use `key`."""
    out: list[RunService] = []
    for project in dict.fromkeys(projects or (backend.project,)):
        view = backend.for_project(project)
        out += [s for s in run_services(view, key) if not _elsewhere(s.name, view)]
    return out


def _scan_run(
    backend: Backend,
    key: str,
    uses: dict[int, VersionUse],
    primary: int | None,
    windows: Windows | None = None,
) -> None:
    for service in run_services(backend, key):
        if _elsewhere(service.name, backend):
            continue
        latest = service.latest
        if latest is not None and latest.kms_key == key:
            _pin_primary(uses, primary, RUN_KEY, service.name)
        for rev in service.revisions:
            kind = RUN_SERVING if rev.serving else RUN_IDLE  # a tag's URL serves too
            for use in _versions_used(uses, key, rev.kms_key_version, rev.kms_key):
                use.group(kind, service.name).add(rev.name)
            _pin_window(windows, uses, kind, rev.kms_key_version, rev.deployed, service.name, rev.name)


def _scan_functions(
    backend: Backend,
    key: str,
    uses: dict[int, VersionUse],
    primary: int | None,
    windows: Windows | None = None,
) -> None:
    repositories: set[str] = set()
    functions = backend.functions.list_functions()
    _pin_unlisted(uses, "Cloud Run functions", functions)
    for fn in functions:
        if _elsewhere(fn.name, backend):
            continue
        if fn.kms_key == key:
            _pin_primary(uses, primary, FUNCTION_KEY, fn.name)
        if fn.docker_repository:
            repositories.add(fn.docker_repository)
        for use in _versions_used(uses, key, fn.kms_key_version, fn.kms_key):
            use.group(FUNCTION, fn.name).add(fn.name)
        _pin_window(windows, uses, FUNCTION, fn.kms_key_version, fn.deployed, fn.name, fn.name)
    for repo in sorted(repositories):
        if backend.functions.get_repository_key(repo) == key:
            _pin_primary(uses, primary, REPOSITORY_KEY, repo)
    _scan_repository_images(backend, key, uses)


def _scan_repository_images(backend: Backend, key: str, uses: dict[int, VersionUse]) -> None:
    """Every Artifact Registry repository under the key (of its region, R7) holds images
    pushed under each version that was primary meanwhile; unknown versions: all of them."""
    region = key_region(key)
    for repo, repo_key in backend.functions.list_repositories(region) if region else []:
        if repo_key != key:
            continue
        versions = backend.functions.repository_image_versions(repo, key)
        held = (
            list(uses.values())
            if versions is None
            else [u for v in versions if (u := _version_use(uses, key, v)) is not None]
        )
        for use in held:
            use.group(REPOSITORY_IMAGES, repo).add(repo)


ORGANIZATION_ENV = "ROTATOR_ORGANIZATION"
INVENTORY_API = "Cloud KMS Inventory API (kmsinventory.googleapis.com)"
SUMMARY_NEEDS = "cloudkms.cryptoKeys.get on the key (roles/cloudkms.viewer)"
SEARCH_NEEDS = (
    "cloudkms.protectedResources.search on the organization (roles/cloudkms.protectedResourcesViewer)"
)


@dataclass
class KmsInventoryView:
    """What Cloud KMS Inventory said of one key, and what rotator made of it."""

    key: str
    summary: ProtectedResourcesSummary | None = None
    resources: list[ProtectedResource] | None = None  # the search: only with an organization
    errors: list[str] = field(default_factory=list)  # one line per API that could not be read
    notes: list[str] = field(default_factory=list)  # where it and rotator's listing disagree
    uncovered: dict[str, int] = field(default_factory=dict)  # resource type -> count
    other_projects: list[str] = field(default_factory=list)  # projects rotator did not inspect
    projects: tuple[str, ...] = ()
    acknowledged: bool = False

    @property
    def readable(self) -> bool:
        return self.summary is not None or self.resources is not None

    def line(self) -> str:
        """One line for the plan and the inventory table."""
        if not self.readable:
            head = f"UNREADABLE: {'; '.join(self.errors)}"
            if self.acknowledged:
                return head + "; ACKNOWLEDGED by the operator: versions may be disabled and destroyed"
            return head + "; every version is assumed in use (R14)"
        total = len(self.resources) if self.resources is not None else self.summary.resource_count  # type: ignore[union-attr]
        source = (
            "summary and search"
            if self.resources is not None and self.summary
            else ("search" if self.resources is not None else "summary, no organization to search")
        )
        uncovered = sum(self.uncovered.values())
        text = f"{total} resource(s) listed ({source}), {uncovered} not covered by rotator"
        if self.uncovered:
            text += " (" + ", ".join(f"{t}: {n}" for t, n in sorted(self.uncovered.items())) + ")"
        if self.other_projects:
            text += f"; in projects not inspected: {', '.join(self.other_projects)}"
        return text

    def to_json(self) -> dict[str, Any]:
        return {
            "readable": self.readable,
            "summary": None
            if self.summary is None
            else {
                "resource_count": self.summary.resource_count,
                "project_count": self.summary.project_count,
                "resource_types": self.summary.resource_types,
                "cloud_products": self.summary.cloud_products,
            },
            "searched": self.resources is not None,
            "errors": self.errors,
            "notes": self.notes,
            "not_covered": self.uncovered,
            "projects_inspected": list(self.projects),
            "projects_not_inspected": self.other_projects,
            "acknowledged_unreadable": self.acknowledged,
        }


def _service_of(resource_type: str) -> str | None:
    """The service of rotator's five that lists a resource type (`PRODUCT/Type`), if any."""
    return COVERED_PRODUCTS.get(resource_type.split("/", 1)[0])


def _covered(resource_type: str) -> bool:
    return _service_of(resource_type) is not None


def _unreadable(api_name: str, needs: str, error: api.ApiError) -> str:
    why = {"PERMISSION_DENIED": "permission denied", "NOT_FOUND": "not found"}.get(
        error.code, f"{error.code} (unreachable)"
    )
    return f"{INVENTORY_API} {api_name}: {why}; it needs the API enabled and {needs}"


def read_kms_inventory(
    backend: Backend,
    key: str,
    uses: dict[int, VersionUse],
    *,
    projects: tuple[str, ...],
    acknowledged: bool = False,
    found: set[str] | None = None,
    services: Iterable[str] = SERVICES,
) -> KmsInventoryView:
    """Read the per-key summary (always) and the search (with an organization). A
    resource of a product rotator does not cover pins the versions it lists (every
    version when its versions are not listed, as in the summary); resources in projects
    rotator did not inspect pin the same way; and when neither can be read, every
    version is assumed in use (R14) unless the operator acknowledged it. `found`: the
    inspected projects where rotator's listing found a use naming this key."""
    view = KmsInventoryView(key, projects=projects, acknowledged=acknowledged)
    try:
        view.summary = backend.inventory.get_protected_resources_summary(key)
    except api.ApiError as e:
        view.errors.append(_unreadable("GetProtectedResourcesSummary", SUMMARY_NEEDS, e))
    if backend.organization:
        try:
            view.resources = backend.inventory.search_protected_resources(backend.organization, key)
        except api.ApiError as e:
            view.errors.append(_unreadable("SearchProtectedResources", SEARCH_NEEDS, e))
    elif view.summary is None:
        view.errors.append(f"no organization to search ({ORGANIZATION_ENV} is not set)")
    every = list(uses.values())
    if not view.readable:
        if not acknowledged:
            for use in every:
                use.group(INVENTORY_UNREADABLE, INVENTORY_API).add(key)
        return view
    if view.resources is not None:
        _pin_from_search(view, key, uses, projects)
    else:
        _pin_from_summary(view, key, uses, projects, found if found is not None else set(projects[:1]))
    _compare_products(view, uses, projects, list(services))
    return view


def _pin_from_search(
    view: KmsInventoryView, key: str, uses: dict[int, VersionUse], projects: tuple[str, ...]
) -> None:
    assert view.resources is not None
    for r in view.resources:
        other_project = bool(r.project) and r.project not in projects
        if _covered(r.resource_type) and not other_project:
            continue  # rotator's own listing is the authority here
        targets = [u for v in r.versions if (u := _version_use(uses, key, v)) is not None] or list(
            uses.values()
        )
        if not _covered(r.resource_type):
            view.uncovered[r.resource_type] = view.uncovered.get(r.resource_type, 0) + 1
            kind = UNCOVERED
        else:
            kind = OTHER_PROJECT
        if other_project and r.project not in view.other_projects:
            view.other_projects.append(r.project)
        for use in targets:
            g = use.group(kind, r.resource_type if kind == UNCOVERED else r.project)
            g.add(r.name)
            if other_project and not g.detail:
                g.detail = f"in project {r.project}, not inspected"


def _pin_from_summary(
    view: KmsInventoryView,
    key: str,
    uses: dict[int, VersionUse],
    projects: tuple[str, ...],
    found: set[str],
) -> None:
    """The summary names no resource and no version: each uncovered type pins them all."""
    s = view.summary
    assert s is not None
    for rtype, count in sorted(s.resource_types.items()):
        if _covered(rtype) or count <= 0:
            continue
        view.uncovered[rtype] = count
        for use in uses.values():
            g = use.group(UNCOVERED, rtype)
            g.count += count
            g.dateless = True
    # Where rotator's listing found a use naming the key, it knows every use; the
    # uncovered resources (pinned above) may account for one project each; the summary
    # counting more projects than those means uses in a project rotator did not inspect.
    explained = sum(view.uncovered.values())
    missing = s.project_count - len(found) - explained
    if missing > 0:
        view.other_projects.append(f"{missing} project(s) the summary counts")
        for use in uses.values():
            g = use.group(OTHER_PROJECT, f"{missing} other project(s)")
            g.count += sum(s.resource_types.values())
            g.dateless = True
            g.detail = (
                f"Cloud KMS Inventory counts resources in {s.project_count} project(s); rotator found "
                f"the key in use in {len(found)} of those it inspected ({', '.join(projects)})"
            )
            if explained:
                g.detail += f", and {explained} resource(s) of products it does not cover may be in others"


def _compare_products(
    view: KmsInventoryView,
    uses: dict[int, VersionUse],
    projects: tuple[str, ...],
    services: list[str],
) -> None:
    """Say where Cloud KMS Inventory and rotator's listing disagree on the five products.
    The listing is the authority for what it can see (the inventory is built from
    snapshots and can lag); but a resource the inventory counts that the listing cannot
    place may be in a project rotator did not inspect. With the search, its project is
    named (pinned by _pin_from_search when not inspected); with only the summary, nothing
    says, so it pins every version (the safe side) until its project is inspected or an
    organization lets the search place it."""
    found = _services_found(uses)
    listed: dict[str, dict[str, int]] = {}  # service -> resource type -> count (inspected)
    elsewhere: dict[str, set[str]] = {}  # service -> projects not inspected (the search)
    if view.resources is not None:
        for r in view.resources:
            service = _service_of(r.resource_type)
            if service is None:
                continue
            if r.project and r.project not in projects:
                elsewhere.setdefault(service, set()).add(r.project)
            else:
                types = listed.setdefault(service, {})
                types[r.resource_type] = types.get(r.resource_type, 0) + 1
    elif view.summary is not None:
        for rtype, count in view.summary.resource_types.items():
            service = _service_of(rtype)
            if service is not None and count > 0:
                listed.setdefault(service, {})[rtype] = count
    inspected = ", ".join(projects)
    for service in SERVICES:
        if service in elsewhere:
            view.notes.append(
                f"Cloud KMS Inventory lists {service} resources on the key in project(s) rotator did "
                f"not inspect ({', '.join(sorted(elsewhere[service]))}): they pin the versions they "
                "use until that project is inspected too (--project)"
            )
        if service in found:
            if service not in listed and service not in elsewhere:
                view.notes.append(
                    f"rotator found {service} resources on the key that Cloud KMS Inventory does not "
                    "list yet (it can lag); rotator's listing is the authority"
                )
            continue
        if service not in listed:
            continue
        if service not in services:
            view.notes.append(
                f"Cloud KMS Inventory lists {service} resources on the key; rotator did not inspect "
                f"{service} (--services)"
            )
        elif view.resources is not None:
            view.notes.append(
                f"Cloud KMS Inventory lists {service} resources on the key in the inspected project(s) "
                f"({inspected}) that rotator's listing did not find; rotator's listing is the "
                "authority there (the inventory can lag)"
            )
        else:
            view.notes.append(
                f"Cloud KMS Inventory lists {service} resources on the key that rotator's listing did "
                f"not find in the inspected project(s) ({inspected}): rotator's listing is the "
                "authority there (the inventory can lag), but the summary does not say which project "
                "they are in and they may be in one rotator did not inspect, so every version stays "
                f"pinned (inspect it with --project, or set {ORGANIZATION_ENV} to search)"
            )
            for rtype, count in sorted(listed[service].items()):
                for use in uses.values():
                    g = use.group(OTHER_PROJECT, rtype)
                    g.count += count
                    g.dateless = True
                    g.detail = (
                        f"Cloud KMS Inventory counts {count} on the key; rotator's listing found none in "
                        f"the inspected project(s) ({inspected}): it may be in a project rotator did "
                        "not inspect"
                    )
