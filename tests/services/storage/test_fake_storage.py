"""The fake Cloud Storage: each rule (R5, R7, R10-R19) as "a wrong step fails the way the
cloud would", next to the right step that works.

Backends: fake."""

from __future__ import annotations

from datetime import timedelta

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
)

from rotator import apierrors as api
from rotator.backends.fake import FakeBackend
from rotator.errors import BadInput
from rotator.model import IamPolicy, RewriteResult
from rotator.services.storage.api import iter_objects
from rotator.services.storage.fake import REWRITE_CHUNK_BYTES

WHERE = f"gs://{BUCKET}/{OBJECT}"


def rewrite(b: FakeBackend, name: str = OBJECT, to: str | None = NEW_KEY, **kw: object) -> RewriteResult:
    """One rewrite call in BUCKET, no generation precondition unless given."""
    kw.setdefault("if_generation_match", None)
    return b.storage.rewrite_object(BUCKET, name, destination_kms_key=to, **kw)  # type: ignore[arg-type]


def names(page_items: list) -> list[tuple[str, int]]:  # type: ignore[type-arg]
    return [(o.name, o.generation) for o in page_items]


# -- basics -----------------------------------------------------------------------------


def test_bucket_and_object_as_declared(backend: FakeBackend) -> None:
    b = backend.storage.get_bucket(BUCKET)
    assert (b.location, b.default_kms_key, b.versioning, b.soft_delete) == (
        "US-EAST1",
        APP_KEY,
        False,
        timedelta(days=7),
    )
    o = backend.storage.get_object(BUCKET, OBJECT)
    assert (o.generation, o.kms_key_version, o.size, o.created, o.state) == (
        1,
        v(APP_KEY, 1),
        1024,
        NOW,
        "live",
    )
    assert [x.name for x in backend.storage.list_buckets()] == [BUCKET]


def test_missing_bucket_and_object_are_not_found(backend: FakeBackend) -> None:
    with pytest.raises(api.NotFound):
        backend.storage.get_bucket("nope")
    with pytest.raises(api.NotFound):
        backend.storage.get_object(BUCKET, "nope")
    with pytest.raises(api.NotFound):
        rewrite(backend, "nope")


# -- R5: the Storage agent needs Encrypter/Decrypter ------------------------------------


def _remove_agent(b: FakeBackend, key_name: str = APP_KEY) -> None:
    policy = b.kms.get_iam_policy(key_name)
    b.kms.set_iam_policy(key_name, IamPolicy({}, policy.etag))


@pytest.mark.parametrize(
    "step",
    [
        pytest.param(lambda b: b.storage.read(BUCKET, OBJECT), id="read"),
        pytest.param(lambda b: b.storage.upload(BUCKET, "new.txt", 1), id="upload-default"),
        pytest.param(lambda b: b.storage.upload(BUCKET, "new.txt", 1, kms_key=APP_KEY), id="upload-named"),
        pytest.param(lambda b: rewrite(b, to=APP_KEY), id="rewrite-same-key"),
        pytest.param(lambda b: b.storage.patch_bucket_default_kms_key(BUCKET, APP_KEY), id="patch-default"),
    ],
)
def test_r5_agent_removed_blocks_use_of_the_key(backend: FakeBackend, step) -> None:  # type: ignore[no-untyped-def]
    _remove_agent(backend)
    with pytest.raises(api.PermissionDenied) as info:
        step(backend)
    assert info.value.rule == "R5"
    assert "R5" in info.value.message
    assert "gs-project-accounts" in info.value.message


def test_r5_agent_removed_from_source_key_blocks_rewrite_to_a_granted_key(backend: FakeBackend) -> None:
    _remove_agent(backend, APP_KEY)
    with pytest.raises(api.PermissionDenied) as info:
        rewrite(backend, to=NEW_KEY)  # cannot decrypt the source
    assert info.value.rule == "R5"
    assert backend.storage.get_object(BUCKET, OBJECT).generation == 1


