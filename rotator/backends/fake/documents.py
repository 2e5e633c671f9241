"""Small services (Firestore, Dataflow, Cloud Run, functions) keep their state as one
JSON document per service, in the world file's own schema, so `world dump` prints
them as they are. They hold tens of resources, not millions: a read-modify-write of
the document inside one transaction is simple and atomic."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from rotator import apierrors as api
from rotator.backends.fake.kms import FakeKms
from rotator.errors import BadInput
from rotator.locations import regional_key_location_ok
from rotator.names import is_version, location_of, parse_key


def load_docs(c: sqlite3.Connection, service: str) -> list[dict[str, Any]]:
    row = c.execute("SELECT body FROM documents WHERE service=?", (service,)).fetchone()
    return json.loads(row[0]) if row else []


def save_docs(c: sqlite3.Connection, service: str, items: list[dict[str, Any]]) -> None:
    c.execute(
        "INSERT INTO documents(service, body) VALUES(?, ?) "
        "ON CONFLICT(service) DO UPDATE SET body=excluded.body",
        (service, json.dumps(items)),
    )


def find(items: list[dict[str, Any]], field: str, name: str, what: str) -> dict[str, Any]:
    for item in items:
        if item.get(field) == name:
            return item
    raise api.NotFound(f"{what} {name} not found", resource=name)


def check_key_name(key: str, *, service: str) -> str:
    """A service takes a key, never a version (R42: functions use the primary)."""
    if is_version(key):
        raise api.InvalidArgument(
            f"{service}: {key} names a key version; give the key, the service uses its primary "
            "version (R2, R42)",
            resource=key,
            rule="R42",
        )
    try:
        return str(parse_key(key))
    except BadInput as e:
        raise api.InvalidArgument(e.message, resource=key, rule="R1") from None


def encrypt_version(
    c: sqlite3.Connection, kms: FakeKms, key: str, members: list[str], *, service: str
) -> str:
    """The primary version a service encrypts with, after checking every agent (R5)."""
    version = ""
    for member in members:
        version = kms.primary_for_encrypt(c, key, member, service=service)
    return version


def check_region(key: str, region: str, *, service: str, resource: str) -> None:
    """Dataflow, Cloud Run, functions, Artifact Registry: a key in the same region, never
    global or multi-region (R7, R30)."""
    location = location_of(key)
    if not regional_key_location_ok(region, location):
        raise api.InvalidArgument(
            f"{service}: {resource} is in {region}; its key must be in {region}, not {location} (R7)",
            resource=resource,
            rule="R7",
        )
