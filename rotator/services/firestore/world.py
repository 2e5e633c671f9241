"""Firestore's section of the fake world file (docs/world-file.md): its databases, each
with its key, the versions it is active on and its backups. Kept verbatim in the fake's
store (rotator/services/firestore/fake.py reads it), with the defaults filled in."""

from __future__ import annotations

from typing import Any

from rotator.backends.fake.worldschema import BOOL, DURATION, KEY, TIME, Checker, obj
from rotator.locations import database_key_location_ok, key_location_for_database
from rotator.names import location_of, version_name

_DATABASE = obj(
    {
        "database": {"type": "string"},
        "location": {"type": "string"},
        "kms_key": KEY,
        "active_key_versions": {"type": "array", "items": {"type": "string"}},
        "reencrypt_after": DURATION,
        # Firestore's database uid; a database created again under the same name has
        # another. `deleted`: the database is gone, its unexpired backups remain.
        "uid": {"type": "string"},
        "deleted": BOOL,
        # Extension: a re-encryption in progress (R21), written by `world dump`.
        "pending_reencryption": obj({"to": {"type": "string"}, "due": TIME}, ["to", "due"]),
        "backups": {
            "type": "array",
            "items": obj(
                {
                    "backup": {"type": "string"},
                    "snapshot_time": TIME,
                    "expire_time": TIME,
                    "kms_key_version": KEY,
                    # The uid of the database it was taken from (default: its database's).
                    "database_uid": {"type": "string"},
                },
                ["backup"],
            ),
        },
    },
    ["database"],
)

# The top-level sections this service owns, each a list of these items.
SECTIONS: dict[str, dict[str, Any]] = {"firestore": _DATABASE}
# Each item's name field and the shape its name must have.
NAME_PATTERNS = {("firestore", "database"): r"projects/[a-z0-9.:-]+/databases/[a-z0-9()_-]+"}


def check(checker: Checker) -> None:
    """A database's key is in the one location its own allows (R7); a backup says when
    it expires (R24: until then it keeps its version in use)."""
    for i, d in enumerate(checker.doc.get("firestore", [])):
        want = key_location_for_database(d.get("location", ""))
        if (
            d.get("kms_key")
            and "location" in d
            and not database_key_location_ok(d["location"], location_of(d["kms_key"]))
        ):
            raise checker.fail(
                f"firestore[{i}].kms_key", f"a database in {d.get('location')} needs a key in {want} (R7)"
            )
        for j, b in enumerate(d.get("backups", [])):
            if "expire_time" not in b:
                raise checker.fail(f"firestore[{i}].backups[{j}]", "expire_time is required (R24)")


def check_versions(checker: Checker) -> None:
    for i, d in enumerate(checker.doc.get("firestore", [])):
        for k, v in enumerate(d.get("active_key_versions", [])):
            checker.same_key(f"firestore[{i}].active_key_versions[{k}]", d.get("kms_key"), v)


def fill_defaults(sections: dict[str, list[dict[str, Any]]], primaries: dict[str, Any]) -> None:
    """A database without a location is in the only one its key allows (R7); without
    active versions, it is active on its key's primary."""
    for d in sections.get("firestore", []):
        if "location" not in d:
            d["location"] = location_of(d["kms_key"]) if d.get("kms_key") else "us-east1"
        if d.get("kms_key") and "active_key_versions" not in d and primaries.get(d["kms_key"]):
            d["active_key_versions"] = [version_name(d["kms_key"], primaries[d["kms_key"]])]