def test_r5_agent_removed_from_destination_key_blocks_rewrite(backend: FakeBackend) -> None:
    _remove_agent(backend, NEW_KEY)
    with pytest.raises(api.PermissionDenied) as info:
        rewrite(backend, to=NEW_KEY)  # cannot encrypt the destination
    assert info.value.rule == "R5"


def test_r5_metadata_needs_no_agent_and_regranting_restores(backend: FakeBackend) -> None:
    before = backend.kms.get_iam_policy(APP_KEY)
    _remove_agent(backend)
    assert backend.storage.get_object(BUCKET, OBJECT).kms_key_version == v(APP_KEY, 1)
    backend.kms.set_iam_policy(APP_KEY, IamPolicy(before.bindings))
    assert backend.storage.read(BUCKET, OBJECT).generation == 1


# -- R7: where a bucket's key may sit ---------------------------------------------------


def test_r7_default_key_in_the_wrong_location_is_refused(backend: FakeBackend) -> None:
    with pytest.raises(api.InvalidArgument) as info:
        backend.storage.patch_bucket_default_kms_key(BUCKET, EU_KEY)
    assert info.value.rule == "R7"
    assert "europe-west1" in info.value.message and "us-east1" in info.value.message
    assert backend.storage.get_bucket(BUCKET).default_kms_key == APP_KEY


def test_r7_upload_and_rewrite_naming_a_key_in_the_wrong_location_fail(backend: FakeBackend) -> None:
    with pytest.raises(api.InvalidArgument) as info:
        backend.storage.upload(BUCKET, "new.txt", 1, kms_key=EU_KEY)
    assert info.value.rule == "R7"
    with pytest.raises(api.InvalidArgument) as info:
        rewrite(backend, to=EU_KEY)
    assert info.value.rule == "R7"


def test_r7_default_key_must_be_a_key_not_a_version(backend: FakeBackend) -> None:
    with pytest.raises(api.InvalidArgument):
        backend.storage.patch_bucket_default_kms_key(BUCKET, v(NEW_KEY, 1))


US_KEY = "projects/demo/locations/us/keyRings/ring/cryptoKeys/multi"
NAM4_KEY = "projects/demo/locations/nam4/keyRings/ring/cryptoKeys/dual"


def _located_world() -> FakeBackend:
    return make_backend(
        kms=[key(APP_KEY), key(US_KEY), key(NAM4_KEY)],
        storage=[
            bucket("dual", location="US-EAST1+US-WEST1", default_kms_key=None),
            bucket("nam4", location="NAM4", default_kms_key=None),
        ],
    )


def test_r7_configurable_us_dual_region_takes_a_us_key() -> None:
    b = _located_world()
    assert b.storage.patch_bucket_default_kms_key("dual", US_KEY).default_kms_key == US_KEY
    assert b.storage.upload("dual", "x", 1).kms_key_version == v(US_KEY, 1)
    with pytest.raises(api.InvalidArgument) as info:
        b.storage.patch_bucket_default_kms_key("dual", APP_KEY)  # a regional key is wrong here
    assert info.value.rule == "R7"


def test_r7_predefined_dual_region_takes_its_own_location() -> None:
    b = _located_world()
    assert b.storage.patch_bucket_default_kms_key("nam4", NAM4_KEY).default_kms_key == NAM4_KEY
    for wrong in (US_KEY, APP_KEY):
        with pytest.raises(api.InvalidArgument) as info:
            b.storage.patch_bucket_default_kms_key("nam4", wrong)
        assert info.value.rule == "R7"


def test_clearing_the_default_key_means_google_default_encryption(backend: FakeBackend) -> None:
    assert backend.storage.patch_bucket_default_kms_key(BUCKET, None).default_kms_key is None
    assert backend.storage.upload(BUCKET, "plain.txt", 1).kms_key_version is None


# -- R10: request key beats bucket default; metadata is not encrypted -------------------


def test_r10_upload_uses_bucket_default_primary(backend: FakeBackend) -> None:
    assert backend.storage.upload(BUCKET, "new.txt", 5).kms_key_version == v(APP_KEY, 2)


