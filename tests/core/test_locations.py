"""Where a key may sit for a resource (R7, R30): one function per rule, used by the
fakes, the world file and the guards alike.

Backends: none (pure functions)."""

from __future__ import annotations

from rotator.locations import (
    bucket_key_location_ok,
    database_key_location_ok,
    key_location_for_bucket,
    key_location_for_database,
    key_region,
    regional_key_location_ok,
)


def test_a_regional_resource_takes_a_key_of_its_own_region_only() -> None:
    assert regional_key_location_ok("us-east1", "us-east1")
    assert regional_key_location_ok("US-EAST1", "us-east1")
    assert not regional_key_location_ok("us-east1", "us-west1")
    assert not regional_key_location_ok("us-east1", "us")
    assert not regional_key_location_ok("global", "global")


def test_a_bucket_takes_a_key_where_its_location_maps() -> None:
    assert key_location_for_bucket("EU") == "europe"
    assert bucket_key_location_ok("EU", "europe")
    assert bucket_key_location_ok("US-EAST1+US-WEST1", "us")
    assert bucket_key_location_ok("NAM4", "nam4")
    assert bucket_key_location_ok("US-EAST1", "us-east1")
    assert not bucket_key_location_ok("US", "us-east1")
    assert key_location_for_bucket("US-EAST1+EUROPE-WEST1") is None


def test_a_database_takes_a_key_where_its_location_maps() -> None:
    assert key_location_for_database("nam5") == "us"
    assert database_key_location_ok("nam5", "us")
    assert database_key_location_ok("eur3", "europe")
    assert database_key_location_ok("us-east1", "us-east1")
    assert not database_key_location_ok("nam5", "us-east1")


def test_key_region_only_for_a_regional_key() -> None:
    assert key_region("projects/p/locations/us-east1/keyRings/r/cryptoKeys/k") == "us-east1"
    assert key_region("projects/p/locations/us/keyRings/r/cryptoKeys/k") is None
    assert key_region("projects/p/locations/global/keyRings/r/cryptoKeys/k") is None
    assert key_region("us-east1") is None
