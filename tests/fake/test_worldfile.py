"""The fake world file: validation with paths, dump/load round trips, durable state.

Backends: fake."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from worlds import (
    APP_KEY,
    BUCKET,
    EU_KEY,
    NEW_KEY,
    NOW,
    OBJECT,
    bucket,
    key,
    make_backend,
    make_world,
    obj,
    v,
    write_world,
)

from rotator.backends.fake import FakeBackend, open_world, reset_world, state_path
from rotator.backends.fake.worldfile import validate_world
from rotator.errors import BadInput


def _reject(doc: dict[str, Any]) -> BadInput:
    with pytest.raises(BadInput) as info:
        FakeBackend.from_dict(doc, source="w.yaml")
    assert info.value.exit_code == 2
    assert info.value.message.startswith("w.yaml: ")
    return info.value


# -- validation -------------------------------------------------------------------------


def test_default_world_is_valid_and_minimal_world_takes_defaults() -> None:
    assert make_backend().project == "demo"
    b = FakeBackend.from_dict({})
    assert (b.project, b.project_number, b.clock.now()) == ("demo", "111111111111", NOW)
    assert list(b.storage.list_buckets()) == []


def test_key_defaults_version_1_enabled_and_primary() -> None:
    b = FakeBackend.from_dict({"kms": [{"key": APP_KEY}]})
    k = b.kms.get_crypto_key(APP_KEY)
    assert (k.primary, k.protection_level) == (1, "SOFTWARE")
    assert k.destroy_scheduled_duration == timedelta(days=30)
    assert [x.state for x in b.kms.list_crypto_key_versions(APP_KEY)] == ["ENABLED"]


def test_unknown_field_names_its_path() -> None:
    doc = make_world()
    doc["storage"][0]["objects"][0]["colour"] = "blue"
    err = _reject(doc)
    assert "storage[0].objects[0].colour" in err.message
    assert "unknown field" in err.message


def test_unknown_top_level_field() -> None:
    doc = make_world()
    doc["buckets"] = []
    assert "buckets: unknown field" in _reject(doc).message


def test_wrong_type_names_its_path() -> None:
    doc = make_world()
    doc["storage"][0]["versioning"] = "yes"
    assert "storage[0].versioning" in _reject(doc).message


def test_unknown_version_state_names_its_path() -> None:
    assert "kms[0].versions" in _reject(make_world(kms=[key(APP_KEY, {1: "ACTIVE"})])).message


def test_duplicate_yaml_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text(
        "project: demo\nstorage:\n  - bucket: a-bucket\n    location: US-EAST1\n    location: EU\n",
        encoding="utf-8",
    )
    with pytest.raises(BadInput, match=r"duplicate key 'location' at line 5"):
        open_world(str(path))
    assert not os.path.exists(state_path(str(path)))


def test_invalid_yaml_says_where(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("kms: [\n", encoding="utf-8")
    with pytest.raises(BadInput, match="not valid YAML"):
        open_world(str(path))


def test_missing_world_file(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="not found"):
        open_world(str(tmp_path / "nope.yaml"))


def test_kms_key_version_of_an_undeclared_key() -> None:
    other = APP_KEY.replace("/app", "/ghost")
    err = _reject(make_world(storage=[bucket(objects=[obj(OBJECT, v(other, 1))])]))
    assert "storage[0].objects[0].kms_key_version" in err.message
    assert "not declared under kms" in err.message


def test_kms_key_version_that_does_not_exist() -> None:
    err = _reject(make_world(storage=[bucket(objects=[obj(OBJECT, v(APP_KEY, 3))])]))
    assert "storage[0].objects[0].kms_key_version" in err.message
    assert "version 3 does not exist" in err.message


def test_dangling_version_in_a_noncurrent_generation() -> None:
    older = [{"generation": 1, "kms_key_version": v(NEW_KEY, 9)}]
    o = obj(OBJECT, v(APP_KEY, 1), generation=2, noncurrent=older)
    err = _reject(make_world(storage=[bucket(objects=[o], versioning=True)]))
    assert "storage[0].objects[0].noncurrent[0].kms_key_version" in err.message


def test_default_key_not_declared() -> None:
    err = _reject(make_world(storage=[bucket(default_kms_key=APP_KEY.replace("/app", "/ghost"))]))
    assert "storage[0].default_kms_key" in err.message and "not declared" in err.message


def test_primary_that_does_not_exist() -> None:
    err = _reject(make_world(kms=[key(APP_KEY, {1: "ENABLED"}, primary=4)]))
    assert "kms[0].primary" in err.message


def test_malformed_key_name_names_the_path_and_the_problem() -> None:
    err = _reject(make_world(kms=[key("projects/demo/keyRings/ring/cryptoKeys/app")]))
    assert "kms[0].key" in err.message
    assert "malformed key name" in err.message


def test_version_name_where_a_key_is_expected() -> None:
    err = _reject(make_world(storage=[bucket(default_kms_key=v(APP_KEY, 1))]))
    assert "storage[0].default_kms_key" in err.message
    assert "key version was given where a key is expected" in err.message


def test_key_declared_twice() -> None:
    assert "declared twice" in _reject(make_world(kms=[key(APP_KEY), key(APP_KEY)])).message


def test_object_declared_twice() -> None:
    err = _reject(make_world(storage=[bucket(objects=[obj("a"), obj("a")])]))
    assert "storage[0].objects[1].name" in err.message


@pytest.mark.parametrize("value", ["7 days", "1w", "-1d"])
def test_bad_duration_names_its_path(value: str) -> None:
    err = _reject(make_world(storage=[bucket(soft_delete=value)]))
    assert "storage[0].soft_delete" in err.message
    assert "expected a duration like 30d" in err.message


def test_bad_destroy_scheduled_duration() -> None:
    err = _reject(make_world(kms=[key(APP_KEY, destroy_scheduled_duration="a month")]))
    assert "kms[0].destroy_scheduled_duration" in err.message


def test_bad_time_names_its_path() -> None:
    err = _reject(make_world(storage=[bucket(objects=[obj("a", created="last tuesday")])]))
    assert "storage[0].objects[0].created" in err.message


def test_default_key_in_the_wrong_location_r7() -> None:
    err = _reject(make_world(storage=[bucket(default_kms_key=EU_KEY)]))
    assert "storage[0].default_kms_key" in err.message
    assert "europe-west1" in err.message and "R7" in err.message


def test_unknown_bucket_location() -> None:
    err = _reject(make_world(storage=[bucket(location="US-EAST1+EUROPE-WEST1", default_kms_key=None)]))
    assert "storage[0].location" in err.message


def test_older_generation_newer_than_live() -> None:
    o = obj(OBJECT, v(APP_KEY, 1), noncurrent=[{"generation": 5}])
    assert (
        "storage[0].objects[0].noncurrent[0].generation"
        in _reject(make_world(storage=[bucket(objects=[o])])).message
    )


def test_other_services_references_are_checked_too() -> None:
    doc = make_world(
        functions=[
            {"function": "projects/demo/locations/us-east1/functions/f", "kms_key_version": v(APP_KEY, 8)}
        ]
    )
    assert "functions[0].kms_key_version" in _reject(doc).message


# -- generate ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "first", "last"),
    [
        (1, "bulk/0", "bulk/0"),
        (10, "bulk/0", "bulk/9"),
        (12, "bulk/00", "bulk/11"),
        (101, "bulk/000", "bulk/100"),
    ],
)
def test_generate_expands_to_zero_padded_names(count: int, first: str, last: str) -> None:
    b = make_backend(
        storage=[
            bucket(
                generate=[{"prefix": "bulk/", "count": count, "kms_key_version": v(APP_KEY, 1), "size": 4096}]
            )
        ]
    )
    items = b.storage.list_objects(BUCKET, page_size=1000).items
    assert len(items) == count
    assert (items[0].name, items[-1].name) == (first, last)
    assert {(o.generation, o.kms_key_version, o.size) for o in items} == {(1, v(APP_KEY, 1), 4096)}


def test_generate_checks_its_version() -> None:
    err = _reject(
        make_world(
            storage=[bucket(generate=[{"prefix": "b/", "count": 2, "kms_key_version": v(APP_KEY, 9)}])]
        )
    )
    assert "storage[0].generate[0].kms_key_version" in err.message


# -- dump -------------------------------------------------------------------------------


def _round_trip(b: FakeBackend) -> None:
    first = b.dump()
    again = FakeBackend.from_dict(validate_world(b.dump(), source="dump"))
    assert again.dump() == first


def test_dump_loads_back_unchanged() -> None:
    b = make_backend(
        storage=[
            bucket(
                objects=[
                    obj(
                        OBJECT,
                        v(APP_KEY, 1),
                        temporary_hold=True,
                        retention={"mode": "Locked", "retain_until": "2031-01-01T00:00:00Z"},
                    ),
                    obj("csek", None, customer_supplied_key=True),
                ],
                retention={"period": "365d", "locked": True},
            ),
            bucket("versioned", [obj("a", v(APP_KEY, 1))], versioning=True, soft_delete="0"),
        ],
        firestore=[{"database": "projects/demo/databases/(default)", "kms_key": APP_KEY}],
    )
    _round_trip(b)


def test_dump_after_changes_loads_back_unchanged() -> None:
    b = make_backend(
        storage=[
            bucket(objects=[obj(OBJECT, v(APP_KEY, 1)), obj("b", v(APP_KEY, 1))]),
            bucket("versioned", [obj("a", v(APP_KEY, 1))], versioning=True),
        ]
    )
    b.kms.destroy_crypto_key_version(v(APP_KEY, 1))
    b.kms.create_crypto_key_version(NEW_KEY)
    b.advance(timedelta(hours=2))
    b.kms.restore_crypto_key_version(v(APP_KEY, 1))
    b.kms.update_crypto_key_version(v(APP_KEY, 1), "ENABLED")
    b.storage.rewrite_object(BUCKET, OBJECT, destination_kms_key=NEW_KEY, if_generation_match=1)
    b.storage.rewrite_object("versioned", "a", destination_kms_key=NEW_KEY, if_generation_match=1)
    b.kms.destroy_crypto_key_version(v(NEW_KEY, 2))
    d = b.dump()
    assert d["now"] == "2026-11-22T02:00:00Z"
    new = next(k for k in d["kms"] if k["key"] == NEW_KEY)
    assert new["versions"] == {1: "ENABLED", 2: "DESTROY_SCHEDULED"}
    assert new["destroy_times"] == {2: "2026-12-22T02:00:00Z"}
    _round_trip(b)


def test_dump_after_delete_loads_back(backend: FakeBackend) -> None:
    backend.storage.delete(BUCKET, OBJECT)
    _round_trip(backend)


def test_dump_keeps_csek_on_older_generations() -> None:
    b = make_backend(
        storage=[
            bucket(
                versioning=True,
                objects=[
                    obj(
                        OBJECT,
                        v(APP_KEY, 1),
                        generation=2,
                        noncurrent=[
                            {"generation": 1, "kms_key_version": None, "customer_supplied_key": True}
                        ],
                    )
                ],
            )
        ]
    )
    (o,) = b.dump()["storage"][0]["objects"]
    assert o["noncurrent"][0].get("customer_supplied_key") is True


# -- open_world / reset_world -----------------------------------------------------------


def test_open_world_persists_changes_across_opens(world_file: Path) -> None:
    first = open_world(str(world_file))
    assert os.path.exists(state_path(str(world_file)))
    first.storage.rewrite_object(BUCKET, OBJECT, destination_kms_key=NEW_KEY, if_generation_match=None)
    first.kms.update_crypto_key_version(v(APP_KEY, 1), "DISABLED")
    first.advance(timedelta(days=1))
    second = open_world(str(world_file))
    assert second.kms.get_crypto_key_version(v(APP_KEY, 1)).state == "DISABLED"
    assert second.storage.get_object(BUCKET, OBJECT).kms_key_version == v(NEW_KEY, 1)
    assert second.clock.now() == NOW + timedelta(days=1)
    assert second.describe()["world"] == os.path.abspath(world_file)


def test_editing_the_yaml_after_state_exists_is_refused_until_reset(world_file: Path) -> None:
    b = open_world(str(world_file))
    b.kms.update_crypto_key_version(v(APP_KEY, 1), "DISABLED")
    doc = make_world(now="2027-01-01T00:00:00Z")
    write_world(world_file, doc)
    with pytest.raises(BadInput) as info:
        open_world(str(world_file))
    assert "world reset" in info.value.message
    assert str(world_file) in info.value.message
    fresh = reset_world(str(world_file))
    assert fresh.clock.now().year == 2027
    assert fresh.kms.get_crypto_key_version(v(APP_KEY, 1)).state == "ENABLED"  # state discarded
    assert open_world(str(world_file)).clock.now().year == 2027


def test_reset_world_discards_applied_changes(world_file: Path) -> None:
    open_world(str(world_file)).storage.upload(BUCKET, "extra", 1)
    assert [o.name for o in reset_world(str(world_file)).storage.list_objects(BUCKET).items] == [OBJECT]


def test_invalid_world_file_leaves_no_state(tmp_path: Path) -> None:
    doc = make_world()
    doc["storage"][0]["colour"] = "red"
    path = write_world(tmp_path / "w.yaml", doc)
    with pytest.raises(BadInput, match=r"storage\[0\]\.colour"):
        open_world(str(path))
    assert not os.path.exists(state_path(str(path)))


def test_yaml_with_integer_version_keys_and_times_as_text(tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_text(
        f"now: 2026-11-22T00:00:00Z\nkms:\n  - key: {APP_KEY}\n    versions: {{1: DISABLED, 2: ENABLED}}\n",
        encoding="utf-8",
    )
    b = open_world(str(path))
    assert [x.state for x in b.kms.list_crypto_key_versions(APP_KEY)] == ["DISABLED", "ENABLED"]
    assert b.kms.get_crypto_key(APP_KEY).primary == 2


# -- the frame and the services' sections ------------------------------------------------


def test_each_service_section_is_in_its_package_and_the_schema_lists_them_all() -> None:
    """A service's world.py holds the schema of its sections (rotator/services/<name>/),
    no two services claim one, and the world file's schema takes them from the registry,
    in its order."""
    from rotator.backends.fake.worldfile import world_schema
    from rotator.services import REGISTRY, part

    sections = {spec.name: tuple(part(spec.name, "world").SECTIONS) for spec in REGISTRY}
    for name, owned in sections.items():
        assert owned, name
    every = [s for owned in sections.values() for s in owned]
    assert len(every) == len(set(every))
    listed = list(world_schema()["properties"])
    assert [s for s in listed if s in every] == every
