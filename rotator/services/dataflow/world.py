"""Dataflow's section of the fake world file (docs/world-file.md): its jobs, each with
its key, the version it runs under and its snapshots. Kept verbatim in the fake's
store (rotator/services/dataflow/fake.py reads it)."""

from __future__ import annotations

from typing import Any

from rotator.backends.fake.worldschema import BOOL, DURATION, KEY, TIME, Checker, obj
from rotator.locations import regional_key_location_ok
from rotator.names import location_of

_JOB = obj(
    {
        "job": {"type": "string"},
        "name": {"type": "string"},
        "region": {"type": "string"},
        "type": {"enum": ["STREAMING", "BATCH"]},
        "streaming_engine": BOOL,
        "state": {"enum": ["RUNNING", "DRAINED", "CANCELLED", "DONE"]},
        "created": TIME,
        "kms_key": KEY,
        "kms_key_version": KEY,
        # How long a snapshot takes to become READY on the fake clock (0: at once).
        "snapshot_ready_after": DURATION,
        "snapshots": {
            "type": "array",
            "items": obj(
                {
                    "snapshot": {"type": "string"},
                    "created": TIME,
                    "state": {"enum": ["PENDING", "RUNNING", "READY", "FAILED", "DELETED"]},
                },
                ["snapshot"],
            ),
        },
    },
    ["job"],
)

# The top-level sections this service owns, each a list of these items.
SECTIONS: dict[str, dict[str, Any]] = {"dataflow": _JOB}
# Each item's name field and the shape its name must have.
NAME_PATTERNS = {("dataflow", "job"): r"[A-Za-z0-9_-]+"}


def check(checker: Checker) -> None:
    """A job runs under a regional key in its own region (R30)."""
    for i, j in enumerate(checker.doc.get("dataflow", [])):
        if j.get("kms_key") and not regional_key_location_ok(
            j.get("region") or "", location_of(j["kms_key"])
        ):
            raise checker.fail(
                f"dataflow[{i}].kms_key", f"a job in {j.get('region')} needs a key in that region (R30)"
            )


def check_versions(checker: Checker) -> None:
    for i, j in enumerate(checker.doc.get("dataflow", [])):
        checker.same_key(f"dataflow[{i}].kms_key_version", j.get("kms_key"), j.get("kms_key_version"))
