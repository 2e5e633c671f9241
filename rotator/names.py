"""Cloud KMS resource names (R1): parse, validate, strip and compare versions.

A key is   projects/P/locations/L/keyRings/R/cryptoKeys/K
a version  projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/N

The one place that knows these shapes: code elsewhere builds and splits names with
the helpers below (version_name, key_of, version_id, ...) rather than by hand. The
helpers do not validate (parse_key / parse_version do, with the R1 message): they are
for names the tool, the cloud or a checked world file already made.
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

_VERSIONS = "/cryptoKeyVersions/"
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
    if is_version(text):
        return parse_version(text).key
    return parse_key(text)


def same_key(a: str, b: str) -> bool:
    return strip_version(a) == strip_version(b)


def key_id(key: str) -> str:
    """K of .../cryptoKeys/K (what a person types to confirm a grave step)."""
    return key.rsplit("/", 1)[-1]


def key_ring_of(key: str) -> str:
    """projects/P/locations/L/keyRings/R of a key name."""
    return key.rsplit("/cryptoKeys/", 1)[0]


def version_name(key: str, number: int | str) -> str:
    """Version `number` of `key`: the text of KeyVersionName, without parsing the key."""
    return f"{key}{_VERSIONS}{number}"


def is_version(name: str) -> bool:
    """Whether a name names a key version rather than a key."""
    return _VERSIONS in name


def key_of(name: str) -> str:
    """The key of a version name; a key name is its own key."""
    return name.split(_VERSIONS)[0]


def version_id(version: str) -> int:
    """N of .../cryptoKeyVersions/N."""
    return int(version.rsplit("/", 1)[1])


def versions_prefix(key: str) -> str:
    """What every version name of `key` starts with (for listings and range queries)."""
    return key + _VERSIONS


def is_version_of(version: str | None, key: str) -> bool:
    """Whether `version` is a version of `key` (None is no version)."""
    return bool(version) and str(version).startswith(versions_prefix(key))


def version_number(key: str, version: str | None) -> int | None:
    """N when `version` is key/cryptoKeyVersions/N, else None."""
    prefix = versions_prefix(key)
    return int(version[len(prefix) :]) if version and version.startswith(prefix) else None


def location_of(name: str) -> str:
    """L of projects/P/locations/L/... (a key, a version, a Cloud Run service, a function,
    a repository, a Firestore backup); Google's `unreachable` lists give
    projects/P/locations/L or a bare L, read the same way."""
    # The first "/locations/", not the last: a key ring or key may itself be named
    # "locations" (R1 allows it), and a project id holds no "/".
    parts = ("/" + name).split("/locations/", 1)
    return parts[1].split("/", 1)[0] if len(parts) == 2 else name
