"""Key and key-version names (R1): parse, strip, compare; malformed names say what is wrong.

Backends: none (names only)."""

from __future__ import annotations

import pytest
from worlds import APP_KEY, EU_KEY, NEW_KEY, v

from rotator.errors import BadInput
from rotator.names import KeyName, KeyVersionName, parse_key, parse_version, same_key, strip_version


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
