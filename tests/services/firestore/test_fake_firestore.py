"""The fake's Firestore enforces what the cloud enforces: a database's key is fixed (R20),
re-encryption after a rotation (R21), an unusable active version fails every call
(R22), an external key's loss an hour later (R23), backups keep their version (R24).

Backends: fake.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from service_fakes import (
    NOT_ACCESSIBLE,
    NOW,
    disable,
    enable,
    make,
    revoke,
    rotate,
)
from worlds import APP_2026_KEY as NEW_KEY
from worlds import (
    APP_KEY,
    DB,
    ENCRYPTER_DECRYPTER,
    FIRESTORE_AGENT,
    NEW_BACKUP,
    OLD_BACKUP,
    OLD_BACKUP_EXPIRES,
    US_KEY,
    database,
    kms_key,
    services_world,
    v,
)

from rotator import apierrors as api
from rotator.backends.fake import FakeBackend

# -- R20: a database's key is fixed ---------------------------------------------------------


@pytest.mark.parametrize("target", [NEW_KEY, None], ids=["another-key", "google-default"])
def test_r20_a_database_key_cannot_change(b: FakeBackend, target: str | None) -> None:
    with pytest.raises(api.FailedPrecondition) as err:
        b.firestore.update_database_kms_key(DB, target)
    assert err.value.rule == "R20"
    assert b.firestore.get_database(DB).kms_key == APP_KEY


def test_r20_cmek_cannot_be_added_to_a_google_default_database() -> None:
    b = make(firestore=[database(key=None, active=[])])
    with pytest.raises(api.FailedPrecondition) as err:
        b.firestore.update_database_kms_key(DB, APP_KEY)
    assert err.value.rule == "R20"


# -- R21: re-encryption after a rotation ----------------------------------------------------


def test_r21_a_new_primary_keeps_both_versions_active_until_reencryption_completes(b: FakeBackend) -> None:
    new = rotate(b)
    assert new == v(APP_KEY, 4)
    db = b.firestore.get_database(DB)
    assert db.active_key_versions == (v(APP_KEY, 3), v(APP_KEY, 4))
    assert db.reencryption_due == NOW + timedelta(hours=6)
    b.advance(timedelta(hours=5, minutes=59))
    assert b.firestore.get_database(DB).active_key_versions == (v(APP_KEY, 3), v(APP_KEY, 4))
    b.advance(timedelta(minutes=1))
    db = b.firestore.get_database(DB)
    assert db.active_key_versions == (v(APP_KEY, 4),)
    assert db.reencryption_due is None


def test_r21_other_keys_databases_are_not_reencrypted(b: FakeBackend) -> None:
    rotate(b)
    us = b.firestore.get_database("projects/demo/databases/us-wide")
    assert us.active_key_versions == (v(US_KEY, 1),) and us.reencryption_due is None


def test_r21_disabling_the_old_version_during_reencryption_breaks_the_database(b: FakeBackend) -> None:
    rotate(b)
    disable(b, v(APP_KEY, 3))
    with pytest.raises(api.FailedPrecondition) as err:
        b.firestore.read(DB)
    assert NOT_ACCESSIBLE in err.value.message


# -- R22: an unusable active version fails every call ---------------------------------------


def test_r22_a_disabled_active_version_fails_every_call_until_re_enabled(b: FakeBackend) -> None:
    b.firestore.read(DB)
    disable(b, v(APP_KEY, 3))
    with pytest.raises(api.FailedPrecondition) as err:
        b.firestore.read(DB)
    assert NOT_ACCESSIBLE in err.value.message
    assert err.value.rule == "R22"
    enable(b, v(APP_KEY, 3))
    b.firestore.read(DB)


def test_r22_a_destroy_scheduled_active_version_fails_until_restored_and_enabled(b: FakeBackend) -> None:
    b.kms.destroy_crypto_key_version(v(APP_KEY, 3))
    with pytest.raises(api.FailedPrecondition, match=NOT_ACCESSIBLE):
        b.firestore.read(DB)
    b.kms.restore_crypto_key_version(v(APP_KEY, 3))  # back as DISABLED (R1)
    with pytest.raises(api.FailedPrecondition, match=NOT_ACCESSIBLE):
        b.firestore.read(DB)
    enable(b, v(APP_KEY, 3))
    b.firestore.read(DB)


def test_r22_revoking_the_firestore_agent_fails_every_call_until_re_granted(b: FakeBackend) -> None:
    revoke(b, APP_KEY, FIRESTORE_AGENT)
    with pytest.raises(api.FailedPrecondition, match=NOT_ACCESSIBLE):
        b.firestore.read(DB)
    policy = b.kms.get_iam_policy(APP_KEY)
    policy.bindings[ENCRYPTER_DECRYPTER].append(FIRESTORE_AGENT)
    b.kms.set_iam_policy(APP_KEY, policy)
    b.firestore.read(DB)


def test_r22_an_unrelated_version_does_not_matter(b: FakeBackend) -> None:
    disable(b, v(APP_KEY, 1))  # only a backup is under it
    b.firestore.read(DB)


def test_r23_a_database_under_an_external_key_is_offline_an_hour_after_losing_it() -> None:
    ekm = "projects/demo/locations/us-east1/keyRings/ring/cryptoKeys/app-ekm"
    world = services_world(firestore=[database(key=ekm, active=[v(ekm, 1)])])
    world["kms"].append(dict(kms_key(ekm), protection_level="EXTERNAL"))
    b = FakeBackend.from_dict(world)
    b.firestore.read(DB)
    disable(b, v(ekm, 1))
    b.advance(timedelta(hours=1))
    with pytest.raises(api.FailedPrecondition, match=NOT_ACCESSIBLE):
        b.firestore.read(DB)


# -- R24: backups ---------------------------------------------------------------------------


def test_r24_backups_keep_the_version_they_were_taken_under(b: FakeBackend) -> None:
    rotate(b)
    b.advance(timedelta(hours=6))
    got = {x.name: x.kms_key_version for x in b.firestore.list_backups()}
    assert got[OLD_BACKUP] == v(APP_KEY, 1)
    assert got[NEW_BACKUP] == v(APP_KEY, 3)


def test_r24_restore_from_a_backup_under_a_disabled_version_fails(b: FakeBackend) -> None:
    disable(b, v(APP_KEY, 1))
    with pytest.raises(api.FailedPrecondition) as err:
        b.firestore.restore_database("restored", OLD_BACKUP, kms_key=NEW_KEY)
    assert NOT_ACCESSIBLE in err.value.message
    assert "projects/demo/databases/restored" not in [d.name for d in b.firestore.list_databases()]


def test_r24_restore_under_a_new_key_is_active_on_its_primary(b: FakeBackend) -> None:
    db = b.firestore.restore_database("restored", NEW_BACKUP, kms_key=NEW_KEY)
    assert db.name == "projects/demo/databases/restored"
    assert db.kms_key == NEW_KEY
    assert db.active_key_versions == (v(NEW_KEY, 1),)
    assert db.location == "us-east1"
    b.firestore.read(db.name)
    assert b.firestore.get_database(DB).kms_key == APP_KEY  # the source is untouched (R20)


def test_r24_restore_under_the_new_key_follows_its_current_primary(b: FakeBackend) -> None:
    rotate(b, NEW_KEY)
    db = b.firestore.restore_database("restored", NEW_BACKUP, kms_key=NEW_KEY)
    assert db.active_key_versions == (v(NEW_KEY, 2),)


def test_r24_restore_with_the_backup_encryption_or_google_default(b: FakeBackend) -> None:
    same = b.firestore.restore_database("same", OLD_BACKUP, kms_key=None, use_backup_encryption=True)
    assert same.kms_key == APP_KEY and same.active_key_versions == (v(APP_KEY, 1),)
    plain = b.firestore.restore_database("plain", OLD_BACKUP, kms_key=None)
    assert plain.kms_key is None and plain.active_key_versions == ()


def test_r24_restore_into_an_existing_database_or_from_a_missing_backup_fails(b: FakeBackend) -> None:
    with pytest.raises(api.AlreadyExists):
        b.firestore.restore_database("(default)", NEW_BACKUP, kms_key=NEW_KEY)
    with pytest.raises(api.NotFound):
        b.firestore.restore_database("x", NEW_BACKUP + "-nope", kms_key=NEW_KEY)


def test_r24_a_backup_disappears_when_the_clock_passes_its_expire_time(b: FakeBackend) -> None:
    expires = datetime.fromisoformat(OLD_BACKUP_EXPIRES.replace("Z", "+00:00"))
    b.advance(expires - NOW - timedelta(seconds=1))
    assert OLD_BACKUP in [x.name for x in b.firestore.list_backups()]
    b.advance(timedelta(seconds=1))
    names = [x.name for x in b.firestore.list_backups()]
    assert OLD_BACKUP not in names
    assert NEW_BACKUP in names
    with pytest.raises(api.NotFound):
        b.firestore.restore_database("late", OLD_BACKUP, kms_key=NEW_KEY)
