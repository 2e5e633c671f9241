"""What every section of the fake world file is written with: the JSON Schema pieces
each service's section (rotator/services/<name>/world.py) is built from, and the
semantic checker its checks run on (names, dangling references, rules), whose every
failure is BadInput naming the path."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from rotator.errors import BadInput
from rotator.names import is_version_of, parse_key, parse_version
from rotator.timeutil import format_duration, parse_duration, parse_time

DURATION = {"type": ["string", "integer"]}
TIME = {"type": "string"}
KEY = {"type": ["string", "null"]}
BOOL = {"type": "boolean"}


def format_duration_s(seconds: int) -> str:
    """A duration the store keeps in seconds, as the world file writes it ("7d")."""
    return format_duration(timedelta(seconds=seconds))


def obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    """An object with exactly these properties: an unknown field is reported with its path."""
    return {
        "type": "object",
        "properties": props,
        "required": required or [],
        "additionalProperties": False,
    }


class Checker:
    """Semantic checks after the schema. `versions` holds every key the world declares
    under `kms` and its versions (filled before any service's section is checked)."""

    def __init__(self, doc: dict[str, Any], source: str):
        self.doc, self.source = doc, source
        self.versions: dict[str, dict[int, str]] = {}

    def fail(self, path: str, message: str) -> BadInput:
        return BadInput(f"{self.source}: {path}: {message}", resource=self.source)

    def time(self, path: str, value: str) -> datetime:
        try:
            return parse_time(value)
        except BadInput as e:
            raise self.fail(path, e.message) from None

    def duration(self, path: str, value: str | int) -> int:
        try:
            return int(parse_duration(value).total_seconds())
        except BadInput as e:
            raise self.fail(path, e.message) from None

    def key(self, path: str, value: str) -> str:
        try:
            name = str(parse_key(value))
        except BadInput as e:
            raise self.fail(path, e.message) from None
        if name not in self.versions:
            raise self.fail(path, f"key {value} is not declared under kms")
        return name

    def version(self, path: str, value: str) -> str:
        try:
            v = parse_version(value)
        except BadInput as e:
            raise self.fail(path, e.message) from None
        known = self.versions.get(str(v.key))
        if known is None:
            raise self.fail(path, f"key {v.key} is not declared under kms")
        if v.number not in known:
            raise self.fail(path, f"version {v.number} does not exist on key {v.key}")
        return str(v)

    def same_key(self, path: str, key: str | None, version: str | None) -> None:
        """A resource's version is a version of its own key (the cloud cannot say otherwise)."""
        if key and version and not is_version_of(version, key):
            raise self.fail(path, f"{version} is not a version of the resource's key {key}")