def test_r10_key_in_request_beats_bucket_default(backend: FakeBackend) -> None:
    assert backend.storage.upload(BUCKET, "new.txt", 5, kms_key=NEW_KEY).kms_key_version == v(NEW_KEY, 1)
    assert rewrite(backend, to=NEW_KEY).resource.kms_key_version == v(NEW_KEY, 1)  # type: ignore[union-attr]


def test_r10_rewrite_without_a_key_lands_under_the_bucket_default(backend: FakeBackend) -> None:
    res = rewrite(backend, to=None)
    assert res.resource is not None
    assert res.resource.kms_key_version == v(APP_KEY, 2)


def test_r10_metadata_stays_listable_and_deletable_after_the_version_is_disabled(
    backend: FakeBackend,
) -> None:
    backend.kms.update_crypto_key_version(v(APP_KEY, 1), "DISABLED")
    assert names(backend.storage.list_objects(BUCKET).items) == [(OBJECT, 1)]
    assert backend.storage.get_object(BUCKET, OBJECT).kms_key_version == v(APP_KEY, 1)
    backend.storage.delete(BUCKET, OBJECT)
    assert backend.storage.list_objects(BUCKET).items == []


# -- R11: only a rewrite changes an object's key -----------------------------------------


def test_r11_rewrite_changes_the_key_and_adds_a_generation(backend: FakeBackend) -> None:
    res = rewrite(backend, to=NEW_KEY, if_generation_match=1)
    assert res.done and res.rewrite_token is None
    assert res.total_bytes == res.bytes_rewritten == 1024
    assert res.resource is not None
    assert (res.resource.generation, res.resource.kms_key_version) == (2, v(NEW_KEY, 1))
    assert backend.storage.get_object(BUCKET, OBJECT) == res.resource


def test_r11_metadata_updates_never_change_an_objects_key(backend: FakeBackend) -> None:
    backend.storage.patch_bucket_default_kms_key(BUCKET, NEW_KEY)
    backend.storage.set_holds(BUCKET, OBJECT, temporary=True, event_based=False)
    backend.storage.set_holds(BUCKET, OBJECT, temporary=False, event_based=False)
    o = backend.storage.get_object(BUCKET, OBJECT)
    assert (o.generation, o.kms_key_version) == (1, v(APP_KEY, 1))


# -- R12: after rotation new writes use the new primary ---------------------------------


def test_r12_rotation_changes_new_writes_only(backend: FakeBackend) -> None:
    before = backend.storage.upload(BUCKET, "before.txt", 1)
    new = backend.kms.create_crypto_key_version(APP_KEY)
    backend.kms.update_crypto_key_primary_version(APP_KEY, new.name)
    after = backend.storage.upload(BUCKET, "after.txt", 1)
    assert (before.kms_key_version, after.kms_key_version) == (v(APP_KEY, 2), v(APP_KEY, 3))
    assert backend.storage.read(BUCKET, OBJECT).kms_key_version == v(APP_KEY, 1)
    assert backend.storage.read(BUCKET, "before.txt").kms_key_version == v(APP_KEY, 2)
    assert rewrite(backend, to=APP_KEY).resource.kms_key_version == v(APP_KEY, 3)  # type: ignore[union-attr]


# -- R13: the replacement runbook, in order ---------------------------------------------


def test_r13_set_default_then_rewrite_then_disable(backend: FakeBackend) -> None:
    backend.storage.patch_bucket_default_kms_key(BUCKET, NEW_KEY)
    assert rewrite(backend, to=NEW_KEY, if_generation_match=1).done
    for n in (1, 2):
        backend.kms.update_crypto_key_version(v(APP_KEY, n), "DISABLED")
    assert backend.storage.read(BUCKET, OBJECT).kms_key_version == v(NEW_KEY, 1)
    assert backend.storage.upload(BUCKET, "next.txt", 1).kms_key_version == v(NEW_KEY, 1)


