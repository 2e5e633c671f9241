"""The fake world file (SPEC "The fake world file"): validate, load into a Store, dump.

Validation is layered: strict YAML (no duplicate keys), a JSON Schema with no extra
properties (an unknown field is reported with its path), then semantic checks
(names, dangling references, R7, R19). Every failure is BadInput naming the path.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from rotator.backends.fake.store import Store
from rotator.backends.fake.worldschema import BOOL, DURATION, KEY, TIME, Checker, obj
from rotator.errors import BadInput
from rotator.locations import bucket_key_location_ok, key_location_for_bucket
from rotator.model import ENABLED, LIVE, NONCURRENT, SOFT_DELETED, VERSION_STATES
from rotator.names import parse_key
from rotator.schemacheck import validate
from rotator.services.dataflow import world as dataflow_world
from rotator.services.firestore import world as firestore_world
from rotator.services.functions import world as functions_world
from rotator.services.run import world as run_world
from rotator.timeutil import format_duration, format_time, parse_duration, parse_time

DEFAULT_PROJECT = "demo"
DEFAULT_PROJECT_NUMBER = "111111111111"
DEFAULT_NOW = "2026-11-22T00:00:00Z"

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

_KMS_KEY = obj(
    {
        "key": {"type": "string"},
        "protection_level": {"enum": ["SOFTWARE", "HSM", "EXTERNAL", "EXTERNAL_VPC"]},
        "destroy_scheduled_duration": DURATION,
        "primary": {"type": ["integer", "null"]},
        "versions": {
            "type": "object",
            "patternProperties": {r"^[1-9][0-9]*$": {"enum": list(VERSION_STATES)}},
            "additionalProperties": False,
        },
        "iam": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
        # Extension: automatic rotation and when each version was created (the fleet
        # report's ages); a version's default is the world's `now`.
        "rotation_period": DURATION,
        "next_rotation_time": TIME,
        "created": {
            "type": "object",
            "patternProperties": {r"^[1-9][0-9]*$": TIME},
            "additionalProperties": False,
        },
        # Extension: when each DESTROY_SCHEDULED version becomes DESTROYED (R1); written
        # by `world dump` so that a dump loads back unchanged.
        "destroy_times": {
            "type": "object",
            "patternProperties": {r"^[1-9][0-9]*$": TIME},
            "additionalProperties": False,
        },
    },
    ["key"],
)

# Resources of products rotator does not manage (a BigQuery table...), which only Cloud
# KMS Inventory lists: `versions` omitted = unknown (any version of the key).
_OTHER_RESOURCE = obj(
    {
        "name": {"type": "string", "pattern": r"^//[a-z0-9.-]+\.googleapis\.com/.+"},
        "type": {"type": "string", "pattern": r"^[a-z0-9.-]+\.googleapis\.com/[A-Za-z]+$"},
        "key": {"type": "string"},
        "versions": {"type": "array", "items": {"type": "integer", "minimum": 1}},
        # Extension: the project it lives in, when its name does not say (projects/_/...).
        "project": {"type": "string", "pattern": r"^[a-z0-9][a-z0-9.:-]{0,62}$"},
    },
    ["name", "type", "key"],
)

# Each service's section (rotator/services/<name>/world.py): its schema, names and checks.
_WORLDS = (firestore_world, dataflow_world, run_world, functions_world)

WORLD_SCHEMA: dict[str, Any] = obj(
    {
        "project": {"type": "string", "pattern": r"^[a-z0-9][a-z0-9.:-]{0,62}$"},
        "project_number": {"type": "string", "pattern": r"^[0-9]{1,20}$"},
        "now": TIME,
        "kms": {"type": "array", "items": _KMS_KEY},
        "storage": {"type": "array", "items": _BUCKET},
        **{
            name: {"type": "array", "items": item}
            for world in _WORLDS
            for name, item in world.SECTIONS.items()
        },
        "other_resources": {"type": "array", "items": _OTHER_RESOURCE},
        # Extension: Cloud Storage batch operations jobs rotator started (written by dump).
        "storage_batch": {"type": "array", "items": {"type": "object"}},
    }
)
OTHER_SERVICES = ("firestore", "dataflow", "run", "functions", "artifact_registry", "storage_batch")
_NAME_PATTERNS = {name: pattern for world in _WORLDS for name, pattern in world.NAME_PATTERNS.items()}


def _normalise(doc: Any) -> Any:
    """YAML gives `versions: {1: ENABLED}` integer keys; JSON Schema wants strings."""
    if isinstance(doc, dict) and isinstance(doc.get("kms"), list):
        for key in doc["kms"]:
            for field in ("versions", "destroy_times", "created"):
                if isinstance(key, dict) and isinstance(key.get(field), dict):
                    key[field] = {str(k): v for k, v in key[field].items()}
    return doc


class _Checker(Checker):
    """The world's own checks (its keys, other resources) and each service's."""

    def run(self) -> None:
        doc = self.doc
        self.time("now", doc.get("now", DEFAULT_NOW))
        for i, k in enumerate(doc.get("kms", [])):
            path = f"kms[{i}]"
            try:
                name = str(parse_key(k["key"]))
            except BadInput as e:
                raise self.fail(f"{path}.key", e.message) from None
            if name in self.versions:
                raise self.fail(f"{path}.key", f"key {name} is declared twice")
            versions = {int(n): s for n, s in (k.get("versions") or {"1": ENABLED}).items()}
            self.versions[name] = versions
            primary = k.get("primary", max(versions) if versions else None)
            if primary is not None and primary not in versions:
                raise self.fail(f"{path}.primary", f"version {primary} does not exist on key {name}")
            self.duration(f"{path}.destroy_scheduled_duration", k.get("destroy_scheduled_duration", "30d"))
            if "rotation_period" in k:
                self.duration(f"{path}.rotation_period", k["rotation_period"])
            if "next_rotation_time" in k:
                self.time(f"{path}.next_rotation_time", k["next_rotation_time"])
            for n, when in (k.get("created") or {}).items():
                if int(n) not in versions:
                    raise self.fail(f"{path}.created.{n}", f"version {n} does not exist on key {name}")
                self.time(f"{path}.created.{n}", when)
        seen_buckets: set[str] = set()
        for i, b in enumerate(doc.get("storage", [])):
            path = f"storage[{i}]"
            if b["bucket"] in seen_buckets:
                raise self.fail(f"{path}.bucket", f"bucket {b['bucket']} is declared twice")
            seen_buckets.add(b["bucket"])
            if key_location_for_bucket(b["location"]) is None:
                raise self.fail(f"{path}.location", f"unknown bucket location {b['location']!r} (R7)")
            if b.get("default_kms_key"):
                key = self.key(f"{path}.default_kms_key", b["default_kms_key"])
                if not bucket_key_location_ok(b["location"], key.split("/")[3]):
                    raise self.fail(
                        f"{path}.default_kms_key",
                        f"key in {key.split('/')[3]} cannot protect a bucket in {b['location']} (R7)",
                    )
            self.duration(f"{path}.soft_delete", b.get("soft_delete", "7d"))
            if "retention" in b:
                self.duration(f"{path}.retention.period", b["retention"]["period"])
            names: set[str] = set()
            for j, o in enumerate(b.get("objects", [])):
                self.object(f"{path}.objects[{j}]", o, names)
            for j, g in enumerate(b.get("generate", [])):
                if g.get("kms_key_version"):
                    self.version(f"{path}.generate[{j}].kms_key_version", g["kms_key_version"])
                if "created" in g:
                    self.time(f"{path}.generate[{j}].created", g["created"])
        self.services()
        for service in OTHER_SERVICES:
            for i, item in enumerate(doc.get(service, [])):
                for field in ("kms_key",):
                    if item.get(field):
                        self.key(f"{service}[{i}].{field}", item[field])
                if item.get("kms_key_version"):
                    self.version(f"{service}[{i}].kms_key_version", item["kms_key_version"])
                for j, v in enumerate(item.get("active_key_versions", [])):
                    self.version(f"{service}[{i}].active_key_versions[{j}]", v)
                for sub in ("backups", "revisions"):
                    for j, s in enumerate(item.get(sub, [])):
                        if s.get("kms_key_version"):
                            self.version(f"{service}[{i}].{sub}[{j}].kms_key_version", s["kms_key_version"])
                        if s.get("kms_key"):
                            self.key(f"{service}[{i}].{sub}[{j}].kms_key", s["kms_key"])
        self.versions_match_keys()
        self.other_resources()

    def other_resources(self) -> None:
        seen: set[tuple[str, str]] = set()
        for i, r in enumerate(self.doc.get("other_resources", [])):
            path = f"other_resources[{i}]"
            key = self.key(f"{path}.key", r["key"])
            for j, n in enumerate(r.get("versions", [])):
                if n not in self.versions[key]:
                    raise self.fail(f"{path}.versions[{j}]", f"version {n} does not exist on key {key}")
            if (r["name"], key) in seen:
                raise self.fail(f"{path}.name", f"{r['name']} is declared twice on {key}")
            seen.add((r["name"], key))

    def services(self) -> None:
        """Names, uniqueness and the location rule (R7, R30) of the other services."""
        for (service, field), pattern in _NAME_PATTERNS.items():
            seen: set[str] = set()
            for i, item in enumerate(self.doc.get(service, [])):
                name = item[field]
                if not re.fullmatch(pattern, name):
                    raise self.fail(f"{service}[{i}].{field}", f"malformed name {name!r}")
                if name in seen:
                    raise self.fail(f"{service}[{i}].{field}", f"{name} is declared twice")
                seen.add(name)

        for world in _WORLDS:
            world.check(self)

    def versions_match_keys(self) -> None:
        """A resource's version is a version of its own key (the cloud cannot say otherwise)."""

        for world in _WORLDS:
            world.check_versions(self)

    def object(self, path: str, o: dict[str, Any], names: set[str]) -> None:
        if o["name"] in names:
            raise self.fail(f"{path}.name", f"object {o['name']} is declared twice")
        names.add(o["name"])
        if o.get("kms_key_version"):
            self.version(f"{path}.kms_key_version", o["kms_key_version"])
            if o.get("customer_supplied_key"):
                raise self.fail(path, "an object under a customer-supplied key has no CMEK version (R19)")
        if "created" in o:
            self.time(f"{path}.created", o["created"])
        if "retention" in o:
            self.time(f"{path}.retention.retain_until", o["retention"]["retain_until"])
        deleted = o.get("deleted", False)
        if deleted and not (o.get("noncurrent") or o.get("soft_deleted")):
            raise self.fail(
                f"{path}.deleted", "a deleted object needs noncurrent or soft_deleted generations"
            )
        live_gen = o.get("generation", 1)
        if deleted:
            live_gen = max(g["generation"] for k in ("noncurrent", "soft_deleted") for g in o.get(k, [])) + 1
        gens = set() if deleted else {live_gen}
        for kind in ("noncurrent", "soft_deleted"):
            for k, g in enumerate(o.get(kind, [])):
                gpath = f"{path}.{kind}[{k}]"
                if g["generation"] in gens:
                    raise self.fail(f"{gpath}.generation", f"generation {g['generation']} is declared twice")
                if g["generation"] > live_gen:
                    raise self.fail(
                        f"{gpath}.generation",
                        f"older generation {g['generation']} is newer than the live one ({live_gen})",
                    )
                gens.add(g["generation"])
                if g.get("kms_key_version"):
                    self.version(f"{gpath}.kms_key_version", g["kms_key_version"])
                if "hard_delete_time" in g:
                    self.time(f"{gpath}.hard_delete_time", g["hard_delete_time"])


