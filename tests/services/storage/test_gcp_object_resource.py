"""The gcp backend reads listed objects from their JSON resources directly
(services/storage/gcp.from_resource): the same ObjectInfo the client library's Blob
gives, for every field rotator judges pins by (R16, R17).

Backends: gcp (its reading of JSON resources, in process)."""

from __future__ import annotations

from typing import Any

import pytest
from google.cloud import storage

from rotator.services.storage.gcp import from_resource

RESOURCES: list[dict[str, Any]] = [
    {"name": "a", "generation": "7", "size": "12", "timeCreated": "2026-01-02T03:04:05.678Z"},
    {
        "name": "held/b",
        "generation": "1",
        "kmsKeyName": "projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/3",
        "timeCreated": "2026-01-02T03:04:05Z",
        "temporaryHold": True,
        "retention": {"mode": "Locked", "retainUntilTime": "2030-05-06T07:08:09.123456Z"},
        "timeDeleted": "2026-02-02T00:00:00.000Z",
    },
    {
        "name": "gone",
        "generation": "3",
        "timeCreated": "2025-12-31T23:59:59.999999999Z",
        "softDeleteTime": "2026-01-01T00:00:00.000Z",
        "hardDeleteTime": "2026-01-08T00:00:00.000Z",
        "customerEncryption": {"encryptionAlgorithm": "AES256"},
    },
]


@pytest.mark.parametrize("resource", RESOURCES, ids=[r["name"] for r in RESOURCES])
def test_a_listed_resource_reads_as_the_library_s_blob_does(resource: dict[str, Any]) -> None:
    client = storage.Client.create_anonymous_client()
    blob = storage.Blob(resource["name"], bucket=client.bucket("bkt"))
    blob._set_properties(dict(resource))  # what the library's listing does per item
    mine = from_resource("bkt", resource)
    assert mine.created == blob.time_created
    assert mine.hard_delete_time == (blob.hard_delete_time if "hardDeleteTime" in resource else None)
    retain = resource.get("retention", {}).get("retainUntilTime")
    assert mine.retain_until == (blob.retention.retain_until_time if retain else None)
    assert (mine.name, mine.generation, mine.size) == (blob.name, blob.generation, blob.size or 0)
    assert mine.kms_key_version == blob.kms_key_name
    assert mine.state == ("noncurrent" if "timeDeleted" in resource else "live")
    assert mine.temporary_hold == bool(blob.temporary_hold)
    assert mine.customer_supplied_key == ("customerEncryption" in resource)


PLAIN = {
    "name": "p",
    "generation": "5",
    "kmsKeyName": "projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1",
    "size": "3",
    "timeCreated": "2026-01-02T03:04:05.678Z",
}


def test_a_plain_listed_object_reads_the_same_by_the_short_way() -> None:
    """from_resource reads a resource of only the usual keys the short way (issue 14: a
    listing of a million objects): the same object as the full reading (state given)."""
    short, full = from_resource("bkt", PLAIN), from_resource("bkt", PLAIN, state="live")
    assert short == full
    assert short.created.tzinfo is not None and short.created.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("extra", "field", "value"),
    [
        ({"temporaryHold": True}, "temporary_hold", True),
        ({"eventBasedHold": True}, "event_based_hold", True),
        ({"timeDeleted": "2026-02-02T00:00:00Z"}, "state", "noncurrent"),
        ({"customerEncryption": {"encryptionAlgorithm": "AES256"}}, "customer_supplied_key", True),
        (
            {"retention": {"mode": "Unlocked", "retainUntilTime": "2027-01-01T00:00:00Z"}},
            "retention_mode",
            "Unlocked",
        ),
    ],
)
def test_any_other_key_is_read(extra: dict[str, Any], field: str, value: object) -> None:
    assert getattr(from_resource("bkt", {**PLAIN, **extra}), field) == value


def test_a_time_with_an_offset_reads_as_utc() -> None:
    o = from_resource("bkt", {**PLAIN, "timeCreated": "2026-01-02T05:04:05+02:00"})
    assert o.created == from_resource("bkt", PLAIN).created.replace(microsecond=0)
    assert o.created.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
