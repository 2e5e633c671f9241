"""The fake Cloud KMS (R1-R3, R5): version states, rotation, IAM with etags.

Backends: fake."""

from __future__ import annotations

from datetime import timedelta

import pytest
from worlds import (
    APP_KEY,
    BUCKET,
    ENCRYPTER_DECRYPTER,
    NEW_KEY,
    NOW,
    OBJECT,
    STORAGE_AGENT,
    key,
    make_backend,
    make_world,
    v,
)

from rotator import apierrors as api
from rotator.backends.fake import FakeBackend
from rotator.model import IamPolicy

# -- reads ------------------------------------------------------------------------------


def test_get_crypto_key(backend: FakeBackend) -> None:
    k = backend.kms.get_crypto_key(APP_KEY)
    assert (k.name, k.primary, k.protection_level) == (APP_KEY, 2, "SOFTWARE")
    assert k.destroy_scheduled_duration == timedelta(days=30)
    assert k.location == "us-east1"


def test_list_versions_in_number_order(backend: FakeBackend) -> None:
    versions = backend.kms.list_crypto_key_versions(APP_KEY)
    assert [(x.name, x.state, x.destroy_time) for x in versions] == [
        (v(APP_KEY, 1), "ENABLED", None),
        (v(APP_KEY, 2), "ENABLED", None),
    ]


def test_unknown_key_and_version_are_not_found(backend: FakeBackend) -> None:
    missing = APP_KEY.replace("/app", "/nope")
    with pytest.raises(api.NotFound):
        backend.kms.get_crypto_key(missing)
    with pytest.raises(api.NotFound) as info:
        backend.kms.get_crypto_key_version(v(APP_KEY, 9))
    assert info.value.resource == v(APP_KEY, 9)


def test_malformed_name_is_invalid_argument_citing_r1(backend: FakeBackend) -> None:
    with pytest.raises(api.InvalidArgument) as info:
        backend.kms.get_crypto_key(v(APP_KEY, 1))
    assert info.value.rule == "R1"
    assert info.value.http_status == 400


# -- R1: states, destroy, restore -------------------------------------------------------


def test_disable_then_enable(backend: FakeBackend) -> None:
    assert backend.kms.update_crypto_key_version(v(APP_KEY, 1), "DISABLED").state == "DISABLED"
    assert backend.kms.get_crypto_key_version(v(APP_KEY, 1)).state == "DISABLED"
    assert backend.kms.update_crypto_key_version(v(APP_KEY, 1), "ENABLED").state == "ENABLED"


def test_client_cannot_set_destroy_states_directly(backend: FakeBackend) -> None:
    with pytest.raises(api.InvalidArgument):
        backend.kms.update_crypto_key_version(v(APP_KEY, 1), "DESTROYED")


def test_destroy_schedules_for_the_key_duration(backend: FakeBackend) -> None:
    got = backend.kms.destroy_crypto_key_version(v(APP_KEY, 1))
    assert got.state == "DESTROY_SCHEDULED"
    assert got.destroy_time == NOW + timedelta(days=30)
    assert backend.kms.get_crypto_key_version(v(APP_KEY, 1)).destroy_time == NOW + timedelta(days=30)


def test_destroy_uses_a_custom_destroy_scheduled_duration() -> None:
    b = make_backend(kms=[key(APP_KEY, {1: "ENABLED", 2: "ENABLED"}, destroy_scheduled_duration="1d")])
    b.advance(timedelta(hours=5))
    got = b.kms.destroy_crypto_key_version(v(APP_KEY, 1))
    assert got.destroy_time == NOW + timedelta(hours=5) + timedelta(days=1)


def test_restore_brings_back_disabled_not_enabled(backend: FakeBackend) -> None:
    backend.kms.destroy_crypto_key_version(v(APP_KEY, 1))
    got = backend.kms.restore_crypto_key_version(v(APP_KEY, 1))
    assert (got.state, got.destroy_time) == ("DISABLED", None)


def test_restore_only_from_destroy_scheduled(backend: FakeBackend) -> None:
    with pytest.raises(api.FailedPrecondition) as info:
        backend.kms.restore_crypto_key_version(v(APP_KEY, 1))
    assert info.value.rule == "R1"


