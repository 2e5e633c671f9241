"""Cloud Storage's section of the fake world file (docs/world-file.md): its buckets,
each with its default key, versioning, soft delete and retention, and its objects with
their generations (live, noncurrent, soft-deleted), or many generated at once. Unlike
the other services' sections it is not kept verbatim: the fake keeps buckets and objects
in tables of their own (rotator/services/storage/fake.py), so this module also loads
and dumps them."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from rotator.backends.fake.store import Store
from rotator.backends.fake.worldschema import BOOL, DURATION, KEY, TIME, Checker, format_duration_s, obj
from rotator.locations import bucket_key_location_ok, key_location_for_bucket
from rotator.model import LIVE, NONCURRENT, SOFT_DELETED
from rotator.names import location_of, parse_key
from rotator.timeutil import format_time, parse_duration, parse_time

_GENERATION = obj(
    {
        "generation": {"type": "integer", "minimum": 0},
        "kms_key_version": KEY,
        "size": {"type": "integer", "minimum": 0},
        "hard_delete_time": TIME,
        "customer_supplied_key": BOOL,
    },
    ["generation"],
)

_OBJECT = obj(
    {
        "name": {"type": "string", "minLength": 1},
        "generation": {"type": "integer", "minimum": 1},
        "kms_key_version": KEY,
        "size": {"type": "integer", "minimum": 0},
        "created": TIME,
        "temporary_hold": BOOL,
        "event_based_hold": BOOL,
        "retention": obj(
            {"mode": {"enum": ["Locked", "Unlocked"]}, "retain_until": TIME},
            ["mode", "retain_until"],
        ),
        # Extension (R19): an object under a customer-supplied key has no CMEK version.
        "customer_supplied_key": BOOL,
        # Extension: the object was deleted; only its older generations remain (R18).
        "deleted": BOOL,
        "noncurrent": {"type": "array", "items": _GENERATION},
        "soft_deleted": {"type": "array", "items": _GENERATION},
    },
    ["name"],
)

_BUCKET = obj(
    {
        "bucket": {"type": "string", "pattern": r"^[a-z0-9][a-z0-9._-]{1,221}[a-z0-9]$"},
        "location": {"type": "string", "minLength": 1},
        "default_kms_key": KEY,
        "versioning": BOOL,
        "soft_delete": DURATION,
        "retention": obj({"period": DURATION, "locked": BOOL}, ["period"]),
        "objects": {"type": "array", "items": _OBJECT},
        "generate": {
            "type": "array",
            "items": obj(
                {
                    "prefix": {"type": "string"},
                    "count": {"type": "integer", "minimum": 0},
                    "kms_key_version": KEY,
                    "size": {"type": "integer", "minimum": 0},
                    "created": TIME,
                },
                ["prefix", "count"],
            ),
        },
    },
    ["bucket", "location"],
)

# The top-level sections this service owns, each a list of these items.
SECTIONS: dict[str, dict[str, Any]] = {"storage": _BUCKET}
# Bucket names are checked by the schema's pattern; no other name field.
NAME_PATTERNS: dict[tuple[str, str], str] = {}


def check(checker: Checker) -> None:
    """Buckets once each, in a known location, under a key in a location that can
    protect it (R7); their objects' generations and versions."""
    seen_buckets: set[str] = set()
    for i, b in enumerate(checker.doc.get("storage", [])):
        path = f"storage[{i}]"
        if b["bucket"] in seen_buckets:
            raise checker.fail(f"{path}.bucket", f"bucket {b['bucket']} is declared twice")
        seen_buckets.add(b["bucket"])
        if key_location_for_bucket(b["location"]) is None:
            raise checker.fail(f"{path}.location", f"unknown bucket location {b['location']!r} (R7)")
        if b.get("default_kms_key"):
            key = checker.key(f"{path}.default_kms_key", b["default_kms_key"])
            if not bucket_key_location_ok(b["location"], location_of(key)):
                raise checker.fail(
                    f"{path}.default_kms_key",
                    f"key in {location_of(key)} cannot protect a bucket in {b['location']} (R7)",
                )
        checker.duration(f"{path}.soft_delete", b.get("soft_delete", "7d"))
        if "retention" in b:
            checker.duration(f"{path}.retention.period", b["retention"]["period"])
        names: set[str] = set()
        for j, o in enumerate(b.get("objects", [])):
            _check_object(checker, f"{path}.objects[{j}]", o, names)
        for j, g in enumerate(b.get("generate", [])):
            if g.get("kms_key_version"):
                checker.version(f"{path}.generate[{j}].kms_key_version", g["kms_key_version"])
            if "created" in g:
                checker.time(f"{path}.generate[{j}].created", g["created"])


