"""A world with all five services on one key, for tests of the fake's Firestore,
Dataflow, Cloud Run and functions (and of the playbooks over them).

    from services_world import APP_KEY, DB, services_world, v

`services_world()` (every call a fresh dict, mutate freely):

* `APP_KEY` (us-east1): versions 1, 2, 3 ENABLED, primary 3; every service agent of
  R5 (`rotator rules R5`) holds Encrypter/Decrypter on it;
* `NEW_KEY` (us-east1): version 1, primary; agents as `new_key_agents` (default: all);
* `EU_KEY` (europe-west1), `US_KEY` (multi-region us), `GLOBAL_KEY` (global): version 1,
  every agent granted (wrong locations for us-east1 resources, R7, R30);
* Cloud Storage: bucket `BUCKET` (US-EAST1, default APP_KEY, soft delete off) with one
  object under version 1;
* Firestore: `DB` (us-east1) on APP_KEY, active on version 3, re-encryption 6h, two
  backups: `OLD_BACKUP` under version 1 (expires `OLD_BACKUP_EXPIRES`) and
  `NEW_BACKUP` under version 3 (the newest); `US_DB` (nam5) on US_KEY;
* Dataflow on APP_KEY version 3: `INGEST` (streaming, Streaming Engine, 2026),
  `LEGACY` (streaming, Streaming Engine, created 2024-01-15: before R32's cut-off),
  `BATCH` (batch, running); `FINISHED` (batch, DONE) under version 1;
* Cloud Run `SERVICE`: revision `api-00001` under version 1 with no traffic,
  `api-00002` under version 2 serving 100%;
* functions `FUNCTION` under version 2, repository `REPOSITORY` under APP_KEY.

So a rotation can disable versions 1 and 2 (after the redeploys) and keeps 3 (running
jobs); version 1 is pinned for destroy by `OLD_BACKUP` and `api-00001`.
"""

from __future__ import annotations

import copy
from typing import Any

PROJECT = "demo"
PROJECT_NUMBER = "111111111111"
NOW_TEXT = "2026-11-22T00:00:00Z"
ENCRYPTER_DECRYPTER = "roles/cloudkms.cryptoKeyEncrypterDecrypter"

# The service agents of R5 (`rotator rules R5`), spelled out here (not taken from rotator.agents).
N = PROJECT_NUMBER
STORAGE_AGENT = f"serviceAccount:service-{N}@gs-project-accounts.iam.gserviceaccount.com"
RUN_AGENT = f"serviceAccount:service-{N}@serverless-robot-prod.iam.gserviceaccount.com"
FUNCTIONS_AGENT = f"serviceAccount:service-{N}@gcf-admin-robot.iam.gserviceaccount.com"
ARTIFACT_AGENT = f"serviceAccount:service-{N}@gcp-sa-artifactregistry.iam.gserviceaccount.com"
EVENTARC_AGENT = f"serviceAccount:service-{N}@gcp-sa-eventarc.iam.gserviceaccount.com"
FIRESTORE_AGENT = f"serviceAccount:service-{N}@gcp-sa-firestore.iam.gserviceaccount.com"
DATAFLOW_AGENT = f"serviceAccount:service-{N}@dataflow-service-producer-prod.iam.gserviceaccount.com"
COMPUTE_AGENT = f"serviceAccount:{N}-compute@developer.gserviceaccount.com"
ALL_AGENTS = (
    STORAGE_AGENT,
    FIRESTORE_AGENT,
    DATAFLOW_AGENT,
    COMPUTE_AGENT,
    RUN_AGENT,
    FUNCTIONS_AGENT,
    ARTIFACT_AGENT,
    EVENTARC_AGENT,
)
AGENTS_BY_SERVICE = {
    "storage": (STORAGE_AGENT,),
    "firestore": (FIRESTORE_AGENT,),
    "dataflow": (DATAFLOW_AGENT, COMPUTE_AGENT),
    "run": (RUN_AGENT,),
    "functions": (FUNCTIONS_AGENT, ARTIFACT_AGENT, STORAGE_AGENT, RUN_AGENT, EVENTARC_AGENT),
}

RING = f"projects/{PROJECT}/locations/us-east1/keyRings/ring"
APP_KEY = f"{RING}/cryptoKeys/app"
NEW_KEY = f"{RING}/cryptoKeys/app-2026"
EU_KEY = f"projects/{PROJECT}/locations/europe-west1/keyRings/ring/cryptoKeys/app-eu"
US_KEY = f"projects/{PROJECT}/locations/us/keyRings/ring/cryptoKeys/app-us"
GLOBAL_KEY = f"projects/{PROJECT}/locations/global/keyRings/ring/cryptoKeys/app-global"

BUCKET = "demo-logs"
OBJECT = "reports/2026-01.csv"

DB = f"projects/{PROJECT}/databases/(default)"
US_DB = f"projects/{PROJECT}/databases/us-wide"
OLD_BACKUP = f"projects/{PROJECT}/locations/us-east1/backups/daily-2026-11-20"
OLD_BACKUP_EXPIRES = "2026-12-05T00:00:00Z"
NEW_BACKUP = f"projects/{PROJECT}/locations/us-east1/backups/daily-2026-11-21"
NEW_BACKUP_EXPIRES = "2026-12-20T00:00:00Z"
US_BACKUP = f"projects/{PROJECT}/locations/nam5/backups/daily-2026-11-21"

INGEST = "2026-11-01_00_00_00-123"
LEGACY = "2024-01-15_00_00_00-7"
BATCH = "2026-11-20_00_00_00-9"
FINISHED = "2026-10-01_00_00_00-5"

