"""Cloud KMS resource names (R1): parse, validate, strip and compare versions.

A key is   projects/P/locations/L/keyRings/R/cryptoKeys/K
a version  projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/N
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rotator.errors import BadInput

# Project ids are normally 6-30 characters; shorter ids (e.g. "demo") appear in
# sandboxes and docs, so the pattern only insists on the character set.
_PROJECT = r"[a-z0-9][a-z0-9.:-]{0,62}"
_LOCATION = r"[a-z0-9][a-z0-9-]{0,62}"
_ID = r"[A-Za-z0-9_-]{1,63}"
_KEY_RE = re.compile(
    rf"projects/(?P<project>{_PROJECT})/locations/(?P<location>{_LOCATION})"
    rf"/keyRings/(?P<ring>{_ID})/cryptoKeys/(?P<key>{_ID})"
)
_VERSION_RE = re.compile(_KEY_RE.pattern + r"/cryptoKeyVersions/(?P<version>[1-9][0-9]{0,9})")

_SEGMENTS = ("projects", "locations", "keyRings", "cryptoKeys", "cryptoKeyVersions")
_PART_RULES = {
    "projects": (_PROJECT, "lower-case [a-z0-9.:-]"),
    "locations": (_LOCATION, "lower-case [a-z0-9-] (e.g. us-east1, global)"),
    "keyRings": (_ID, "[A-Za-z0-9_-], 1-63 characters"),
    "cryptoKeys": (_ID, "[A-Za-z0-9_-], 1-63 characters"),
    "cryptoKeyVersions": (r"[1-9][0-9]{0,9}", "a positive number"),
}


@dataclass(frozen=True, order=True)
class KeyName:
    project: str
    location: str
    key_ring: str
    key: str

    def __str__(self) -> str:
        return (
            f"projects/{self.project}/locations/{self.location}"
            f"/keyRings/{self.key_ring}/cryptoKeys/{self.key}"
        )

    def version(self, number: int) -> KeyVersionName:
        return KeyVersionName(self, number)


@dataclass(frozen=True, order=True)
class KeyVersionName:
    key: KeyName
    number: int

    def __str__(self) -> str:
        return f"{self.key}/cryptoKeyVersions/{self.number}"


def _explain(text: str, what: str) -> str:
    """Say which part of a malformed name is wrong, not just that it is wrong."""
    parts = text.split("/")
    expected = _SEGMENTS if what == "key version" else _SEGMENTS[:4]
    if len(parts) != 2 * len(expected):
        if what == "key" and len(parts) == 10 and parts[8] == "cryptoKeyVersions":
            return "a key version was given where a key is expected (drop /cryptoKeyVersions/N)"
        if what == "key version" and len(parts) == 8:
            return "a key was given where a key version is expected (add /cryptoKeyVersions/N)"
        return f"expected {len(expected) * 2} '/'-separated parts, got {len(parts)}"
    for i, segment in enumerate(expected):
        if parts[2 * i] != segment:
            return f"part {2 * i + 1} should be '{segment}', got '{parts[2 * i]}'"
        value = parts[2 * i + 1]
        if not value:
            return f"the {segment} id is empty"
        pattern, allowed = _PART_RULES[segment]
        if not re.fullmatch(pattern, value):
            return f"the {segment} id {value!r} must match {allowed}"
    return "the name is not a valid Cloud KMS resource name"


def parse_key(text: str, *, field: str = "key") -> KeyName:
    """Parse a key name; a version name is refused (use parse_key_or_version)."""
    m = _KEY_RE.fullmatch(text.strip()) if isinstance(text, str) else None
    if not m:
        raise BadInput(
            f"{field}: malformed key name {text!r}: {_explain(str(text), 'key')} (R1)",
            resource=str(text),
            rule="R1",
        )
    return KeyName(m["project"], m["location"], m["ring"], m["key"])


def parse_version(text: str, *, field: str = "key version") -> KeyVersionName:
    m = _VERSION_RE.fullmatch(text.strip()) if isinstance(text, str) else None
    if not m:
        raise BadInput(
            f"{field}: malformed key version name {text!r}: {_explain(str(text), 'key version')} (R1)",
            resource=str(text),
            rule="R1",
        )
    return KeyVersionName(KeyName(m["project"], m["location"], m["ring"], m["key"]), int(m["version"]))


def strip_version(text: str) -> KeyName:
    """The key of a key or key-version name (Cloud Storage reports object keys with
    their version; buckets name the bare key)."""
    if "/cryptoKeyVersions/" in text:
        return parse_version(text).key
    return parse_key(text)


def same_key(a: str, b: str) -> bool:
    return strip_version(a) == strip_version(b)
