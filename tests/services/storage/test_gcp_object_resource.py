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