def test_r13_disabling_before_rewriting_strands_the_object(backend: FakeBackend) -> None:
    backend.storage.patch_bucket_default_kms_key(BUCKET, NEW_KEY)
    backend.kms.update_crypto_key_version(v(APP_KEY, 1), "DISABLED")
    with pytest.raises(api.FailedPrecondition) as info:
        rewrite(backend, to=NEW_KEY)
    assert info.value.rule == "R14"


def test_r13_disabling_before_moving_the_default_blocks_uploads(backend: FakeBackend) -> None:
    backend.kms.update_crypto_key_version(v(APP_KEY, 2), "DISABLED")
    with pytest.raises(api.FailedPrecondition) as info:
        backend.storage.upload(BUCKET, "next.txt", 1)
    assert info.value.rule == "R15"


# -- R14: data under a DISABLED or DESTROYED version ------------------------------------


def test_r14_disabled_version_blocks_read_and_rewrite_and_reenable_restores(backend: FakeBackend) -> None:
    backend.kms.update_crypto_key_version(v(APP_KEY, 1), "DISABLED")
    for step in (lambda: backend.storage.read(BUCKET, OBJECT), lambda: rewrite(backend)):
        with pytest.raises(api.FailedPrecondition) as info:
            step()
        assert info.value.rule == "R14"
        assert "DISABLED" in info.value.message
        assert info.value.resource == WHERE
    backend.kms.update_crypto_key_version(v(APP_KEY, 1), "ENABLED")
    assert backend.storage.read(BUCKET, OBJECT).generation == 1
    assert rewrite(backend).resource.generation == 2  # type: ignore[union-attr]


def test_r14_destroy_scheduled_blocks_until_restored_and_enabled(backend: FakeBackend) -> None:
    backend.kms.destroy_crypto_key_version(v(APP_KEY, 1))
    with pytest.raises(api.FailedPrecondition, match="DESTROY_SCHEDULED"):
        backend.storage.read(BUCKET, OBJECT)
    backend.kms.restore_crypto_key_version(v(APP_KEY, 1))
    with pytest.raises(api.FailedPrecondition, match="DISABLED"):  # restored as DISABLED (R1)
        backend.storage.read(BUCKET, OBJECT)
    backend.kms.update_crypto_key_version(v(APP_KEY, 1), "ENABLED")
    assert backend.storage.read(BUCKET, OBJECT).generation == 1


def test_r14_destroyed_version_loses_the_data_for_good(backend: FakeBackend) -> None:
    backend.kms.destroy_crypto_key_version(v(APP_KEY, 1))
    backend.advance(timedelta(days=30))
    for step in (lambda: backend.storage.read(BUCKET, OBJECT), lambda: rewrite(backend)):
        with pytest.raises(api.FailedPrecondition, match="DESTROYED") as info:
            step()
        assert info.value.rule == "R14"
    assert backend.storage.get_object(BUCKET, OBJECT).generation == 1  # metadata survives (R10)


def test_r14_disabled_version_blocks_reading_a_noncurrent_generation() -> None:
    b = make_backend(storage=[bucket(versioning=True, objects=[obj(OBJECT, v(APP_KEY, 1))])])
    rewrite(b, to=NEW_KEY)
    b.kms.update_crypto_key_version(v(APP_KEY, 1), "DISABLED")
    assert b.storage.read(BUCKET, OBJECT).generation == 2
    with pytest.raises(api.FailedPrecondition) as info:
        b.storage.read(BUCKET, OBJECT, generation=1)
    assert info.value.rule == "R14"


def test_r14_google_default_objects_need_no_key() -> None:
    b = make_backend(storage=[bucket(default_kms_key=None, objects=[obj("plain", None)])])
    for n in (1, 2):
        b.kms.update_crypto_key_version(v(APP_KEY, n), "DISABLED")
    assert b.storage.read(BUCKET, "plain").kms_key_version is None


# -- R15: a disabled primary blocks writes under the key --------------------------------


