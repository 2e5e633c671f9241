"""Key and key-version names (R1): parse, strip, compare; malformed names say what is wrong.

Backends: none (names only)."""

from __future__ import annotations

import pytest
from worlds import APP_KEY, EU_KEY, NEW_KEY, v

from rotator.errors import BadInput
from rotator.locations import key_region
from rotator.names import (
    KeyName,
    KeyVersionName,
    is_version,
    is_version_of,
    key_id,
    key_of,
    key_ring_of,
    location_of,
    parse_key,
    parse_version,
    same_key,
    strip_version,
    version_id,
    version_name,
    version_number,
    versions_prefix,
)


def test_parse_key_splits_every_part_and_prints_back() -> None:
    k = parse_key(APP_KEY)
    assert k == KeyName("demo", "us-east1", "ring", "app")
    assert str(k) == APP_KEY


def test_parse_key_tolerates_surrounding_whitespace() -> None:
    assert str(parse_key(f"  {APP_KEY}\n")) == APP_KEY


def test_parse_version_keeps_key_and_number() -> None:
    ver = parse_version(v(APP_KEY, 12))
    assert ver == KeyVersionName(parse_key(APP_KEY), 12)
    assert ver.number == 12
    assert str(ver) == v(APP_KEY, 12)
    assert parse_key(APP_KEY).version(12) == ver


def test_key_ids_may_use_underscore_dash_and_upper_case() -> None:
    name = "projects/my-proj-123/locations/global/keyRings/Ring_1/cryptoKeys/Key-A_b"
    assert str(parse_key(name)) == name


def test_domain_scoped_project_ids_parse() -> None:
    name = "projects/example.com:proj/locations/us/keyRings/r/cryptoKeys/k"
    assert parse_key(name).project == "example.com:proj"


def test_strip_version_gives_the_key_of_either_form() -> None:
    assert strip_version(v(APP_KEY, 3)) == parse_key(APP_KEY)
    assert strip_version(APP_KEY) == parse_key(APP_KEY)


def test_same_key_compares_keys_ignoring_versions() -> None:
    assert same_key(v(APP_KEY, 1), v(APP_KEY, 2))
    assert same_key(APP_KEY, v(APP_KEY, 2))
    assert not same_key(APP_KEY, NEW_KEY)
    assert not same_key(v(APP_KEY, 1), v(EU_KEY, 1))


def test_versions_order_by_key_then_number() -> None:
    names = [v(APP_KEY, 10), v(APP_KEY, 2), v(APP_KEY, 1)]
    assert [p.number for p in sorted(parse_version(n) for n in names)] == [1, 2, 10]


# -- malformed names --------------------------------------------------------------------


def _bad_key(text: str) -> BadInput:
    with pytest.raises(BadInput) as info:
        parse_key(text)
    assert info.value.rule == "R1"
    assert info.value.exit_code == 2
    return info.value


def _bad_version(text: str) -> BadInput:
    with pytest.raises(BadInput) as info:
        parse_version(text)
    assert info.value.rule == "R1"
    return info.value


def test_version_where_a_key_is_expected() -> None:
    err = _bad_key(v(APP_KEY, 1))
    assert "key version was given where a key is expected" in err.message
    assert "drop /cryptoKeyVersions/N" in err.message
    assert err.resource == v(APP_KEY, 1)


def test_key_where_a_version_is_expected() -> None:
    err = _bad_version(APP_KEY)
    assert "key was given where a key version is expected" in err.message


def test_wrong_segment_is_named() -> None:
    err = _bad_key("projects/demo/location/us-east1/keyRings/ring/cryptoKeys/app")
    assert "part 3 should be 'locations', got 'location'" in err.message


def test_wrong_version_segment_is_named() -> None:
    err = _bad_version(f"{APP_KEY}/versions/1")
    assert "part 9 should be 'cryptoKeyVersions', got 'versions'" in err.message


def test_empty_id_is_named() -> None:
    err = _bad_key("projects/demo/locations/us-east1/keyRings//cryptoKeys/app")
    assert "keyRings id is empty" in err.message


def test_trailing_slash_counts_parts() -> None:
    err = _bad_key(APP_KEY + "/")
    assert "expected 8 '/'-separated parts, got 9" in err.message


def test_bad_characters_in_an_id() -> None:
    err = _bad_key("projects/demo/locations/us-east1/keyRings/ring/cryptoKeys/app key")
    assert "the cryptoKeys id 'app key' must match [A-Za-z0-9_-]" in err.message
    assert "'projects/demo/locations/us-east1/keyRings/ring/cryptoKeys/app key'" in err.message