def validate_world(doc: Any, *, source: str) -> dict[str, Any]:
    if doc is None:
        doc = {}
    doc = _normalise(copy.deepcopy(doc))  # never change the caller's document
    validate(doc, WORLD_SCHEMA, source=source)
    _Checker(doc, source).run()
    return doc


def load_into(store: Store, doc: dict[str, Any], *, source_sha256: str = "") -> None:
    """Write a validated world into an empty store, in one transaction."""
    now = parse_time(doc.get("now", DEFAULT_NOW))
    store.create_schema()  # DDL commits on its own; the store is new and private here
    with store.write() as c:
        store.set_meta("project", doc.get("project", DEFAULT_PROJECT))
        store.set_meta("project_number", doc.get("project_number", DEFAULT_PROJECT_NUMBER))
        store.set_meta("source_sha256", source_sha256)
        store.set_now(now)
        for k in doc.get("kms", []):
            name = str(parse_key(k["key"]))
            versions = {int(n): s for n, s in (k.get("versions") or {"1": ENABLED}).items()}
            c.execute(
                "INSERT INTO keys(name, protection_level, destroy_scheduled_duration, "
                "primary_version, iam, rotation_period, next_rotation_time) VALUES(?,?,?,?,?,?,?)",
                (
                    name,
                    k.get("protection_level", "SOFTWARE"),
                    int(parse_duration(k.get("destroy_scheduled_duration", "30d")).total_seconds()),
                    k.get("primary", max(versions) if versions else None),
                    json.dumps(k.get("iam", {}), sort_keys=True),
                    int(parse_duration(k["rotation_period"]).total_seconds())
                    if "rotation_period" in k
                    else None,
                    format_time(parse_time(k["next_rotation_time"])) if "next_rotation_time" in k else None,
                ),
            )
            for n, state in sorted(versions.items()):
                destroy_time = None
                if state == "DESTROY_SCHEDULED":
                    given = (k.get("destroy_times") or {}).get(str(n))
                    delay = parse_duration(k.get("destroy_scheduled_duration", "30d"))
                    destroy_time = format_time(parse_time(given) if given else now + delay)
                created = (k.get("created") or {}).get(str(n))
                c.execute(
                    "INSERT INTO versions(key, number, state, destroy_time, create_time) VALUES(?,?,?,?,?)",
                    (name, n, state, destroy_time, format_time(parse_time(created) if created else now)),
                )
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
        for service, items in _service_documents(doc).items():
            c.execute("INSERT INTO documents(service, body) VALUES(?, ?)", (service, json.dumps(items)))