def _check_object(checker: Checker, path: str, o: dict[str, Any], names: set[str]) -> None:
    if o["name"] in names:
        raise checker.fail(f"{path}.name", f"object {o['name']} is declared twice")
    names.add(o["name"])
    if o.get("kms_key_version"):
        checker.version(f"{path}.kms_key_version", o["kms_key_version"])
        if o.get("customer_supplied_key"):
            raise checker.fail(path, "an object under a customer-supplied key has no CMEK version (R19)")
    if "created" in o:
        checker.time(f"{path}.created", o["created"])
    if "retention" in o:
        checker.time(f"{path}.retention.retain_until", o["retention"]["retain_until"])
    deleted = o.get("deleted", False)
    if deleted and not (o.get("noncurrent") or o.get("soft_deleted")):
        raise checker.fail(f"{path}.deleted", "a deleted object needs noncurrent or soft_deleted generations")
    live_gen = o.get("generation", 1)
    if deleted:
        live_gen = max(g["generation"] for k in ("noncurrent", "soft_deleted") for g in o.get(k, [])) + 1
    gens = set() if deleted else {live_gen}
    for kind in ("noncurrent", "soft_deleted"):
        for k, g in enumerate(o.get(kind, [])):
            gpath = f"{path}.{kind}[{k}]"
            if g["generation"] in gens:
                raise checker.fail(f"{gpath}.generation", f"generation {g['generation']} is declared twice")
            if g["generation"] > live_gen:
                raise checker.fail(
                    f"{gpath}.generation",
                    f"older generation {g['generation']} is newer than the live one ({live_gen})",
                )
            gens.add(g["generation"])
            if g.get("kms_key_version"):
                checker.version(f"{gpath}.kms_key_version", g["kms_key_version"])
            if "hard_delete_time" in g:
                checker.time(f"{gpath}.hard_delete_time", g["hard_delete_time"])


def load(c: sqlite3.Connection, doc: dict[str, Any], now: datetime) -> None:
    """The buckets and their objects into the fake's tables."""
    for i, b in enumerate(doc.get("storage", [])):
        retention = b.get("retention")
        c.execute(
            "INSERT INTO buckets(name, location, default_kms_key, versioning, soft_delete, "
            "retention_period, retention_locked, ord) VALUES(?,?,?,?,?,?,?,?)",
            (
                b["bucket"],
                b["location"].upper(),
                str(parse_key(b["default_kms_key"])) if b.get("default_kms_key") else None,
                int(b.get("versioning", False)),
                int(parse_duration(b.get("soft_delete", "7d")).total_seconds()),
                int(parse_duration(retention["period"]).total_seconds()) if retention else None,
                int(bool(retention and retention.get("locked", False))),
                i,
            ),
        )
        c.executemany(
            "INSERT INTO objects(bucket, name, generation, state, kms_key_version, size, "
            "created, temporary_hold, event_based_hold, retention_mode, retain_until, "
            "hard_delete_time, csek) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)",
            _object_rows(b, now),
        )