@pytest.mark.parametrize("number", ["0", "-1", "01", "x"])
def test_version_must_be_a_positive_number(number: str) -> None:
    err = _bad_version(f"{APP_KEY}/cryptoKeyVersions/{number}")
    assert "must match a positive number" in err.message


def test_field_name_prefixes_the_message() -> None:
    with pytest.raises(BadInput, match=r"^--new-key: malformed key name"):
        parse_key("nope", field="--new-key")


def test_non_string_is_refused_not_crashed() -> None:
    with pytest.raises(BadInput):
        parse_key(None)  # type: ignore[arg-type]


def test_upper_case_location_message_names_the_location() -> None:
    err = _bad_key("projects/demo/locations/US-EAST1/keyRings/ring/cryptoKeys/app")
    assert "location" in err.message.split(":", 2)[-1]
    assert "outside [A-Za-z0-9_-]" not in err.message


# The helpers every other module builds and splits names with (issue 15: one copy).


def test_version_name_is_the_text_of_a_key_version_name() -> None:
    assert version_name(APP_KEY, 3) == str(parse_key(APP_KEY).version(3)) == v(APP_KEY, 3)
    assert version_name(APP_KEY, "3") == v(APP_KEY, 3)


def test_is_version_tells_a_version_from_a_key() -> None:
    assert is_version(v(APP_KEY, 1))
    assert not is_version(APP_KEY)


def test_key_of_a_version_is_its_key_and_a_key_is_its_own() -> None:
    assert key_of(v(APP_KEY, 7)) == APP_KEY
    assert key_of(APP_KEY) == APP_KEY


def test_version_id_is_the_number_at_the_end() -> None:
    assert version_id(v(APP_KEY, 12)) == 12
    with pytest.raises(ValueError):
        version_id(APP_KEY)


def test_versions_prefix_starts_every_version_of_the_key_and_no_other() -> None:
    prefix = versions_prefix(APP_KEY)
    assert v(APP_KEY, 1).startswith(prefix)
    assert not v(APP_KEY + "2", 1).startswith(prefix)


def test_is_version_of_needs_the_same_key_and_a_version() -> None:
    assert is_version_of(v(APP_KEY, 2), APP_KEY)
    assert not is_version_of(v(NEW_KEY, 2), APP_KEY)
    assert not is_version_of(v(APP_KEY + "2", 2), APP_KEY)  # a key whose id extends this one
    assert not is_version_of(APP_KEY, APP_KEY)
    assert not is_version_of(None, APP_KEY)
    assert not is_version_of("", APP_KEY)


def test_version_number_of_a_version_of_the_key_else_none() -> None:
    assert version_number(APP_KEY, v(APP_KEY, 4)) == 4
    assert version_number(APP_KEY, v(NEW_KEY, 4)) is None
    assert version_number(APP_KEY, None) is None
    assert version_number(APP_KEY, APP_KEY) is None


def test_location_of_any_resource_name_and_of_an_unreachable_entry() -> None:
    assert location_of(APP_KEY) == "us-east1"
    assert location_of(v(EU_KEY, 1)) == parse_key(EU_KEY).location
    assert location_of("projects/demo/locations/us-central1/services/web") == "us-central1"
    assert location_of("projects/demo/locations/nam5/backups/b1") == "nam5"
    assert location_of("projects/demo/locations/europe-west1") == "europe-west1"  # Google's unreachable
    assert location_of("europe-west1") == "europe-west1"  # or a bare location


def test_location_of_a_key_whose_ring_or_id_is_named_locations() -> None:
    # R1 allows a key ring or key id "locations": the location is the first one named.
    ring = "projects/p/locations/us-east1/keyRings/locations/cryptoKeys/k"
    assert location_of(ring) == "us-east1"
    assert location_of(ring + "/cryptoKeyVersions/3") == "us-east1"
    key_named_locations = "projects/p/locations/europe/keyRings/r/cryptoKeys/locations"
    assert location_of(key_named_locations + "/cryptoKeyVersions/1") == "europe"
    assert location_of("locations/us-west1") == "us-west1"
    assert location_of("us-west1") == "us-west1"
    assert key_region(ring) == "us-east1"  # so its Cloud Run services are listed (R7)


def test_key_id_and_key_ring_of_a_key() -> None:
    assert key_id(APP_KEY) == parse_key(APP_KEY).key == "app"
    assert key_ring_of(APP_KEY) == "projects/demo/locations/us-east1/keyRings/ring"
