"""Every world the tests build, in one place: the world-file entries (keys, buckets,
objects, databases, backups, jobs, services, functions) and the worlds made of them.

    from worlds import APP_KEY, BUCKET, make_world, services_world, v

Every builder returns a fresh dict, so a test may mutate it freely; keyword arguments
replace whole top-level sections (`make_world(storage=[bucket("b", objects=[...])])`).

`make_world()`, the smallest world most tests need:

* `APP_KEY` (us-east1): versions 1 and 2 ENABLED, primary 2;
* `NEW_KEY` (us-east1): version 1 ENABLED, primary 1 (a replacement key);
* `EU_KEY` (europe-west1): version 1 ENABLED (the wrong location for the bucket, R7);
* bucket `BUCKET` in US-EAST1 defaulting to `APP_KEY`, soft delete 7d, not versioned,
  holding one object `OBJECT` (generation 1, 1024 bytes) under APP_KEY version 1.
Every key grants the Cloud Storage agent Encrypter/Decrypter (R5).

`services_world()`, all five services on one key:

* `APP_KEY` (us-east1): versions 1, 2, 3 ENABLED, primary 3; every service agent of
  R5 (`rotator rules R5`) holds Encrypter/Decrypter on it;
* `APP_2026_KEY` (us-east1): version 1, primary; agents as `new_key_agents` (default: all);
* `APP_EU_KEY` (europe-west1), `US_KEY` (multi-region us), `GLOBAL_KEY` (global):
  version 1, every agent granted (wrong locations for us-east1 resources, R7, R30);
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

`demo_world()` and `destroyable_world()`: the demo world file of the README
(playbooks/examples/demo-world.yaml) for the safety tests; `two_bucket_world()`: two
generated buckets for the permanent-fault case.

The replacement key is `NEW_KEY` (`.../cryptoKeys/new`) in make_world and
`APP_2026_KEY` (`.../cryptoKeys/app-2026`) in services_world and the demo world; tests of
one world import its keys under the short name (`from worlds import APP_2026_KEY as NEW_KEY`).
"""

from __future__ import annotations

import copy
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from rotator.backends.fake import FakeBackend

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "playbooks" / "examples" / "demo-world.yaml"

PROJECT = "demo"
PROJECT_NUMBER = "111111111111"
NOW_TEXT = "2026-11-22T00:00:00Z"
NOW = datetime(2026, 11, 22, tzinfo=timezone.utc)
ENCRYPTER_DECRYPTER = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
SECTIONS = ("project", "project_number", "now", "kms", "storage", "firestore", "dataflow", "run", "functions")

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

# -- keys -----------------------------------------------------------------------------------
RING = f"projects/{PROJECT}/locations/us-east1/keyRings/ring"
APP_KEY = f"{RING}/cryptoKeys/app"
NEW_KEY = f"{RING}/cryptoKeys/new"  # make_world's replacement key
EU_KEY = f"projects/{PROJECT}/locations/europe-west1/keyRings/ring/cryptoKeys/eu"  # make_world's
APP_2026_KEY = f"{RING}/cryptoKeys/app-2026"  # the replacement key of services_world and the demo
APP_EU_KEY = f"projects/{PROJECT}/locations/europe-west1/keyRings/ring/cryptoKeys/app-eu"
US_KEY = f"projects/{PROJECT}/locations/us/keyRings/ring/cryptoKeys/app-us"
GLOBAL_KEY = f"projects/{PROJECT}/locations/global/keyRings/ring/cryptoKeys/app-global"

# -- resources ------------------------------------------------------------------------------
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


# -- world-file entries ---------------------------------------------------------------------


def key(
    name: str,
    versions: dict[int, str] | None = None,
    primary: int | None | str = "max",
    members: tuple[str, ...] = (STORAGE_AGENT,),
    **extra: Any,
) -> dict[str, Any]:
    """A `kms:` entry; `primary` defaults to the highest version, `members` get
    Encrypter/Decrypter (the Cloud Storage agent unless told)."""
    versions = dict(versions or {1: "ENABLED"})
    entry: dict[str, Any] = {
        "key": name,
        "primary": max(versions) if primary == "max" else primary,
        "versions": versions,
        "iam": {ENCRYPTER_DECRYPTER: list(members)} if members else {},
    }
    entry.update(extra)
    return entry


def kms_key(
    name: str,
    versions: dict[int, str] | None = None,
    primary: int | None | str = "max",
    members: tuple[str, ...] = ALL_AGENTS,
) -> dict[str, Any]:
    """A `kms:` entry that grants every service agent (services_world's keys)."""
    return key(name, versions, primary, members)


def obj(name: str, version: str | None = None, size: int = 1024, **extra: Any) -> dict[str, Any]:
    """An `objects:` entry under `version` (None: Google default encryption)."""
    entry: dict[str, Any] = {"name": name, "generation": 1, "kms_key_version": version, "size": size}
    entry.update(extra)
    return entry


