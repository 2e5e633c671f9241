"""Firestore's admin API as rotator calls it (databases, backups, restores); planning
sees FirestoreReads only (SPEC.reads)."""

from __future__ import annotations

from typing import Protocol

from rotator.model import Backup, Database


class FirestoreReads(Protocol):
    def list_databases(self) -> list[Database]: ...

    def get_database(self, name: str) -> Database: ...

    def list_backups(self) -> list[Backup]: ...


class FirestoreAdminApi(FirestoreReads, Protocol):
    def restore_database(
        self, database_id: str, backup: str, *, kms_key: str | None, use_backup_encryption: bool = False
    ) -> Database: ...