@pytest.mark.parametrize(
    "step",
    [
        pytest.param(lambda b: b.storage.upload(BUCKET, "n", 1), id="upload-to-default"),
        pytest.param(lambda b: b.storage.upload("other", "n", 1, kms_key=APP_KEY), id="upload-naming-key"),
        pytest.param(lambda b: rewrite(b, to=None), id="rewrite-to-default"),
        pytest.param(
            lambda b: b.storage.rewrite_object(
                "other", "o", destination_kms_key=APP_KEY, if_generation_match=None
            ),
            id="rewrite-naming-key",
        ),
        pytest.param(lambda b: b.storage.patch_bucket_default_kms_key("other", APP_KEY), id="patch-default"),
    ],
)
def test_r15_disabled_primary_blocks_writes_naming_or_defaulting_to_the_key(step) -> None:  # type: ignore[no-untyped-def]
    b = make_backend(
        storage=[
            bucket(BUCKET, [obj(OBJECT, v(NEW_KEY, 1))]),
            bucket("other", [obj("o", None)], default_kms_key=None),
        ]
    )
    b.kms.update_crypto_key_version(v(APP_KEY, 2), "DISABLED")
    with pytest.raises(api.FailedPrecondition) as info:
        step(b)
    assert info.value.rule == "R15"
    assert APP_KEY in info.value.message


def test_r15_destroyed_primary_also_blocks_and_other_keys_still_work(backend: FakeBackend) -> None:
    backend.kms.destroy_crypto_key_version(v(APP_KEY, 2))
    with pytest.raises(api.FailedPrecondition) as info:
        backend.storage.upload(BUCKET, "n", 1)
    assert info.value.rule == "R15"
    assert backend.storage.upload(BUCKET, "n", 1, kms_key=NEW_KEY).kms_key_version == v(NEW_KEY, 1)


# -- R16: holds and retention block replace and delete ----------------------------------

_HELD = {
    "temporary hold": ({"temporary_hold": True}, {}),
    "event-based hold": ({"event_based_hold": True}, {}),
    "object retention": ({"retention": {"mode": "Locked", "retain_until": "2026-12-22T00:00:00Z"}}, {}),
    "bucket retention policy": ({}, {"retention": {"period": "30d", "locked": True}}),
}


def _held_world(kind: str) -> FakeBackend:
    obj_extra, bucket_extra = _HELD[kind]
    return make_backend(storage=[bucket(objects=[obj(OBJECT, v(APP_KEY, 1), **obj_extra)], **bucket_extra)])


@pytest.mark.parametrize("kind", list(_HELD))
def test_r16_held_or_retained_object_cannot_be_rewritten_replaced_or_deleted(kind: str) -> None:
    b = _held_world(kind)
    for step in (
        lambda: rewrite(b),
        lambda: b.storage.delete(BUCKET, OBJECT),
        lambda: b.storage.upload(BUCKET, OBJECT, 1),
    ):
        with pytest.raises(api.PermissionDenied) as info:
            step()
        assert info.value.rule == "R16"
        assert kind in info.value.message
        assert info.value.resource == WHERE
    o = b.storage.get_object(BUCKET, OBJECT)
    assert (o.generation, o.kms_key_version) == (1, v(APP_KEY, 1))
    assert b.storage.read(BUCKET, OBJECT).generation == 1  # reading is fine


@pytest.mark.parametrize("kind", ["object retention", "bucket retention policy"])
def test_r16_rewrite_works_after_retention_expires(kind: str) -> None:
    b = _held_world(kind)
    b.advance(timedelta(days=30) - timedelta(seconds=1))
    with pytest.raises(api.PermissionDenied, match="until 2026-12-22T00:00:00Z"):
        rewrite(b)
    b.advance(timedelta(seconds=1))
    assert rewrite(b).resource.generation == 2  # type: ignore[union-attr]


@pytest.mark.parametrize("kind", ["temporary hold", "event-based hold"])
def test_r16_rewrite_works_after_the_hold_is_released(kind: str) -> None:
    b = _held_world(kind)
    b.storage.set_holds(BUCKET, OBJECT, temporary=False, event_based=False)
    assert rewrite(b).resource.generation == 2  # type: ignore[union-attr]


