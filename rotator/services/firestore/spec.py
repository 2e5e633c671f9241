"""Firestore: databases created under the key, the versions still holding their data,
and backups (R20-R24)."""

from __future__ import annotations

from rotator.changes import Change
from rotator.services.firestore.api import FirestoreAdminApi, FirestoreReads
from rotator.services.spec import Call, PinKind, Repeat, ServiceSpec

FIRESTORE_KEY = "firestore_database_key"
FIRESTORE_ACTIVE = "firestore_active_version"
FIRESTORE_BACKUP = "firestore_backup"

SPEC: ServiceSpec[FirestoreAdminApi, FirestoreReads] = ServiceSpec(
    name="firestore",
    title="Firestore",
    agents=("service-{n}@gcp-sa-firestore.iam.gserviceaccount.com",),
    pin_kinds=(
        PinKind(
            FIRESTORE_KEY,
            "R20",
            True,
            True,
            "the database is moved to a new database under another key (R20)",
            "every call fails with FAILED_PRECONDITION within 10 minutes; import/export fail "
            "for good, index builds pause (R22)",
            "{resource} is encrypted with this key, fixed at creation",
            key_level=True,
        ),
        PinKind(
            FIRESTORE_ACTIVE,
            "R21",
            True,
            True,
            "re-encryption to a newer primary completes",
            "every call fails with FAILED_PRECONDITION within 10 minutes (R22)",
            "{resource} still has data under this version",
        ),
        PinKind(
            FIRESTORE_BACKUP,
            "R24",
            False,
            True,
            "the backup expires",
            "the backup cannot be restored (R22, R24)",
            "{resource}: backup {names}",
        ),
    ),
    products=("firestore.googleapis.com",),
    calls={
        "list_databases": Call("datastore.databases.list"),
        "get_database": Call("datastore.databases.getMetadata"),
        "list_backups": Call("datastore.backups.list"),
        "restore_database": Call(
            "datastore.backups.restoreDatabase and datastore.databases.create", Repeat.ONCE
        ),
    },
    endpoint_env="ROTATOR_ENDPOINT_FIRESTORE_ADMIN",
    listed_once=frozenset({"list_databases", "list_backups"}),
    # Firestore has no testIamPermissions: its calls' permissions are not asked ahead.
    key_changes=frozenset({Change.RESTORE_DATABASE}),
)
