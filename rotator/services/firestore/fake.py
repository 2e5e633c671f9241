"""Fake Firestore (R20-R24): a database's key is fixed at creation; a new primary is
re-encrypted `reencrypt_after` later on the fake clock; every data call fails with
FAILED_PRECONDITION while an active version is unusable; backups keep the version
they were taken under; restore into a new database under a chosen key."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from rotator import apierrors as api
from rotator.agents import agents
from rotator.backends.fake.documents import check_key_name, encrypt_version, find, load_docs, save_docs
from rotator.backends.fake.events import logs_key_failures
from rotator.backends.fake.inventory import project_of, versions_of
from rotator.backends.fake.kms import FakeKms
from rotator.backends.fake.shared import FakeWorld
from rotator.backends.fake.store import Store
from rotator.locations import database_key_location_ok, key_location_for_database
from rotator.model import Backup, Database, Listing, ProtectedResource
from rotator.names import key_of, location_of
from rotator.services.firestore.spec import SPEC
from rotator.timeutil import format_time, parse_duration, parse_time

NOT_ACCESSIBLE = "The customer-managed encryption key required by the requested resource is not accessible"


class FakeFirestore:
    def __init__(self, store: Store, kms: FakeKms, project: str, project_number: str):
        self.store, self.kms, self.project = store, kms, project
        # Locations an all-locations list cannot reach (tests; see FakeBackend.unreachable).
        self.unreachable: set[str] = set()
        self.agent = agents(SPEC.name, project_number)[0]

    @staticmethod
    def _to_db(d: dict[str, Any]) -> Database:
        pending = d.get("pending_reencryption")
        return Database(
            name=d["database"],
            location=d.get("location", ""),
            kms_key=d.get("kms_key"),
            active_key_versions=tuple(d.get("active_key_versions", [])),
            reencryption_due=parse_time(pending["due"]) if pending else None,
            uid=d.get("uid", ""),
        )

    def list_databases(self) -> list[Database]:
        """The databases that exist (a `deleted` one is gone; its backups remain), as a
        partial list when some location is in `unreachable` (ListDatabasesResponse)."""
        with self.store.read() as c:
            found = [self._to_db(d) for d in load_docs(c, "firestore") if not d.get("deleted")]
        return Listing([d for d in found if d.location not in self.unreachable], unreachable=self.unreachable)

    def get_database(self, name: str) -> Database:
        with self.store.read() as c:
            live = [d for d in load_docs(c, "firestore") if not d.get("deleted")]
            return self._to_db(find(live, "database", name, "database"))

    def list_backups(self) -> list[Backup]:
        """Every location's backups ("-"), as a partial list when some location is in
        `unreachable` (ListBackupsResponse.unreachable). Backups outlive their database:
        those of a `deleted` one are listed until they expire."""
        out = []
        with self.store.read() as c:
            for d in load_docs(c, "firestore"):
                for b in d.get("backups", []):
                    if location_of(b["backup"]) in self.unreachable:
                        continue
                    out.append(
                        Backup(
                            name=b["backup"],
                            database=d["database"],
                            snapshot_time=parse_time(b.get("snapshot_time", "1970-01-01T00:00:00Z")),
                            expire_time=parse_time(b["expire_time"]),
                            kms_key_version=b.get("kms_key_version"),
                            database_uid=b.get("database_uid", d.get("uid", "")),
                        )
                    )
        return Listing(out, unreachable=self.unreachable)

    def update_database_kms_key(self, name: str, kms_key: str | None) -> Database:
        db = self.get_database(name)
        if kms_key != db.kms_key:
            raise api.FailedPrecondition(
                f"{name}: a database's CMEK key is fixed at creation and cannot be added or "
                "changed; restore a backup into a new database under the new key (R20)",
                resource=name,
                rule="R20",
            )
        return db

    @logs_key_failures("Firestore")
    def read(self, name: str) -> None:
        """Any data call (read, write, export): needs every active version (R22)."""
        with self.store.read() as c:
            d = find(load_docs(c, "firestore"), "database", name, "database")
            self._check_accessible(c, d.get("active_key_versions", []), name)

    def _check_accessible(self, c: sqlite3.Connection, versions: list[str], resource: str) -> None:
        for version in versions:
            try:
                self.kms.check_usable(c, version, self.agent, service="Firestore", purpose="serve")
            except api.ApiError as e:
                raise api.FailedPrecondition(
                    f"{resource}: {NOT_ACCESSIBLE} ({e.message}) (R22)", resource=resource, rule="R22"
                ) from None

    def restore_database(
        self, database_id: str, backup: str, *, kms_key: str | None, use_backup_encryption: bool = False
    ) -> Database:
        """Restore into a new database: under a new CMEK key, Google default (None), or
        the backup's own encryption (R24)."""
        with self.store.write() as c:
            docs = load_docs(c, "firestore")
            source = next((d for d in docs for b in d.get("backups", []) if b["backup"] == backup), None)
            if source is None:
                raise api.NotFound(f"backup {backup} not found", resource=backup)
            b = next(b for b in source.get("backups", []) if b["backup"] == backup)
            name = f"projects/{self.project}/databases/{database_id}"
            if any(d["database"] == name for d in docs):
                raise api.AlreadyExists(f"database {name} already exists", resource=name)
            if b.get("kms_key_version"):
                self._check_accessible(c, [b["kms_key_version"]], backup)
            location = source.get("location", "")
            active: list[str] = []
            key = None
            if use_backup_encryption and b.get("kms_key_version"):
                key = key_of(b["kms_key_version"])
                active = [b["kms_key_version"]]
            elif kms_key:
                key = check_key_name(kms_key, service="Firestore")
                if not database_key_location_ok(location, location_of(key)):
                    raise api.InvalidArgument(
                        f"Firestore: database in {location} needs a key in "
                        f"{key_location_for_database(location)}, not {location_of(key)} (R7)",
                        resource=name,
                        rule="R7",
                    )
                active = [encrypt_version(c, self.kms, key, [self.agent], service="Firestore")]
            docs.append(
                {
                    "database": name,
                    "location": location,
                    "kms_key": key,
                    "active_key_versions": active,
                    "reencrypt_after": source.get("reencrypt_after", "6h"),
                    "backups": [],
                }
            )
            save_docs(c, "firestore", docs)
            return self._to_db(docs[-1])

    # -- time and KMS events -------------------------------------------------------------
    def on_primary_changed(self, c: sqlite3.Connection, key: str, version: str) -> None:
        """A new primary: re-encryption starts; both versions are active until it is done (R21)."""
        docs = load_docs(c, "firestore")
        now = self.store.now()
        for d in docs:
            if d.get("kms_key") != key or version in d.get("active_key_versions", []):
                continue
            due = now + parse_duration(d.get("reencrypt_after", "6h"))
            d["active_key_versions"] = list(dict.fromkeys([*d.get("active_key_versions", []), version]))
            d["pending_reencryption"] = {"to": version, "due": format_time(due)}
        save_docs(c, "firestore", docs)
        self.advance_to(c, format_time(now))

    def protected_resources(self, key: str, home: str) -> Iterator[ProtectedResource]:
        """What Cloud KMS Inventory says its databases and backups hold of `key` (the fake's inventory,
        rotator/backends/fake/inventory.py), each under its project (`home` if its name
        does not say)."""
        for d in self.list_databases():
            versions = versions_of(key, d.active_key_versions)
            if versions or d.kms_key == key:
                name = f"//firestore.googleapis.com/{d.name}"
                yield ProtectedResource(
                    name, "firestore.googleapis.com/Database", versions, project_of(name, home)
                )
        for bk in self.list_backups():
            versions = versions_of(key, [bk.kms_key_version])
            if versions:
                name = f"//firestore.googleapis.com/{bk.name}"
                yield ProtectedResource(
                    name, "firestore.googleapis.com/Backup", versions, project_of(name, home)
                )

    def resource_names(self, c: sqlite3.Connection) -> list[str]:
        """The names of its resources as the world keeps them, each under its project
        (FakeBackend.projects: the projects the wire servers answer for)."""
        return [d["database"] for d in load_docs(c, "firestore")]

    def advance_to(self, c: sqlite3.Connection, now: str) -> None:
        moment = parse_time(now)
        docs = load_docs(c, "firestore")
        for d in docs:
            pending = d.get("pending_reencryption")
            if pending and parse_time(pending["due"]) <= moment:
                d["active_key_versions"] = [pending["to"]]
                del d["pending_reencryption"]
            d["backups"] = [b for b in d.get("backups", []) if not _expired(b, moment)]
        save_docs(c, "firestore", docs)


def _expired(backup: dict[str, Any], now: datetime) -> bool:
    return "expire_time" in backup and parse_time(backup["expire_time"]) <= now


def connect(backend: FakeWorld) -> FakeFirestore:
    """This service's fake in `backend`'s world (rotator/backends/fake/__init__.py)."""
    fake = FakeFirestore(backend.store, backend.kms, backend.project, backend.project_number)
    fake.unreachable = backend.unreachable  # one set for every all-locations list (tests)
    return fake
