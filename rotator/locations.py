"""Where a key may sit for a resource (R7)."""

from __future__ import annotations

# Predefined dual-regions take a key ring in that same dual-region (R7).
_PREDEFINED_DUAL = {"ASIA1", "EUR4", "NAM4"}
_MULTI = {"US", "EU", "ASIA"}
_CONTINENT = {"us": "us", "northamerica": "us", "europe": "eu", "asia": "asia"}


def key_location_for_bucket(bucket_location: str) -> str | None:
    """The KMS location a bucket's key must be in, or None when none can serve it."""
    loc = bucket_location.upper()
    if loc in _PREDEFINED_DUAL or loc in _MULTI:
        return loc.lower()
    if "+" in loc:  # a configurable dual-region, e.g. US-EAST1+US-WEST1 -> us (R7)
        continents = {_CONTINENT.get(r.lower().split("-")[0]) for r in loc.split("+")}
        return continents.pop() if len(continents) == 1 and None not in continents else None
    return loc.lower()


def bucket_key_location_ok(bucket_location: str, key_location: str) -> bool:
    return key_location_for_bucket(bucket_location) == key_location.lower()


def regional_key_location_ok(resource_region: str, key_location: str) -> bool:
    """Dataflow, Cloud Run, functions, Artifact Registry: the same region, never global
    or a multi-region (R7, R30)."""
    return resource_region.lower() == key_location.lower() and key_location != "global"


# Firestore multi-regions take a key in the matching KMS multi-region (R7).
_FIRESTORE_KEY_LOCATION = {"nam5": "us", "eur3": "europe"}


def key_location_for_database(location: str) -> str:
    return _FIRESTORE_KEY_LOCATION.get(location, location)
