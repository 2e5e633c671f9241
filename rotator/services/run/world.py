"""Cloud Run's section of the fake world file (docs/world-file.md): its services, each
with its revisions, their keys, versions, traffic and tags. Kept verbatim in the fake's
store (rotator/services/run/fake.py reads it)."""

from __future__ import annotations

from typing import Any

from rotator.backends.fake.worldschema import BOOL, KEY, TIME, Checker, obj
from rotator.locations import regional_key_location_ok
from rotator.names import location_of

_SERVICE = obj(
    {
        "service": {"type": "string"},
        "revocation_action": {"enum": ["PREVENT_NEW", "SHUTDOWN"]},
        "revisions": {
            "type": "array",
            "items": obj(
                {
                    "revision": {"type": "string"},
                    "kms_key": KEY,
                    "kms_key_version": KEY,
                    "traffic_percent": {"type": "integer", "minimum": 0, "maximum": 100},
                    # A tag (its own URL, so it serves); pinned: the share is by name, not
                    # "latest", so a new revision does not take it.
                    "tag": {"type": "string"},
                    "pinned": BOOL,
                    # When it was deployed; omitted: before the world's clock (no KMS
                    # propagation window of a primary change can hold it).
                    "deployed": TIME,
                },
                ["revision"],
            ),
        },
    },
    ["service"],
)

# The top-level sections this service owns, each a list of these items.
SECTIONS: dict[str, dict[str, Any]] = {"run": _SERVICE}
# Each item's name field and the shape its name must have.
NAME_PATTERNS = {("run", "service"): r"projects/[a-z0-9.:-]+/locations/[a-z0-9-]+/services/[a-z0-9-]+"}


def check(checker: Checker) -> None:
    """A revision's key is in its service's region (R7)."""
    for i, r in enumerate(checker.doc.get("run", [])):
        region = location_of(r["service"])
        for k, rev in enumerate(r.get("revisions", [])):
            if "deployed" in rev:
                checker.time(f"run[{i}].revisions[{k}].deployed", rev["deployed"])
            if rev.get("kms_key") and not regional_key_location_ok(region, location_of(rev["kms_key"])):
                raise checker.fail(
                    f"run[{i}].revisions[{k}].kms_key",
                    f"a service in {region} needs a key in {region} (R7)",
                )


def check_versions(checker: Checker) -> None:
    for i, s in enumerate(checker.doc.get("run", [])):
        for k, r in enumerate(s.get("revisions", [])):
            checker.same_key(
                f"run[{i}].revisions[{k}].kms_key_version", r.get("kms_key"), r.get("kms_key_version")
            )
