"""A tiny world builder for tests of the fake backend (and of anything built on it).

    from helpers import APP_KEY, BUCKET, make_backend, make_world, obj, v

`make_world()` is the smallest world most tests need:

* `APP_KEY` (us-east1): versions 1 and 2 ENABLED, primary 2;
* `NEW_KEY` (us-east1): version 1 ENABLED, primary 1 (a replacement key);
* `EU_KEY` (europe-west1): version 1 ENABLED (the wrong location for the bucket, R7);
* bucket `BUCKET` in US-EAST1 defaulting to `APP_KEY`, soft delete 7d, not versioned,
  holding one object `OBJECT` (generation 1, 1024 bytes) under APP_KEY version 1.

Every key grants the Cloud Storage agent Encrypter/Decrypter (R5). Top-level
overrides replace whole sections: `make_world(storage=[bucket("b", objects=[...])])`,
`make_world(now="2027-01-01T00:00:00Z")`. Every call returns a fresh dict, so a test
may mutate it freely.
"""

from __future__ import annotations

import copy
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from rotator.backends.fake import FakeBackend

PROJECT = "demo"
PROJECT_NUMBER = "111111111111"
NOW_TEXT = "2026-11-22T00:00:00Z"
NOW = datetime(2026, 11, 22, tzinfo=timezone.utc)

ENCRYPTER_DECRYPTER = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
STORAGE_AGENT = f"serviceAccount:service-{PROJECT_NUMBER}@gs-project-accounts.iam.gserviceaccount.com"

RING = f"projects/{PROJECT}/locations/us-east1/keyRings/ring"
APP_KEY = f"{RING}/cryptoKeys/app"
NEW_KEY = f"{RING}/cryptoKeys/new"
EU_KEY = f"projects/{PROJECT}/locations/europe-west1/keyRings/ring/cryptoKeys/eu"

BUCKET = "demo-logs"
OBJECT = "reports/2026-01.csv"


def v(key: str, number: int) -> str:
    """The name of version `number` of `key`."""
    return f"{key}/cryptoKeyVersions/{number}"


def key(
    name: str,
    versions: dict[int, str] | None = None,
    primary: int | None | str = "max",
    members: tuple[str, ...] = (STORAGE_AGENT,),
    **extra: Any,
) -> dict[str, Any]:
    """A `kms:` entry; `primary` defaults to the highest version, `members` get
    Encrypter/Decrypter."""
    versions = dict(versions or {1: "ENABLED"})
    entry: dict[str, Any] = {
        "key": name,
        "primary": max(versions) if primary == "max" else primary,
        "versions": versions,
        "iam": {ENCRYPTER_DECRYPTER: list(members)} if members else {},
    }
    entry.update(extra)
    return entry


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


_BASE: dict[str, Any] = {
    "project": PROJECT,
    "project_number": PROJECT_NUMBER,
    "now": NOW_TEXT,
    "kms": [
        key(APP_KEY, {1: "ENABLED", 2: "ENABLED"}, primary=2),
        key(NEW_KEY, {1: "ENABLED"}, primary=1),
        key(EU_KEY, {1: "ENABLED"}, primary=1),
    ],
    "storage": [bucket(BUCKET, [obj(OBJECT, v(APP_KEY, 1))])],
}


def make_world(**overrides: Any) -> dict[str, Any]:
    """A fresh world-file dict; keyword arguments replace top-level sections."""
    unknown = set(overrides) - {
        "project",
        "project_number",
        "now",
        "kms",
        "storage",
        "firestore",
        "dataflow",
        "run",
        "functions",
    }
    if unknown:
        raise TypeError(f"make_world: not a world-file section: {sorted(unknown)}")
    doc = copy.deepcopy(_BASE)
    doc.update(copy.deepcopy(overrides))
    return doc


def make_backend(**overrides: Any) -> FakeBackend:
    """An in-memory FakeBackend of `make_world(**overrides)`."""
    return FakeBackend.from_dict(make_world(**overrides))


def write_world(path: Path, doc: dict[str, Any]) -> Path:
    """Write a world dict as the YAML world file `path` (returns `path`)."""
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path