SERVICE = f"projects/{PROJECT}/locations/us-east1/services/api"
FUNCTION = f"projects/{PROJECT}/locations/us-east1/functions/resize"
REPOSITORY = f"projects/{PROJECT}/locations/us-east1/repositories/functions"


def v(key: str, number: int) -> str:
    """The name of version `number` of `key`."""
    return f"{key}/cryptoKeyVersions/{number}"


def kms_key(
    name: str,
    versions: dict[int, str] | None = None,
    primary: int | None | str = "max",
    members: tuple[str, ...] = ALL_AGENTS,
) -> dict[str, Any]:
    versions = dict(versions or {1: "ENABLED"})
    return {
        "key": name,
        "primary": max(versions) if primary == "max" else primary,
        "versions": versions,
        "iam": {ENCRYPTER_DECRYPTER: list(members)} if members else {},
    }


def database(
    name: str = DB,
    location: str = "us-east1",
    key: str | None = APP_KEY,
    active: list[str] | None = None,
    backups: list[dict[str, Any]] | None = None,
    reencrypt_after: str = "6h",
) -> dict[str, Any]:
    return {
        "database": name,
        "location": location,
        "kms_key": key,
        "active_key_versions": list(active if active is not None else [v(APP_KEY, 3)]),
        "reencrypt_after": reencrypt_after,
        "backups": list(backups or []),
    }


def backup(name: str, version: str | None, snapshot_time: str, expire_time: str) -> dict[str, Any]:
    return {
        "backup": name,
        "snapshot_time": snapshot_time,
        "expire_time": expire_time,
        "kms_key_version": version,
    }


def job(
    job_id: str,
    name: str,
    version: str | None = None,
    *,
    type: str = "STREAMING",
    streaming_engine: bool = True,
    state: str = "RUNNING",
    created: str = "2026-11-01T00:00:00Z",
    region: str = "us-east1",
    key: str | None = APP_KEY,
) -> dict[str, Any]:
    return {
        "job": job_id,
        "name": name,
        "region": region,
        "type": type,
        "streaming_engine": streaming_engine,
        "state": state,
        "created": created,
        "kms_key": key,
        "kms_key_version": version if version is not None else v(APP_KEY, 3),
        "snapshots": [],
    }


def revision(name: str, version: str | None, traffic: int, key: str | None = APP_KEY) -> dict[str, Any]:
    return {"revision": name, "kms_key": key, "kms_key_version": version, "traffic_percent": traffic}


def service(name: str = SERVICE, revisions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "service": name,
        "revocation_action": "PREVENT_NEW",
        "revisions": list(
            revisions
            if revisions is not None
            else [revision("api-00001", v(APP_KEY, 1), 0), revision("api-00002", v(APP_KEY, 2), 100)]
        ),
    }


def function(
    name: str = FUNCTION, version: str | None = None, key: str | None = APP_KEY, repository: str = REPOSITORY
) -> dict[str, Any]:
    return {
        "function": name,
        "kms_key": key,
        "kms_key_version": version if version is not None else v(APP_KEY, 2),
        "docker_repository": repository,
    }


def services_world(*, new_key_agents: tuple[str, ...] = ALL_AGENTS, **overrides: Any) -> dict[str, Any]:
    """A fresh world-file dict with all five services; keyword arguments replace
    top-level sections (e.g. `storage=[]`, `run=[service(revisions=[...])]`)."""
    doc: dict[str, Any] = {
        "project": PROJECT,
        "project_number": PROJECT_NUMBER,
        "now": NOW_TEXT,
        "kms": [
            kms_key(APP_KEY, {1: "ENABLED", 2: "ENABLED", 3: "ENABLED"}, primary=3),
            kms_key(NEW_KEY, members=new_key_agents),
            kms_key(EU_KEY),
            kms_key(US_KEY),
            kms_key(GLOBAL_KEY),
        ],
        "storage": [
            {
                "bucket": BUCKET,
                "location": "US-EAST1",
                "default_kms_key": APP_KEY,
                "versioning": False,
                "soft_delete": 0,
                "objects": [
                    {"name": OBJECT, "generation": 1, "kms_key_version": v(APP_KEY, 1), "size": 1024}
                ],
            }
        ],
        "firestore": [
            database(
                backups=[
                    backup(OLD_BACKUP, v(APP_KEY, 1), "2026-11-20T00:00:00Z", OLD_BACKUP_EXPIRES),
                    backup(NEW_BACKUP, v(APP_KEY, 3), "2026-11-21T00:00:00Z", NEW_BACKUP_EXPIRES),
                ]
            ),
            database(
                US_DB,
                location="nam5",
                key=US_KEY,
                active=[v(US_KEY, 1)],
                backups=[backup(US_BACKUP, v(US_KEY, 1), "2026-11-21T00:00:00Z", NEW_BACKUP_EXPIRES)],
            ),
        ],
        "dataflow": [
            job(INGEST, "ingest"),
            job(LEGACY, "legacy-sessions", created="2024-01-15T00:00:00Z"),
            job(BATCH, "nightly", type="BATCH", streaming_engine=False, created="2026-11-20T00:00:00Z"),
            job(
                FINISHED,
                "backfill",
                v(APP_KEY, 1),
                type="BATCH",
                state="DONE",
                created="2026-10-01T00:00:00Z",
            ),
        ],
        "run": [service()],
        "functions": [function()],
    }
    unknown = set(overrides) - set(doc) - {"artifact_registry"}
    if unknown:
        raise TypeError(f"services_world: not a world-file section: {sorted(unknown)}")
    doc.update(copy.deepcopy(overrides))
    return doc
