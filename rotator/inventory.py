"""What each version of a key protects, and what pins it (DOMAIN "What pins a version").

One streamed pass per bucket (live + noncurrent, then soft-deleted); nothing holds
every object in memory. Uses are aggregated per (version, bucket, kind) with a few
example names, the count, the bytes and the date the group frees the version.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from rotator.agents import SERVICES, STORAGE
from rotator.backends.base import Backend, iter_objects
from rotator.model import (
    ENABLED,
    LIVE,
    NONCURRENT,
    SOFT_DELETED,
    Bucket,
    CryptoKey,
    CryptoKeyVersion,
    ObjectInfo,
)
from rotator.names import KeyName
from rotator.storage_rules import locked, overwrite_blocker, retention_expiry

EXAMPLES = 5

# Pin kinds, with the rule, whether they block disable / destroy, and what frees them.
PRIMARY = "primary"
BUCKET_DEFAULT = "bucket_default"
LIVE_OBJECT = "live_object"
UNREADABLE_OBJECT = "unreadable_object"
HELD_OBJECT = "held_object"
RETAINED_OBJECT = "retained_object"
NONCURRENT_GENERATION = "noncurrent_generation"
SOFT_DELETED_GENERATION = "soft_deleted_generation"


@dataclass(frozen=True)
class PinKind:
    rule: str
    blocks_disable: bool
    blocks_destroy: bool
    frees_when: str
    rewritable: bool = False


PIN_KINDS: dict[str, PinKind] = {
    PRIMARY: PinKind("R3", True, True, "another version is primary"),
    BUCKET_DEFAULT: PinKind("R15", True, True, "the bucket's default key is switched (R13.1)"),
    LIVE_OBJECT: PinKind("R14", True, True, "rewritten under another version", rewritable=True),
    UNREADABLE_OBJECT: PinKind("R14", False, True, "the version is re-enabled and the object rewritten"),
    HELD_OBJECT: PinKind("R16", True, True, "the hold is released, then rewritten"),
    RETAINED_OBJECT: PinKind("R16", True, True, "retention expires, then rewritten"),
    NONCURRENT_GENERATION: PinKind("R18", True, True, "deleted (e.g. by lifecycle)"),
    SOFT_DELETED_GENERATION: PinKind("R18", False, True, "its hard-delete time"),
}


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

    @property
    def spec(self) -> PinKind:
        return PIN_KINDS[self.kind]

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
            "frees_when": self.spec.frees_when,
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
        return list(self.groups.values())


@dataclass
class KeyInventory:
    key: CryptoKey
    now: datetime
    versions: dict[int, VersionUse]
    buckets: list[Bucket]
    default_for: list[str]  # buckets whose default key is this key
    uninspected: list[str] = field(default_factory=list)  # services left out by --services

    def version(self, number: int) -> VersionUse:
        return self.versions[number]

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


def scan_key(
    backend: Backend,
    key: KeyName | str,
    *,
    services: Iterable[str] = SERVICES,
    progress: ProgressFn | None = None,
) -> KeyInventory:
    """Inventory one key across the project's services (those in `services`)."""
    services = list(services)
    key_name = str(key)
    crypto_key = backend.kms.get_crypto_key(key_name)
    versions = backend.kms.list_crypto_key_versions(key_name)
    uses = {v.number: VersionUse(v, v.number == crypto_key.primary) for v in versions}
    now = backend.clock.now()
    if crypto_key.primary in uses:
        uses[crypto_key.primary].group(PRIMARY, key_name).add(key_name)
    buckets = list(backend.storage.list_buckets()) if STORAGE in services else []
    default_for = []
    prefix = key_name + "/cryptoKeyVersions/"
    for bucket in buckets:
        if bucket.default_kms_key == key_name:
            default_for.append(bucket.name)
            if crypto_key.primary in uses:
                uses[crypto_key.primary].group(BUCKET_DEFAULT, f"gs://{bucket.name}").add(bucket.name)
        seen = 0
        for soft in (False, True):
            for obj in iter_objects(backend.storage, bucket.name, versions=not soft, soft_deleted=soft):
                seen += 1
                if progress and seen % 10000 == 0:
                    progress(bucket.name, seen)
                kv = obj.kms_key_version
                if not kv or not kv.startswith(prefix):
                    continue
                use = uses.get(int(kv[len(prefix) :]))
                if use is None:
                    continue
                kind, frees, detail = classify(obj, bucket, use.version.state, now)
                group = use.group(kind, f"gs://{bucket.name}")
                if detail and not group.detail:
                    group.detail = detail
                name = obj.name if obj.state == LIVE else f"{obj.name}#{obj.generation}"
                group.add(name, obj.size, frees)
        if progress:
            progress(bucket.name, seen)
    uninspected = [s for s in SERVICES if s not in services]
    return KeyInventory(crypto_key, now, uses, buckets, default_for, uninspected)