def test_r16_bucket_retention_counts_from_each_objects_creation() -> None:
    b = make_backend(
        storage=[
            bucket(
                objects=[
                    obj("old", v(APP_KEY, 1), created="2026-10-01T00:00:00Z"),
                    obj("new", v(APP_KEY, 1)),
                ],
                retention={"period": "30d", "locked": False},
            )
        ]
    )
    assert rewrite(b, "old").done
    with pytest.raises(api.PermissionDenied) as info:
        rewrite(b, "new")
    assert info.value.rule == "R16"


# -- R17: listing page by page ----------------------------------------------------------


def _many(n: int, **bucket_extra: object) -> FakeBackend:
    objs = [obj(f"o{i}", v(APP_KEY, 1)) for i in range(n)]
    return make_backend(storage=[bucket(objects=objs, **bucket_extra)])


def test_r17_pages_follow_next_page_token() -> None:
    b = _many(5)
    seen, token, pages = [], None, 0
    while True:
        page = b.storage.list_objects(BUCKET, page_size=2, page_token=token)
        pages += 1
        assert len(page.items) <= 2
        seen += [o.name for o in page.items]
        token = page.next_page_token
        if token is None:
            break
    assert (pages, seen) == (3, ["o0", "o1", "o2", "o3", "o4"])


def test_r17_exact_fit_has_no_next_page() -> None:
    page = _many(4).storage.list_objects(BUCKET, page_size=4)
    assert len(page.items) == 4 and page.next_page_token is None


def test_r17_iter_objects_streams_every_page() -> None:
    assert len(list(iter_objects(_many(7).storage, BUCKET, page_size=3))) == 7


def test_r17_versions_adds_noncurrent_and_soft_deleted_lists_only_those() -> None:
    b = make_backend(
        storage=[
            bucket(
                versioning=True,
                objects=[
                    obj(
                        "a",
                        v(APP_KEY, 1),
                        generation=3,
                        noncurrent=[{"generation": 2, "kms_key_version": v(APP_KEY, 1)}],
                        soft_deleted=[{"generation": 1, "kms_key_version": v(APP_KEY, 1)}],
                    ),
                    obj("b", v(APP_KEY, 2)),
                ],
            )
        ]
    )
    assert names(b.storage.list_objects(BUCKET).items) == [("a", 3), ("b", 1)]
    page1 = b.storage.list_objects(BUCKET, versions=True, page_size=2)
    page2 = b.storage.list_objects(BUCKET, versions=True, page_size=2, page_token=page1.next_page_token)
    assert names(page1.items) + names(page2.items) == [("a", 2), ("a", 3), ("b", 1)]
    assert [o.state for o in page1.items] == ["noncurrent", "live"]
    soft = b.storage.list_objects(BUCKET, soft_deleted=True).items
    assert names(soft) == [("a", 1)]
    assert soft[0].state == "soft_deleted"
    assert soft[0].hard_delete_time == NOW + timedelta(days=7)


def test_r17_garbage_page_token_is_invalid_argument() -> None:
    with pytest.raises(api.InvalidArgument):
        _many(2).storage.list_objects(BUCKET, page_token="not a token")


def test_r17_page_size_zero_is_an_api_error_not_a_crash() -> None:
    with pytest.raises(api.InvalidArgument):
        _many(2).storage.list_objects(BUCKET, page_size=0)


# -- R18: old generations keep their version --------------------------------------------