def _object_rows(b: dict[str, Any], now: datetime) -> Iterator[tuple[Any, ...]]:
    bucket, default_created = b["bucket"], format_time(now)
    soft = parse_duration(b.get("soft_delete", "7d"))
    for o in b.get("objects", []):
        created = format_time(parse_time(o["created"])) if "created" in o else default_created
        retention = o.get("retention")
        if not o.get("deleted"):  # a deleted object keeps only its older generations (R18)
            yield (
                bucket,
                o["name"],
                o.get("generation", 1),
                LIVE,
                o.get("kms_key_version"),
                o.get("size", 0),
                created,
                int(o.get("temporary_hold", False)),
                int(o.get("event_based_hold", False)),
                retention["mode"] if retention else None,
                format_time(parse_time(retention["retain_until"])) if retention else None,
                None,
                int(o.get("customer_supplied_key", False)),
            )
        for g in o.get("noncurrent", []):
            yield (
                bucket,
                o["name"],
                g["generation"],
                NONCURRENT,
                g.get("kms_key_version"),
                g.get("size", 0),
                created,
                0,
                0,
                None,
                None,
                None,
                int(g.get("customer_supplied_key", False)),
            )
        for g in o.get("soft_deleted", []):
            hard = g.get("hard_delete_time")
            yield (
                bucket,
                o["name"],
                g["generation"],
                SOFT_DELETED,
                g.get("kms_key_version"),
                g.get("size", 0),
                created,
                0,
                0,
                None,
                None,
                format_time(parse_time(hard)) if hard else format_time(now + soft),
                int(g.get("customer_supplied_key", False)),
            )
    for g in b.get("generate", []):
        count = g["count"]
        width = len(str(max(count - 1, 0)))
        created = format_time(parse_time(g["created"])) if "created" in g else default_created
        for i in range(count):
            yield (
                bucket,
                f"{g['prefix']}{i:0{width}d}",
                1,
                LIVE,
                g.get("kms_key_version"),
                g.get("size", 0),
                created,
                0,
                0,
                None,
                None,
                None,
                0,
            )


def dump(store: Store, doc: dict[str, Any]) -> None:
    """The buckets and their objects, every field explicit, into `doc["storage"]`."""
    doc["storage"] = []
    for b in store.conn.execute("SELECT * FROM buckets ORDER BY ord, name").fetchall():
        bucket: dict[str, Any] = {
            "bucket": b["name"],
            "location": b["location"],
            "default_kms_key": b["default_kms_key"],
            "versioning": bool(b["versioning"]),
            "soft_delete": format_duration_s(b["soft_delete"]),
        }
        if b["retention_period"] is not None:
            bucket["retention"] = {
                "period": format_duration_s(b["retention_period"]),
                "locked": bool(b["retention_locked"]),
            }
        bucket["objects"] = list(_dump_objects(store, b["name"]))
        doc["storage"].append(bucket)


def _dump_objects(store: Store, bucket: str) -> Iterator[dict[str, Any]]:
    rows = store.conn.execute(
        "SELECT * FROM objects WHERE bucket=? ORDER BY name, generation DESC", (bucket,)
    )
    current: dict[str, Any] | None = None
    for r in rows:
        if current is None or current["name"] != r["name"]:
            if current is not None:
                yield _mark_deleted(current)
            current = {"name": r["name"]}
        if r["state"] == LIVE:
            current.update(
                generation=r["generation"],
                kms_key_version=r["kms_key_version"],
                size=r["size"],
                created=r["created"],
                temporary_hold=bool(r["temporary_hold"]),
                event_based_hold=bool(r["event_based_hold"]),
            )
            if r["retention_mode"]:
                current["retention"] = {"mode": r["retention_mode"], "retain_until": r["retain_until"]}
            if r["csek"]:
                current["customer_supplied_key"] = True
        else:
            gen: dict[str, Any] = {
                "generation": r["generation"],
                "kms_key_version": r["kms_key_version"],
                "size": r["size"],
            }
            if r["state"] == SOFT_DELETED:
                gen["hard_delete_time"] = r["hard_delete_time"]
            if r["csek"]:
                gen["customer_supplied_key"] = True
            current.setdefault(r["state"], []).append(gen)
    if current is not None:
        yield _mark_deleted(current)


def _mark_deleted(entry: dict[str, Any]) -> dict[str, Any]:
    if "generation" not in entry:
        entry["deleted"] = True
    return entry
