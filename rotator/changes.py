"""The changes a plan's steps make, as one typed set: each knows its name in the plan
document (the same strings as ever: the plan schema does not change), its sign in the
plan's text, the line that describes it, and what it adds to the plan's summary.

A step writes a change as {"action": Change.DISABLE, ...}; the renderer and the summary
ask the change itself instead of branching on its name.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Any

from rotator.names import parse_key, parse_version
from rotator.units import human_bytes

Fields = dict[str, Any]

# The plan summary's counters, in the order the plan document lists them (after "steps").
SUMMARY_FIELDS = (
    "objects_to_rewrite",
    "bytes_to_rewrite",
    "versions_to_disable",
    "versions_pinned",
    "versions_to_destroy",
    "versions_to_enable",
    "versions_to_restore",
    "buckets_to_change",
    "grants",
)


def _key_id(name: str) -> str:
    return parse_key(name).key


def _rewrite(c: Fields) -> str:
    noun = "object" if c["objects"] == 1 else "objects"
    return (
        f"{c['bucket']}: {c['objects']:,} {noun} ({human_bytes(c['bytes'])}) "
        f"under version {parse_version(c['from_version']).number} -> {_key_id(c['to_key'])}"
    )


def _one(counter: str) -> Callable[[Fields], dict[str, int]]:
    return lambda _c: {counter: 1}


def _nothing(_c: Fields) -> dict[str, int]:
    return {}


class Change(str, Enum):
    """One kind of change. Its value is its name in the plan document."""

    sign: str
    _describe: Callable[[Fields], str]
    _tally: Callable[[Fields], dict[str, int]]

    def __new__(
        cls,
        name: str,
        sign: str,
        describe: Callable[[Fields], str],
        tally: Callable[[Fields], dict[str, int]] = _nothing,
    ) -> Change:
        member = str.__new__(cls, name)
        member._value_ = name
        member.sign = sign
        member._describe = describe
        member._tally = tally
        return member

    # Cloud KMS (R1, R2, R5, R14)
    CREATE_VERSION = (
        "create_version",
        "+",
        lambda c: f"create version {c['expected_version']} of {c['key']}",
    )
    SET_PRIMARY = ("set_primary", "~", lambda c: f"primary version {c['from']} -> {c['to']}")
    GRANT = ("grant", "+", lambda c: f"grant {c['role']} to {c['member']} ({c['service']})", _one("grants"))
    DISABLE = ("disable", "-", lambda c: f"disable {c['version']}", _one("versions_to_disable"))
    ENABLE = ("enable", "+", lambda c: f"enable {c['version']}", _one("versions_to_enable"))
    DESTROY = (
        "destroy",
        "-",
        lambda c: f"destroy {c['version']} (DESTROYED after {c['destroyed_after']})",
        _one("versions_to_destroy"),
    )
    RESTORE = (
        "restore",
        "+",
        lambda c: (
            f"restore {c['version']} (scheduled for destruction at {c['destroy_time']}; comes back DISABLED)"
        ),
        _one("versions_to_restore"),
    )
    # Cloud Storage (R12, R17)
    SET_DEFAULT_KMS_KEY = (
        "set_default_kms_key",
        "~",
        lambda c: f"{c['bucket']}: default key -> {c['to']}",
        _one("buckets_to_change"),
    )
    REWRITE = (
        "rewrite",
        "~",
        _rewrite,
        lambda c: {"objects_to_rewrite": c["objects"], "bytes_to_rewrite": c["bytes"]},
    )
    # Firestore (R21, R24)
    WAIT_REENCRYPTION = (
        "wait_reencryption",
        "…",
        lambda c: f"{c['database']}: wait until re-encrypted with the new primary (R21)",
    )
    RESTORE_DATABASE = (
        "restore_database",
        "+",
        lambda c: (
            f"{c['new_database']}: restore {c['backup']} ({c['snapshot_time']}) under {_key_id(c['kms_key'])}"
        ),
    )
    # Dataflow (R31)
    SNAPSHOT_JOB = ("snapshot_job", "+", lambda c: f"snapshot Dataflow job {c['job']} ({c['region']}) (R31)")
    # Cloud Run (R41) and Cloud Run functions (R42)
    DEPLOY_REVISION = (
        "deploy_revision",
        "~",
        lambda c: f"{c['service']}: new revision under {_key_id(c['to_key'])} (replaces {c['from']})",
    )
    CREATE_REPOSITORY = (
        "create_repository",
        "+",
        lambda c: f"{c['repository']}: create under {_key_id(c['kms_key'])} (R42)",
    )
    REDEPLOY_FUNCTION = (
        "redeploy_function",
        "~",
        lambda c: f"{c['function']}: redeploy under {_key_id(c['to_key'])}",
    )

    # Written into JSON and text as its name, never as "Change.DISABLE".
    def __str__(self) -> str:
        return str.__str__(self)

    def __format__(self, spec: str) -> str:
        return format(str.__str__(self), spec)

    def describe(self, change: Fields) -> str:
        """The change's line in the plan's text and its ticket."""
        return self._describe(change)

    def tally(self, change: Fields) -> dict[str, int]:
        """What the change adds to the plan's summary counters."""
        return self._tally(change)


_BY_NAME: dict[str, Change] = {member.value: member for member in Change}


def change_of(change: Fields) -> Change | None:
    """The kind of a change read from a plan (None: not one rotator makes)."""
    return _BY_NAME.get(change["action"])


def change_line(change: Fields) -> str:
    """A change's line: its own description, or the raw change if rotator does not know it."""
    kind = change_of(change)
    return kind.describe(change) if kind is not None else str(change)


def change_sign(change: Fields) -> str:
    kind = change_of(change)
    return kind.sign if kind is not None else "*"