def _service_documents(doc: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The other services' sections, with the defaults the schema promises filled in."""
    primaries = {str(parse_key(k["key"])): k.get("primary", _top_version(k)) for k in doc.get("kms", [])}
    out: dict[str, list[dict[str, Any]]] = {}
    for service in (*OTHER_SERVICES, "other_resources"):
        if service in doc:
            out[service] = json.loads(json.dumps(doc[service]))
    for r in out.get("other_resources", []):
        r["key"] = str(parse_key(r["key"]))
    for world in _WORLDS:
        if hasattr(world, "fill_defaults"):
            world.fill_defaults(out, primaries)
    return out


def _top_version(k: dict[str, Any]) -> int | None:
    versions = [int(n) for n in (k.get("versions") or {"1": ENABLED})]
    return max(versions) if versions else None


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


def dump(store: Store) -> dict[str, Any]:
    """The current world in the world file's schema, every field explicit."""
    c = store.conn
    doc: dict[str, Any] = {
        "project": store.get_meta("project"),
        "project_number": store.get_meta("project_number"),
        "now": store.get_meta("now"),
        "kms": [],
        "storage": [],
    }
    for k in c.execute("SELECT * FROM keys ORDER BY name").fetchall():
        versions = c.execute(
            "SELECT number, state FROM versions WHERE key=? ORDER BY number", (k["name"],)
        ).fetchall()
        entry: dict[str, Any] = {
            "key": k["name"],
            "protection_level": k["protection_level"],
            "destroy_scheduled_duration": format_duration_s(k["destroy_scheduled_duration"]),
            "primary": k["primary_version"],
            "versions": {v["number"]: v["state"] for v in versions},
            "iam": json.loads(k["iam"]),
        }
        scheduled = c.execute(
            "SELECT number, destroy_time FROM versions WHERE key=? AND destroy_time IS NOT NULL",
            (k["name"],),
        ).fetchall()
        if scheduled:
            # Not part of the input schema's required fields; shown so an operator sees
            # when a DESTROY_SCHEDULED version becomes DESTROYED (R1).
            entry["destroy_times"] = {v["number"]: v["destroy_time"] for v in scheduled}
        if k["rotation_period"]:
            entry["rotation_period"] = format_duration_s(k["rotation_period"])
        if k["next_rotation_time"]:
            entry["next_rotation_time"] = k["next_rotation_time"]
        created = c.execute(
            "SELECT number, create_time FROM versions WHERE key=? AND create_time IS NOT NULL", (k["name"],)
        ).fetchall()
        if created:
            entry["created"] = {v["number"]: v["create_time"] for v in created}
        doc["kms"].append(entry)
    for b in c.execute("SELECT * FROM buckets ORDER BY ord, name").fetchall():
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
    for row in c.execute("SELECT service, body FROM documents").fetchall():
        doc[row["service"]] = json.loads(row["body"])
    return doc


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


def format_duration_s(seconds: int) -> str:
    return format_duration(timedelta(seconds=seconds))
