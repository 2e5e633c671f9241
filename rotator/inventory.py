"""What each version of a key protects, and what pins it (README, "What pins a version"):
every inspected project's services, each by its own scanner
(rotator/services/<name>/uses.py, in registry order), then what Cloud KMS Inventory
says of every product (rotator.kms_inventory).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from rotator.backends.base import ReadOnlyBackend
from rotator.kms_inventory import KmsInventoryView, read_kms_inventory
from rotator.model import Bucket, CryptoKey
from rotator.names import KeyName
from rotator.pins import VersionUse, pin_primary, uses_found
from rotator.scan import ProgressFn, Scan, ScanCache
from rotator.services import REGISTRY, SERVICES, part, service_of
from rotator.services.core import PRIMARY
from rotator.services.storage.spec import LIVE_OBJECT
from rotator.services.storage.spec import SPEC as STORAGE
from rotator.windows import Windows, primary_windows


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
        found = {s for u in self.versions.values() for g in u.groups.values() if (s := service_of(g.kind))}
        if self.default_for:
            found.add(STORAGE.name)
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


def _scan_project(
    backend: ReadOnlyBackend,
    key_name: str,
    uses: dict[int, VersionUse],
    primary: int | None,
    now: datetime,
    services: list[str],
    progress: ProgressFn | None,
    cache: ScanCache | None,
    windows: Windows,
) -> Scan:
    """One project's services, each by its own scanner, in registry order (Cloud
    Storage first: its buckets, and which default to the key, then the rest)."""
    if cache is not None:
        backend = cache.view(backend)
    scan = Scan(backend, key_name, uses, primary, now, windows, progress, cache)
    for service in REGISTRY:
        if service.name in services:
            part(service.name, "uses").scan(scan)
    return scan


def scan_key(
    backend: ReadOnlyBackend,
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
    prepare = getattr(backend, "prepare", None)  # the gcp backend: see GcpBackend.prepare
    if prepare is not None:
        prepare([s for s in services if s != STORAGE.name])
    if crypto_key is None:  # `report` has it from the key list already: one KMS read less
        crypto_key = backend.kms.get_crypto_key(key_name)
    versions = backend.kms.list_crypto_key_versions(key_name)
    uses = {v.number: VersionUse(v, v.number == crypto_key.primary) for v in versions}
    now = backend.clock.now()
    pin_primary(uses, crypto_key.primary, PRIMARY, key_name)
    inspected = projects or (backend.project,)
    found: set[str] = set()  # the inspected projects where rotator's listing found the key in use
    windows = primary_windows(crypto_key, versions, replaced)
    first = _scan_project(
        backend, key_name, uses, crypto_key.primary, now, services, progress, cache, windows
    )
    if uses_found(uses):
        found.add(backend.project)
    for other in inspected[1:]:
        before = uses_found(uses)
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
        if uses_found(uses) > before:
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
    return KeyInventory(crypto_key, now, uses, first.buckets, first.default_for, uninspected, view)