def test_destroy_scheduled_becomes_destroyed_when_the_clock_passes(backend: FakeBackend) -> None:
    backend.kms.destroy_crypto_key_version(v(APP_KEY, 1))
    backend.advance(timedelta(days=30) - timedelta(seconds=1))
    assert backend.kms.get_crypto_key_version(v(APP_KEY, 1)).state == "DESTROY_SCHEDULED"
    backend.advance(timedelta(seconds=1))
    assert backend.kms.get_crypto_key_version(v(APP_KEY, 1)).state == "DESTROYED"
    # the other version is untouched
    assert backend.kms.get_crypto_key_version(v(APP_KEY, 2)).state == "ENABLED"


def test_destroyed_is_final(backend: FakeBackend) -> None:
    backend.kms.destroy_crypto_key_version(v(APP_KEY, 1))
    backend.advance(timedelta(days=31))
    for attempt in (
        lambda: backend.kms.restore_crypto_key_version(v(APP_KEY, 1)),
        lambda: backend.kms.update_crypto_key_version(v(APP_KEY, 1), "ENABLED"),
        lambda: backend.kms.destroy_crypto_key_version(v(APP_KEY, 1)),
    ):
        with pytest.raises(api.FailedPrecondition) as info:
            attempt()
        assert info.value.rule == "R1"
    assert backend.kms.get_crypto_key_version(v(APP_KEY, 1)).state == "DESTROYED"


def test_destroy_scheduled_cannot_be_enabled_or_destroyed_again(backend: FakeBackend) -> None:
    backend.kms.destroy_crypto_key_version(v(APP_KEY, 1))
    with pytest.raises(api.FailedPrecondition):
        backend.kms.update_crypto_key_version(v(APP_KEY, 1), "ENABLED")
    with pytest.raises(api.FailedPrecondition):
        backend.kms.destroy_crypto_key_version(v(APP_KEY, 1))


def test_advance_returns_the_new_time(backend: FakeBackend) -> None:
    assert backend.advance(timedelta(hours=3)) == NOW + timedelta(hours=3)
    assert backend.clock.now() == NOW + timedelta(hours=3)


# -- R2: rotation -----------------------------------------------------------------------


def test_rotation_creates_the_next_version_enabled_and_makes_it_primary(backend: FakeBackend) -> None:
    new = backend.kms.create_crypto_key_version(APP_KEY)
    assert (new.name, new.state) == (v(APP_KEY, 3), "ENABLED")
    assert backend.kms.get_crypto_key(APP_KEY).primary == 2  # creating alone does not rotate
    k = backend.kms.update_crypto_key_primary_version(APP_KEY, new.name)
    assert k.primary == 3
    # old versions stay usable for decryption (R2)
    assert backend.kms.get_crypto_key_version(v(APP_KEY, 1)).state == "ENABLED"


def test_new_version_number_follows_the_highest_even_if_destroyed() -> None:
    b = make_backend(kms=[key(APP_KEY, {1: "ENABLED", 5: "DESTROYED"}, primary=1)])
    assert b.kms.create_crypto_key_version(APP_KEY).number == 6


@pytest.mark.parametrize("state_change", ["disable", "destroy"])
def test_only_an_enabled_version_can_become_primary(backend: FakeBackend, state_change: str) -> None:
    if state_change == "disable":
        backend.kms.update_crypto_key_version(v(APP_KEY, 1), "DISABLED")
    else:
        backend.kms.destroy_crypto_key_version(v(APP_KEY, 1))
    with pytest.raises(api.FailedPrecondition) as info:
        backend.kms.update_crypto_key_primary_version(APP_KEY, v(APP_KEY, 1))
    assert info.value.rule == "R2"
    assert backend.kms.get_crypto_key(APP_KEY).primary == 2


def test_primary_must_be_a_version_of_the_same_key(backend: FakeBackend) -> None:
    with pytest.raises(api.InvalidArgument):
        backend.kms.update_crypto_key_primary_version(APP_KEY, v(NEW_KEY, 1))


def test_primary_must_exist(backend: FakeBackend) -> None:
    with pytest.raises(api.NotFound):
        backend.kms.update_crypto_key_primary_version(APP_KEY, v(APP_KEY, 7))


# -- R3: disabling the primary ----------------------------------------------------------


