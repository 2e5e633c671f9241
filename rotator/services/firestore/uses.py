"""Firestore's uses of a key: databases created under it (R20), the versions still
holding their data (R21), and backups (R24)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from rotator.backends.base import ReadOnlyBackend
from rotator.locations import LocationTarget, key_location_for_database
from rotator.model import Backup, Database
from rotator.pins import pin_primary, pin_unlisted, version_use, versions_used
from rotator.scan import Scan, elsewhere
from rotator.services.firestore.spec import FIRESTORE_ACTIVE, FIRESTORE_BACKUP, FIRESTORE_KEY
from rotator.services.firestore.spec import SPEC as FIRESTORE

if TYPE_CHECKING:
    from rotator.inventory import KeyInventory


def location_targets(
    backend: ReadOnlyBackend, inventory: KeyInventory, params: Mapping[str, Any]
) -> list[LocationTarget]:
    """With `firestore: restore` the databases under the key are restored under the new
    one, which must be in the KMS location their own location maps to (R7; a database
    left in place keeps its key: R20)."""
    key = inventory.key.name
    if params.get("firestore") != "restore":
        return []
    return [
        (d.name, d.location, key_location_for_database(d.location))
        for d in FIRESTORE.reads(backend).list_databases()
        if d.kms_key == key
    ]


def scan(s: Scan) -> None:
    backend, key, uses, primary = s.backend, s.key, s.uses, s.primary
    listed = FIRESTORE.reads(backend).list_databases()
    pin_unlisted(uses, "Firestore databases", listed)
    for db in listed:
        if elsewhere(db.name, backend):
            continue
        if db.kms_key == key:
            pin_primary(uses, primary, FIRESTORE_KEY, db.name)
        for version in db.active_key_versions:
            use = version_use(uses, key, version)
            if use is not None:
                # Still being re-encrypted away from: frees when the re-encryption is due.
                leaving = db.reencryption_due is not None and version != db.active_key_versions[-1]
                use.group(FIRESTORE_ACTIVE, db.name).add(db.name, 0, db.reencryption_due if leaving else None)
    databases = {db.name: db for db in listed}
    backups = FIRESTORE.reads(backend).list_backups()
    pin_unlisted(uses, "Firestore backups", backups)
    for backup in backups:
        if elsewhere(backup.name, backend):
            continue
        source, known = _backup_key(backup, databases)
        # Neither a version nor a database names the key: it may be any key (the safe side),
        # which pins, but is no evidence the key is in use in this project.
        inferred = not known and version_use(uses, key, backup.kms_key_version) is None
        for use in versions_used(uses, key, backup.kms_key_version, source if known else key):
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