def bucket(
    name: str = BUCKET,
    objects: list[dict[str, Any]] | None = None,
    location: str = "US-EAST1",
    default_kms_key: str | None = APP_KEY,
    **extra: Any,
) -> dict[str, Any]:
    """A `storage:` entry (soft delete 7d, not versioned unless `extra` says so)."""
    entry: dict[str, Any] = {
        "bucket": name,
        "location": location,
        "default_kms_key": default_kms_key,
        "versioning": False,
        "soft_delete": "7d",
        "objects": list(objects or []),
    }
    entry.update(extra)
    return entry


def database(
    name: str = DB,
    location: str = "us-east1",
    key: str | None = APP_KEY,
    active: list[str] | None = None,
    backups: list[dict[str, Any]] | None = None,
    reencrypt_after: str = "6h",
) -> dict[str, Any]:
    """A `firestore:` entry (active on APP_KEY version 3 unless told)."""
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
    """A `dataflow:` entry (a running streaming job on APP_KEY version 3 unless told)."""
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
    """A `run:` entry (api-00001 idle under version 1, api-00002 serving under 2)."""
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
    """A `functions:` entry (under APP_KEY version 2 unless told)."""
    return {
        "function": name,
        "kms_key": key,
        "kms_key_version": version if version is not None else v(APP_KEY, 2),
        "docker_repository": repository,
    }


# -- worlds ---------------------------------------------------------------------------------


def _world(kms: list[dict[str, Any]], storage: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "project": PROJECT,
        "project_number": PROJECT_NUMBER,
        "now": NOW_TEXT,
        "kms": kms,
        "storage": storage,
    }


def _replace_sections(who: str, doc: dict[str, Any], overrides: dict[str, Any], allowed: set[str]) -> None:
    unknown = set(overrides) - allowed
    if unknown:
        raise TypeError(f"{who}: not a world-file section: {sorted(unknown)}")
    doc.update(copy.deepcopy(overrides))


def make_world(**overrides: Any) -> dict[str, Any]:
    """The smallest world (see above); keyword arguments replace top-level sections."""
    doc = _world(
        kms=[
            key(APP_KEY, {1: "ENABLED", 2: "ENABLED"}, primary=2),
            key(NEW_KEY, {1: "ENABLED"}, primary=1),
            key(EU_KEY, {1: "ENABLED"}, primary=1),
        ],
        storage=[bucket(BUCKET, [obj(OBJECT, v(APP_KEY, 1))])],
    )
    _replace_sections("make_world", doc, overrides, {*SECTIONS, "other_resources"})
    return doc


def make_backend(**overrides: Any) -> FakeBackend:
    """An in-memory FakeBackend of `make_world(**overrides)`."""
    return FakeBackend.from_dict(make_world(**overrides))


def services_world(*, new_key_agents: tuple[str, ...] = ALL_AGENTS, **overrides: Any) -> dict[str, Any]:
    """All five services on APP_KEY (see above); keyword arguments replace top-level
    sections (e.g. `storage=[]`, `run=[service(revisions=[...])]`)."""
    doc = _world(
        kms=[
            kms_key(APP_KEY, {1: "ENABLED", 2: "ENABLED", 3: "ENABLED"}, primary=3),
            kms_key(APP_2026_KEY, members=new_key_agents),
            kms_key(APP_EU_KEY),
            kms_key(US_KEY),
            kms_key(GLOBAL_KEY),
        ],
        storage=[bucket(BUCKET, [obj(OBJECT, v(APP_KEY, 1))], soft_delete=0)],
    )
    doc["firestore"] = [
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
    ]
    doc["dataflow"] = [
        job(INGEST, "ingest"),
        job(LEGACY, "legacy-sessions", created="2024-01-15T00:00:00Z"),
        job(BATCH, "nightly", type="BATCH", streaming_engine=False, created="2026-11-20T00:00:00Z"),
        job(FINISHED, "backfill", v(APP_KEY, 1), type="BATCH", state="DONE", created="2026-10-01T00:00:00Z"),
    ]
    doc["run"] = [service()]
    doc["functions"] = [function()]
    _replace_sections("services_world", doc, overrides, {*doc, "artifact_registry"})
    return doc


def fleet_on_shared_buckets() -> dict[str, Any]:
    """The fleet of tests/inventory/test_report.py and tests/wire/test_report_wire.py:
    services_world's five services on APP_KEY, more keys (three regions), and two
    buckets whose objects are under several keys and versions: more than EXAMPLES under
    one version, a hold, a live object under a DISABLED version, noncurrent and
    soft-deleted generations."""
    doc = services_world()
    doc["kms"][1] = kms_key(APP_2026_KEY, {1: "DISABLED", 2: "ENABLED"}, primary=2)
    ring = APP_KEY.rsplit("/", 1)[0]
    extra = [f"{ring}/k{i}" for i in range(4)]
    doc["kms"] += [kms_key(k, {1: "ENABLED", 2: "ENABLED"}, primary=2) for k in extra]
    objects = [obj(f"app/{i:02d}", v(APP_KEY, 1), size=10 + i) for i in range(8)]
    objects += [obj("app/held", v(APP_KEY, 2), temporary_hold=True), obj("new/old", v(APP_2026_KEY, 1))]
    objects += [obj(f"k/{i}", v(k, 1 + i % 2), size=7) for i, k in enumerate(extra)]
    objects.append(
        obj(
            "k/versioned",
            v(extra[0], 2),
            noncurrent=[{"generation": 1, "kms_key_version": v(extra[0], 1), "size": 3}],
            soft_deleted=[
                {
                    "generation": 2,
                    "kms_key_version": v(extra[1], 1),
                    "size": 5,
                    "hard_delete_time": "2026-11-29T00:00:00Z",
                }
            ],
            generation=3,
        )
    )
    doc["storage"][0]["objects"] += objects
    doc["storage"].append(
        bucket("shared-2", [obj(f"s/{i}", v(extra[i % 4], 2)) for i in range(6)], default_kms_key=extra[3])
    )
    doc["kms"] = [k for k in doc["kms"] if k["key"] != APP_EU_KEY] + [kms_key(APP_EU_KEY)]
    return doc