def test_kms_allows_disabling_the_primary_but_storage_then_cannot_encrypt(backend: FakeBackend) -> None:
    got = backend.kms.update_crypto_key_version(v(APP_KEY, 2), "DISABLED")
    assert got.state == "DISABLED"
    assert backend.kms.get_crypto_key(APP_KEY).primary == 2  # still primary, but unusable
    with pytest.raises(api.FailedPrecondition) as info:
        backend.storage.upload(BUCKET, "new.txt", 10)  # the bucket defaults to APP_KEY
    assert info.value.rule == "R15"
    assert APP_KEY in info.value.message
    # reading data under the still-enabled version 1 is unaffected
    assert backend.storage.read(BUCKET, OBJECT).kms_key_version == v(APP_KEY, 1)


def test_a_new_primary_lets_storage_encrypt_again(backend: FakeBackend) -> None:
    backend.kms.update_crypto_key_version(v(APP_KEY, 2), "DISABLED")
    backend.kms.update_crypto_key_primary_version(APP_KEY, v(APP_KEY, 1))
    assert backend.storage.upload(BUCKET, "new.txt", 10).kms_key_version == v(APP_KEY, 1)


def test_key_without_primary_cannot_encrypt() -> None:
    b = make_backend(kms=[key(APP_KEY, {1: "ENABLED"}, primary=None)])
    with pytest.raises(api.FailedPrecondition) as info:
        b.storage.upload(BUCKET, "new.txt", 10)
    assert info.value.rule == "R15"


# -- IAM (R5) ---------------------------------------------------------------------------


def test_get_iam_policy(backend: FakeBackend) -> None:
    policy = backend.kms.get_iam_policy(APP_KEY)
    assert policy.members(ENCRYPTER_DECRYPTER) == [STORAGE_AGENT]
    assert policy.etag


def test_set_iam_policy_with_current_etag_changes_it(backend: FakeBackend) -> None:
    policy = backend.kms.get_iam_policy(APP_KEY)
    extra = "serviceAccount:service-111111111111@gcp-sa-firestore.iam.gserviceaccount.com"
    policy.bindings[ENCRYPTER_DECRYPTER] = [*policy.members(ENCRYPTER_DECRYPTER), extra]
    after = backend.kms.set_iam_policy(APP_KEY, policy)
    assert sorted(after.members(ENCRYPTER_DECRYPTER)) == sorted([STORAGE_AGENT, extra])
    assert after.etag != policy.etag
    assert backend.kms.get_iam_policy(APP_KEY) == after


def test_set_iam_policy_with_stale_etag_is_refused(backend: FakeBackend) -> None:
    first = backend.kms.get_iam_policy(APP_KEY)
    second = backend.kms.get_iam_policy(APP_KEY)
    second.bindings["roles/viewer"] = ["user:a@example.com"]
    backend.kms.set_iam_policy(APP_KEY, second)
    first.bindings = {}
    with pytest.raises(api.PreconditionFailed) as info:
        backend.kms.set_iam_policy(APP_KEY, first)
    assert info.value.http_status == 412
    # the losing write changed nothing
    assert backend.kms.get_iam_policy(APP_KEY).members(ENCRYPTER_DECRYPTER) == [STORAGE_AGENT]
    assert backend.kms.get_iam_policy(APP_KEY).members("roles/viewer") == ["user:a@example.com"]


def test_set_iam_policy_without_etag_overwrites(backend: FakeBackend) -> None:
    after = backend.kms.set_iam_policy(APP_KEY, IamPolicy({"roles/viewer": ["user:b@example.com"]}))
    assert after.bindings == {"roles/viewer": ["user:b@example.com"]}


def test_iam_is_per_key(backend: FakeBackend) -> None:
    backend.kms.set_iam_policy(APP_KEY, IamPolicy({}))
    assert backend.kms.get_iam_policy(NEW_KEY).members(ENCRYPTER_DECRYPTER) == [STORAGE_AGENT]


def test_world_without_agent_grant_has_empty_policy() -> None:
    b = FakeBackend.from_dict(make_world(kms=[key(APP_KEY, {1: "ENABLED"}, members=())]))
    assert b.kms.get_iam_policy(APP_KEY).bindings == {}
