"""The fake world file (SPEC "The fake world file"): validate, load into a Store, dump.

Validation is layered: strict YAML (no duplicate keys), a JSON Schema with no extra
properties (an unknown field is reported with its path), then semantic checks
(names, dangling references, R7, R19). Every failure is BadInput naming the path.

This module is the frame: the world's project, clock and Cloud KMS keys, the resources
of other products, and the loop over the registry. Each service's section (its schema,
names, checks, defaults, and for Cloud Storage its tables) is in its package:
rotator/services/<name>/world.py.
"""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from types import ModuleType
from typing import Any

from rotator.backends.fake.store import Store
from rotator.backends.fake.worldschema import DURATION, TIME, Checker, format_duration_s, obj
from rotator.errors import BadInput
from rotator.model import ENABLED, VERSION_STATES
from rotator.names import parse_key
from rotator.schemacheck import validate
from rotator.services import REGISTRY, part
from rotator.timeutil import format_time, parse_duration, parse_time

DEFAULT_PROJECT = "demo"
DEFAULT_PROJECT_NUMBER = "111111111111"
DEFAULT_NOW = "2026-11-22T00:00:00Z"

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
@cache
def _worlds() -> tuple[ModuleType, ...]:
    """Each service's section, in registry order (loaded on first use: a service's
    section imports this frame's pieces, so it cannot be loaded while they are)."""
    return tuple(part(service.name, "world") for service in REGISTRY)


def _hooks(name: str) -> list[Any]:
    """The sections' functions of that name, for the sections that have one."""
    return [getattr(world, name) for world in _worlds() if hasattr(world, name)]


@cache
def _documents() -> tuple[str, ...]:
    """The sections the fake keeps verbatim (every service's that has no tables of its
    own), then Cloud Storage batch operations jobs rotator started (written by dump)."""
    kept = (name for world in _worlds() if not hasattr(world, "load") for name in world.SECTIONS)
    return (*kept, "storage_batch")


@cache
def world_schema() -> dict[str, Any]:
    return obj(
        {
            "project": {"type": "string", "pattern": r"^[a-z0-9][a-z0-9.:-]{0,62}$"},
            "project_number": {"type": "string", "pattern": r"^[0-9]{1,20}$"},
            "now": TIME,
            "kms": {"type": "array", "items": _KMS_KEY},
            **{
                name: {"type": "array", "items": item}
                for world in _worlds()
                for name, item in world.SECTIONS.items()
            },
            "other_resources": {"type": "array", "items": _OTHER_RESOURCE},
            "storage_batch": {"type": "array", "items": {"type": "object"}},
        }
    )


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
        self.services()
        for service in _documents():
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
        """Each service's names (shape, uniqueness), then its own checks (R7, R24, R30...)."""
        for world in _worlds():
            self.names(world.NAME_PATTERNS)
        for check in _hooks("check"):
            check(self)

    def names(self, patterns: dict[tuple[str, str], str]) -> None:
        for (service, field), pattern in patterns.items():
            seen: set[str] = set()
            for i, item in enumerate(self.doc.get(service, [])):
                name = item[field]
                if not re.fullmatch(pattern, name):
                    raise self.fail(f"{service}[{i}].{field}", f"malformed name {name!r}")
                if name in seen:
                    raise self.fail(f"{service}[{i}].{field}", f"{name} is declared twice")
                seen.add(name)

    def versions_match_keys(self) -> None:
        """A resource's version is a version of its own key (the cloud cannot say otherwise)."""
        for check in _hooks("check_versions"):
            check(self)


def validate_world(doc: Any, *, source: str) -> dict[str, Any]:
    if doc is None:
        doc = {}
    doc = _normalise(copy.deepcopy(doc))  # never change the caller's document
    validate(doc, world_schema(), source=source)
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
        for load in _hooks("load"):
            load(c, doc, now)
        for service, items in _service_documents(doc).items():
            c.execute("INSERT INTO documents(service, body) VALUES(?, ?)", (service, json.dumps(items)))


def _service_documents(doc: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The other services' sections, with the defaults the schema promises filled in."""
    primaries = {str(parse_key(k["key"])): k.get("primary", _top_version(k)) for k in doc.get("kms", [])}
    out: dict[str, list[dict[str, Any]]] = {}
    for service in (*_documents(), "other_resources"):
        if service in doc:
            out[service] = json.loads(json.dumps(doc[service]))
    for r in out.get("other_resources", []):
        r["key"] = str(parse_key(r["key"]))
    for fill_defaults in _hooks("fill_defaults"):
        fill_defaults(out, primaries)
    return out


def _top_version(k: dict[str, Any]) -> int | None:
    versions = [int(n) for n in (k.get("versions") or {"1": ENABLED})]
    return max(versions) if versions else None


def dump(store: Store) -> dict[str, Any]:
    """The current world in the world file's schema, every field explicit."""
    c = store.conn
    doc: dict[str, Any] = {
        "project": store.get_meta("project"),
        "project_number": store.get_meta("project_number"),
        "now": store.get_meta("now"),
        "kms": [],
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
    for dump_section in _hooks("dump"):
        dump_section(store, doc)
    for row in c.execute("SELECT service, body FROM documents").fetchall():
        doc[row["service"]] = json.loads(row["body"])
    return doc
