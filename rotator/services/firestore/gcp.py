"""Firestore through google-cloud-firestore-admin (firestore_admin_v1), as the Backend
protocol needs it: databases with their key and active key versions, backups (which
do not say their version, R24: any of their key's), restoring a backup under a key."""

from __future__ import annotations

from typing import Any

from rotator.backends.gcp.connect import grpc_transport
from rotator.backends.gcp.errors import translated
from rotator.backends.gcp.retry import RetryPolicy
from rotator.backends.gcp.shared import EPOCH, OPERATION_TIMEOUT, GcpWorld
from rotator.model import Backup, Database, Listing
from rotator.names import location_of


def connect(backend: GcpWorld) -> GcpFirestore:
    """The adapter over the Firestore Admin client (its library imported here, on first
    use: a plan that never reads Firestore never loads it)."""
    from google.cloud import firestore_admin_v1
    from google.cloud.firestore_admin_v1.services.firestore_admin.transports import (
        FirestoreAdminGrpcTransport,
    )

    client = firestore_admin_v1.FirestoreAdminClient(
        transport=grpc_transport(FirestoreAdminGrpcTransport, "firestore", backend.credentials)
    )
    return GcpFirestore(client, backend.project, backend.retry, backend.inventory)


class GcpFirestore:
    def __init__(self, client: Any, project: str, retry: RetryPolicy, inventory: Any = None):
        self.client, self.project, self.inventory = client, project, inventory
        self.retry = retry.for_calls_of("firestore")  # retries as each call's declaration says

    @staticmethod
    def _db(d: Any) -> Database:
        cmek = d.cmek_config
        return Database(
            name=d.name,
            location=d.location_id,
            kms_key=(cmek.kms_key_name or None) if cmek else None,
            active_key_versions=tuple(cmek.active_key_version) if cmek else (),
            uid=d.uid,
        )

    def list_databases(self) -> list[Database]:
        with translated("list_databases", f"projects/{self.project}"):
            resp = self.retry.request(
                "list_databases",
                self.client.list_databases,
                parent=f"projects/{self.project}",
                retry=None,
            )
        # "In the event that data about individual databases cannot be listed they will be
        # recorded here" (e.g. projects/P/locations/L): a partial list.
        return Listing(
            (self._db(d) for d in resp.databases), unreachable=(location_of(u) for u in resp.unreachable)
        )

    def get_database(self, name: str) -> Database:
        with translated("get_database", name):
            return self._db(
                self.retry.request("get_database", self.client.get_database, name=name, retry=None)
            )

    def list_backups(self) -> list[Backup]:
        parent = f"projects/{self.project}/locations/-"
        with translated("list_backups", parent):
            resp = self.retry.request("list_backups", self.client.list_backups, parent=parent, retry=None)
        # The Backup resource does not say its key version (R24): None = any of its key's.
        # Locations that did not answer are in `unreachable`: a partial list.
        return Listing(
            (
                Backup(
                    b.name,
                    b.database,
                    b.snapshot_time or EPOCH,
                    b.expire_time or EPOCH,
                    None,
                    database_uid=b.database_uid,
                )
                for b in resp.backups
            ),
            unreachable=(location_of(u) for u in resp.unreachable),
        )

    def restore_database(
        self, database_id: str, backup: str, *, kms_key: str | None, use_backup_encryption: bool = False
    ) -> Database:
        from google.cloud.firestore_admin_v1.types import database as dbt

        config = dbt.Database.EncryptionConfig
        if use_backup_encryption:
            enc = config(use_source_encryption={})
        elif kms_key:
            enc = config(
                customer_managed_encryption=config.CustomerManagedEncryptionOptions(kms_key_name=kms_key)
            )
        else:
            enc = config(google_default_encryption={})
        request = {
            "parent": f"projects/{self.project}",
            "database_id": database_id,
            "backup": backup,
            "encryption_config": enc,
        }
        with translated("restore_database", backup):
            op = self.retry.request(
                "restore_database", self.client.restore_database, request=request, retry=None
            )
            return self._db(op.result(timeout=OPERATION_TIMEOUT))