def test_r18_rewrite_in_soft_delete_bucket_leaves_old_generation_soft_deleted(backend: FakeBackend) -> None:
    backend.advance(timedelta(hours=1))
    rewrite(backend, to=NEW_KEY)
    assert names(backend.storage.list_objects(BUCKET, versions=True).items) == [(OBJECT, 2)]
    (old,) = backend.storage.list_objects(BUCKET, soft_deleted=True).items
    assert (old.generation, old.kms_key_version, old.state) == (1, v(APP_KEY, 1), "soft_deleted")
    assert old.hard_delete_time == NOW + timedelta(hours=1) + timedelta(days=7)
    with pytest.raises(api.NotFound):
        backend.storage.get_object(BUCKET, OBJECT, generation=1)
    backend.advance(timedelta(days=7) - timedelta(seconds=1))
    assert len(backend.storage.list_objects(BUCKET, soft_deleted=True).items) == 1
    backend.advance(timedelta(seconds=1))
    assert backend.storage.list_objects(BUCKET, soft_deleted=True).items == []
    assert backend.storage.get_object(BUCKET, OBJECT).generation == 2


def test_r18_rewrite_in_versioned_bucket_leaves_old_generation_noncurrent() -> None:
    b = make_backend(storage=[bucket(versioning=True, objects=[obj(OBJECT, v(APP_KEY, 1))])])
    rewrite(b, to=NEW_KEY)
    gens = b.storage.list_objects(BUCKET, versions=True).items
    assert [(o.generation, o.state, o.kms_key_version) for o in gens] == [
        (1, "noncurrent", v(APP_KEY, 1)),
        (2, "live", v(NEW_KEY, 1)),
    ]
    assert b.storage.get_object(BUCKET, OBJECT, generation=1).kms_key_version == v(APP_KEY, 1)
    b.advance(timedelta(days=365))
    assert len(b.storage.list_objects(BUCKET, versions=True).items) == 2  # never purged by time


def test_r18_without_soft_delete_or_versioning_the_old_generation_is_gone() -> None:
    b = make_backend(storage=[bucket(soft_delete="0", objects=[obj(OBJECT, v(APP_KEY, 1))])])
    rewrite(b, to=NEW_KEY)
    assert names(b.storage.list_objects(BUCKET, versions=True).items) == [(OBJECT, 2)]
    assert b.storage.list_objects(BUCKET, soft_deleted=True).items == []


def test_r18_delete_soft_deletes_under_the_same_version(backend: FakeBackend) -> None:
    backend.storage.delete(BUCKET, OBJECT)
    assert backend.storage.list_objects(BUCKET).items == []
    (gone,) = backend.storage.list_objects(BUCKET, soft_deleted=True).items
    assert (gone.generation, gone.kms_key_version) == (1, v(APP_KEY, 1))


def test_generations_keep_growing_across_deletes(backend: FakeBackend) -> None:
    backend.storage.delete(BUCKET, OBJECT)
    assert backend.storage.upload(BUCKET, OBJECT, 1).generation == 2


def test_generation_numbers_never_repeat_for_a_name() -> None:
    b = make_backend(storage=[bucket(soft_delete="0", objects=[obj(OBJECT, v(APP_KEY, 1))])])
    b.storage.delete(BUCKET, OBJECT)
    b.storage.upload(BUCKET, OBJECT, 1)
    with pytest.raises(api.PreconditionFailed):
        rewrite(b, if_generation_match=1)  # the plan saw the deleted object's generation 1


# -- R19: customer-supplied keys --------------------------------------------------------


def test_r19_csek_object_cannot_be_rewritten_or_read_without_its_key() -> None:
    b = make_backend(storage=[bucket(objects=[obj("secret", None, customer_supplied_key=True)])])
    assert b.storage.get_object(BUCKET, "secret").customer_supplied_key
    for step in (lambda: rewrite(b, "secret"), lambda: b.storage.read(BUCKET, "secret")):
        with pytest.raises(api.InvalidArgument) as info:
            step()
        assert info.value.rule == "R19"
        assert "R19" in info.value.message


def test_r19_upload_with_both_csek_and_kms_key_is_refused(backend: FakeBackend) -> None:
    with pytest.raises(api.InvalidArgument) as info:
        backend.storage.upload(BUCKET, "x", 1, kms_key=APP_KEY, customer_supplied_key=True)
    assert info.value.rule == "R19"
    assert backend.storage.upload(BUCKET, "x", 1, customer_supplied_key=True).kms_key_version is None