def demo_world() -> dict[str, Any]:
    """The demo world (five services, a held, a retained, a versioned, a soft-deleted and
    a CSEK object, ...) plus 100 objects under version 2: 305 live objects."""
    doc: dict[str, Any] = yaml.safe_load(DEMO.read_text())
    logs = next(b for b in doc["storage"] if b["bucket"] == "demo-logs")
    logs["generate"].append(
        {"prefix": "app/more-", "count": 100, "size": 1024, "kms_key_version": v(APP_KEY, 2)}
    )
    return doc


def destroyable_world() -> dict[str, Any]:
    """The demo world with everything on versions 1 and 2 moved to 3 and 4: versions 1
    and 2 are DISABLED and free, so destroy-versions versions=1,2 goes through."""
    moves = {v(APP_KEY, 1): v(APP_KEY, 3), v(APP_KEY, 2): v(APP_KEY, 4)}

    def move(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: move(val) for k, val in x.items()}
        if isinstance(x, list):
            return [move(i) for i in x]
        return moves.get(x, x) if isinstance(x, str) else x

    doc: dict[str, Any] = move(demo_world())
    app = next(k for k in doc["kms"] if k["key"] == APP_KEY)
    app["versions"] = {1: "DISABLED", 2: "DISABLED", 3: "ENABLED", 4: "ENABLED"}
    app["primary"] = 4
    return doc


def two_bucket_world() -> dict[str, Any]:
    """APP_KEY with versions 1 and 2: 20 generated objects under 1 in bkt, 5 under 2 in
    other (no project number, no clock: the world file's defaults)."""

    def generated(name: str, prefix: str, count: int, version: str) -> dict[str, Any]:
        return {
            "bucket": name,
            "location": "US-EAST1",
            "default_kms_key": APP_KEY,
            "soft_delete": 0,
            "generate": [{"prefix": prefix, "count": count, "kms_key_version": version, "size": 10}],
        }

    return {
        "project": PROJECT,
        "kms": [key(APP_KEY, {1: "ENABLED", 2: "ENABLED"}, primary=2)],
        "storage": [generated("bkt", "o/", 20, v(APP_KEY, 1)), generated("other", "x/", 5, v(APP_KEY, 2))],
    }


def write_world(path: Path, doc: dict[str, Any]) -> Path:
    """Write a world dict as the YAML world file `path` (returns `path`)."""
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


# -- the benchmarks' worlds: thousands of objects in one line (`generate:`) -----------------
BENCH_BUCKET = "bench"
BENCH_OTHER_KEY = f"{RING}/cryptoKeys/other"
OLD_PREFIX, CURRENT_PREFIX = "old/", "current/"


def generated_world(
    old: int, current: int = 0, *, current_key: str = BENCH_OTHER_KEY, size: int = 1024
) -> dict[str, Any]:
    """The benchmarks' world (tests/benchmarks): `old` objects under version 1 of APP_KEY
    (primary 2), which a rotation retires, and `current` objects under version 1 of
    `current_key`: not under a retiring version, so a rotation of APP_KEY must not send
    them a single request."""

    def key(name: str) -> dict[str, Any]:
        return {
            "key": name,
            "primary": 2,
            "versions": {1: "ENABLED", 2: "ENABLED"},
            "iam": {"roles/cloudkms.cryptoKeyEncrypterDecrypter": [STORAGE_AGENT]},
        }

    generate = [{"prefix": OLD_PREFIX, "count": old, "kms_key_version": f"{APP_KEY}/cryptoKeyVersions/1"}]
    if current:
        generate.append(
            {
                "prefix": CURRENT_PREFIX,
                "count": current,
                "kms_key_version": f"{current_key}/cryptoKeyVersions/1",
            }
        )
    for g in generate:
        g["size"] = size
    keys = [key(APP_KEY)] + ([key(current_key)] if current and current_key != APP_KEY else [])
    return {
        "project": PROJECT,
        "kms": keys,
        "storage": [
            {
                "bucket": BENCH_BUCKET,
                "location": "US-EAST1",
                "default_kms_key": APP_KEY,
                "soft_delete": 0,
                "generate": generate,
            }
        ],
    }
