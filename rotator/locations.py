"""Where a key may sit for a resource (R7)."""

from __future__ import annotations

import re

from rotator.names import location_of

# Predefined dual-regions take a key ring in that same dual-region (R7).
_PREDEFINED_DUAL = {"ASIA1", "EUR4", "NAM4"}
# Cloud Storage's multi-regions and the KMS location of their keys: KMS names the
# European multi-region `europe` (there is no `eu` key location).
MULTI_REGION_KEY_LOCATION = {"US": "us", "EU": "europe", "ASIA": "asia"}
_CONTINENT = {"us": "us", "northamerica": "us", "europe": "europe", "asia": "asia"}


# A resource a key change moves, where it is, and the KMS location its key must be in
# (R7): what each service's `location_targets` hands the location preflight.
LocationTarget = tuple[str, str, str]


def key_location_for_bucket(bucket_location: str) -> str | None:
    """The KMS location a bucket's key must be in, or None when none can serve it."""
    loc = bucket_location.upper()
    if loc in _PREDEFINED_DUAL:
        return loc.lower()
    if loc in MULTI_REGION_KEY_LOCATION:
        return MULTI_REGION_KEY_LOCATION[loc]
    if "+" in loc:  # a configurable dual-region: US-EAST1+US-WEST1 -> us, EUROPE-...+... -> europe (R7)
        continents = {_CONTINENT.get(r.lower().split("-")[0]) for r in loc.split("+")}
        return continents.pop() if len(continents) == 1 and None not in continents else None
    return loc.lower()


def bucket_key_location_ok(bucket_location: str, key_location: str) -> bool:
    return key_location_for_bucket(bucket_location) == key_location.lower()


_REGION = re.compile(r"[a-z]+-[a-z]+[0-9]+")


def key_region(key: str) -> str | None:
    """The one region whose regional resources (Cloud Run, functions, Dataflow,
    Artifact Registry) can use this key, or None for a multi-region or global key:
    those need a key in their own region (R7, R30)."""
    location = location_of(key) if "/locations/" in key else ""
    return location if is_region(location) else None


def is_region(location: str) -> bool:
    """A region (us-east1), not a multi-region (us, europe), dual-region (nam4) or global."""
    return bool(_REGION.fullmatch(location))


def regional_key_location_ok(resource_region: str, key_location: str) -> bool:
    """Dataflow, Cloud Run, functions, Artifact Registry: the same region, never global
    or a multi-region (R7, R30)."""
    return resource_region.lower() == key_location.lower() and key_location != "global"


# Firestore multi-regions take a key in the matching KMS multi-region (R7).
_FIRESTORE_KEY_LOCATION = {"nam5": "us", "eur3": "europe"}


def key_location_for_database(location: str) -> str:
    return _FIRESTORE_KEY_LOCATION.get(location, location)


def database_key_location_ok(database_location: str, key_location: str) -> bool:
    """Firestore: a key in the location its database's maps to (R7)."""
    return key_location_for_database(database_location) == key_location