def test_r19_world_with_csek_and_kms_key_version_is_rejected() -> None:
    doc = make_world(storage=[bucket(objects=[obj("x", v(APP_KEY, 1), customer_supplied_key=True)])])
    with pytest.raises(BadInput, match=r"storage\[0\]\.objects\[0\].*R19"):
        FakeBackend.from_dict(doc)


# -- rewrite preconditions and multi-call rewrites --------------------------------------


def test_rewrite_with_stale_generation_precondition_fails(backend: FakeBackend) -> None:
    backend.storage.upload(BUCKET, OBJECT, 10)  # someone wrote generation 2 since the plan
    with pytest.raises(api.PreconditionFailed) as info:
        rewrite(backend, if_generation_match=1)
    assert info.value.http_status == 412
    o = backend.storage.get_object(BUCKET, OBJECT)
    assert (o.generation, o.kms_key_version) == (2, v(APP_KEY, 2))
    assert rewrite(backend, if_generation_match=2).resource.generation == 3  # type: ignore[union-attr]


def test_upload_if_generation_match_zero_means_only_if_absent(backend: FakeBackend) -> None:
    assert backend.storage.upload(BUCKET, "fresh", 1, if_generation_match=0).generation == 1
    with pytest.raises(api.PreconditionFailed):
        backend.storage.upload(BUCKET, OBJECT, 1, if_generation_match=0)


BIG = 2 * REWRITE_CHUNK_BYTES + 1


def _big_world() -> FakeBackend:
    return make_backend(
        storage=[bucket(objects=[obj("big", v(APP_KEY, 1), size=BIG), obj("big2", v(APP_KEY, 1), size=BIG)])]
    )


def test_large_rewrite_takes_several_calls_and_changes_nothing_until_done() -> None:
    b = _big_world()
    calls, token = [], None
    while True:
        res = rewrite(b, "big", rewrite_token=token, if_generation_match=1)
        calls.append((res.done, res.bytes_rewritten, res.total_bytes))
        if res.done:
            break
        assert res.rewrite_token and res.resource is None
        o = b.storage.get_object(BUCKET, "big")
        assert (o.generation, o.kms_key_version) == (1, v(APP_KEY, 1))
        token = res.rewrite_token
    assert calls == [
        (False, REWRITE_CHUNK_BYTES, BIG),
        (False, 2 * REWRITE_CHUNK_BYTES, BIG),
        (True, BIG, BIG),
    ]
    assert res.resource is not None
    done = res.resource
    assert (done.generation, done.kms_key_version, done.size) == (2, v(NEW_KEY, 1), BIG)


def test_max_bytes_per_call_sets_the_step() -> None:
    b = make_backend(storage=[bucket(objects=[obj("o", v(APP_KEY, 1), size=10)])])
    first = rewrite(b, "o", max_bytes_rewritten_per_call=4)
    assert (first.done, first.bytes_rewritten) == (False, 4)


@pytest.mark.parametrize(
    "misuse",
    [
        pytest.param(lambda b, t: rewrite(b, "big2", rewrite_token=t), id="other-object"),
        pytest.param(lambda b, t: rewrite(b, "big", to=APP_KEY, rewrite_token=t), id="other-key"),
        pytest.param(lambda b, t: rewrite(b, "big", rewrite_token="bm9wZQ=="), id="garbage"),
    ],
)
def test_a_foreign_rewrite_token_is_rejected(misuse) -> None:  # type: ignore[no-untyped-def]
    b = _big_world()
    token = rewrite(b, "big").rewrite_token
    with pytest.raises(api.InvalidArgument):
        misuse(b, token)
    for name in ("big", "big2"):
        assert b.storage.get_object(BUCKET, name).generation == 1


def test_a_rewrite_token_dies_when_the_object_changes() -> None:
    b = _big_world()
    token = rewrite(b, "big").rewrite_token
    b.storage.upload(BUCKET, "big", 5)
    with pytest.raises(api.InvalidArgument):
        rewrite(b, "big", rewrite_token=token)
