"""The fake's Firestore, Dataflow, Cloud Run and functions enforce what the cloud
enforces (SPEC "The fake world file"): each wrong step below fails with the error the
cloud answers with, naming the rule (R5, R7, R20-R24, R30-R34, R40-R43).

Backends: fake.
"""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from worlds import APP_2026_KEY as NEW_KEY
from worlds import APP_EU_KEY as EU_KEY
from worlds import (
    APP_KEY,
    ARTIFACT_AGENT,
    BATCH,
    COMPUTE_AGENT,
    DATAFLOW_AGENT,
    DB,
    ENCRYPTER_DECRYPTER,
    FINISHED,
    FIRESTORE_AGENT,
    FUNCTION,
    FUNCTIONS_AGENT,
    GLOBAL_KEY,
    INGEST,
    LEGACY,
    NEW_BACKUP,
    OLD_BACKUP,
    OLD_BACKUP_EXPIRES,
    REPOSITORY,
    RUN_AGENT,
    SERVICE,
    US_BACKUP,
    US_KEY,
    backup,
    database,
    function,
    job,
    kms_key,
    revision,
    service,
    services_world,
    v,
)

from rotator import apierrors as api
from rotator.backends.fake import FakeBackend
from rotator.errors import BadInput

NOT_ACCESSIBLE = "The customer-managed encryption key required by the requested resource is not accessible"
NOW = datetime(2026, 11, 22, tzinfo=timezone.utc)
NEW_REPOSITORY = "projects/demo/locations/us-east1/repositories/functions-app-2026"


def make(**overrides: Any) -> FakeBackend:
    return FakeBackend.from_dict(services_world(**overrides))


@pytest.fixture
def b() -> FakeBackend:
    return make()


def revoke(backend: FakeBackend, key: str, *members: str) -> None:
    """Remove `members`' Encrypter/Decrypter role on `key` (through the KMS API)."""
    policy = backend.kms.get_iam_policy(key)
    policy.bindings[ENCRYPTER_DECRYPTER] = [
        m for m in policy.members(ENCRYPTER_DECRYPTER) if m not in members
    ]
    backend.kms.set_iam_policy(key, policy)


def rotate(backend: FakeBackend, key: str = APP_KEY) -> str:
    """A new version made primary (R2); returns its name."""
    new = backend.kms.create_crypto_key_version(key)
    backend.kms.update_crypto_key_primary_version(key, new.name)
    return new.name


def disable(backend: FakeBackend, version: str) -> None:
    backend.kms.update_crypto_key_version(version, "DISABLED")


def enable(backend: FakeBackend, version: str) -> None:
    backend.kms.update_crypto_key_version(version, "ENABLED")


def launch(backend: FakeBackend, job_id: str = "relaunch-1", key: str | None = APP_KEY, **kw: Any) -> Any:
    args: dict[str, Any] = {
        "name": "ingest-v2",
        "region": "us-east1",
        "type": "STREAMING",
        "streaming_engine": True,
        "kms_key": key,
    }
    args.update(kw)
    return backend.dataflow.launch_job(job_id, **args)


def states(backend: FakeBackend) -> dict[str, str]:
    return {j.id: j.state for j in backend.dataflow.list_jobs()}


def assert_rule(err: pytest.ExceptionInfo[api.ApiError], rule: str) -> None:
    """The error names `rule`: as its rule, or in its message (e.g. "... (R7)")."""
    e = err.value
    assert e.rule == rule or f"{rule})" in e.message, (rule, e.rule, e.message)


# -- R5: each service's agent needs Encrypter/Decrypter on the key -------------------------


def test_r5_run_deploy_without_the_run_agent_is_permission_denied(b: FakeBackend) -> None:
    revoke(b, APP_KEY, RUN_AGENT)
    with pytest.raises(api.PermissionDenied) as err:
        b.run.update_service(SERVICE)
    assert err.value.rule == "R5"
    assert "serverless-robot-prod" in err.value.message
    assert len(b.run.get_service(SERVICE).revisions) == 2  # nothing deployed


def test_r5_function_redeploy_without_the_functions_agent_is_permission_denied(b: FakeBackend) -> None:
    revoke(b, APP_KEY, FUNCTIONS_AGENT)
    with pytest.raises(api.PermissionDenied) as err:
        b.functions.redeploy_function(FUNCTION)
    assert err.value.rule == "R5"
    assert "gcf-admin-robot" in err.value.message
    assert b.functions.get_function(FUNCTION).kms_key_version == v(APP_KEY, 2)


def test_r5_function_redeploy_without_the_artifact_registry_agent_is_permission_denied(
    b: FakeBackend,
) -> None:
    revoke(b, APP_KEY, ARTIFACT_AGENT)
    with pytest.raises(api.PermissionDenied) as err:
        b.functions.redeploy_function(FUNCTION)
    assert err.value.rule == "R5"
    assert "gcp-sa-artifactregistry" in err.value.message


def test_r5_repository_under_a_key_without_the_artifact_registry_agent_is_permission_denied(
    b: FakeBackend,
) -> None:
    revoke(b, NEW_KEY, ARTIFACT_AGENT)
    with pytest.raises(api.PermissionDenied) as err:
        b.functions.create_repository(NEW_REPOSITORY, kms_key=NEW_KEY)
    assert err.value.rule == "R5"


def test_r5_firestore_restore_under_a_key_without_the_firestore_agent_is_permission_denied(
    b: FakeBackend,
) -> None:
    revoke(b, NEW_KEY, FIRESTORE_AGENT)
    with pytest.raises(api.PermissionDenied) as err:
        b.firestore.restore_database("restored", NEW_BACKUP, kms_key=NEW_KEY)
    assert err.value.rule == "R5"
    assert "gcp-sa-firestore" in err.value.message
    assert [d.name for d in b.firestore.list_databases()] == [DB, "projects/demo/databases/us-wide"]


@pytest.mark.parametrize("agent", [DATAFLOW_AGENT, COMPUTE_AGENT], ids=["dataflow-agent", "compute-default"])
def test_r5_dataflow_launch_without_either_dataflow_account_is_permission_denied(agent: str) -> None:
    b = make()
    revoke(b, NEW_KEY, agent)
    with pytest.raises(api.PermissionDenied) as err:
        launch(b, key=NEW_KEY)
    assert err.value.rule == "R5"
    assert agent.split(":", 1)[1] in err.value.message
    assert "relaunch-1" not in states(b)


@pytest.mark.parametrize("agent", [DATAFLOW_AGENT, COMPUTE_AGENT], ids=["dataflow-agent", "compute-default"])
def test_r33_revoking_a_dataflow_account_cancels_the_running_jobs_on_that_key(agent: str) -> None:
    b = make()
    other = launch(b, "on-new-key", key=NEW_KEY)
    revoke(b, APP_KEY, agent)
    after = states(b)
    assert after[INGEST] == after[LEGACY] == after[BATCH] == "CANCELLED"
    assert after[FINISHED] == "DONE"  # an ended job stays as it ended
    assert after[other.id] == "RUNNING"  # another key's job is untouched


def test_r33_an_unrelated_iam_change_leaves_the_jobs_running(b: FakeBackend) -> None:
    revoke(b, APP_KEY, RUN_AGENT)
    assert states(b)[INGEST] == "RUNNING"


# -- R7 / R30: locations --------------------------------------------------------------------


def test_r7_cloud_run_revision_under_a_key_in_another_region_is_invalid(b: FakeBackend) -> None:
    with pytest.raises(api.InvalidArgument) as err:
        b.run.update_service(SERVICE, kms_key=EU_KEY)
    assert_rule(err, "R7")
    assert len(b.run.get_service(SERVICE).revisions) == 2


def test_r7_function_under_a_key_in_another_region_is_invalid(b: FakeBackend) -> None:
    with pytest.raises(api.InvalidArgument) as err:
        b.functions.redeploy_function(FUNCTION, kms_key=EU_KEY)
    assert_rule(err, "R7")
    assert b.functions.get_function(FUNCTION).kms_key == APP_KEY


def test_r7_artifact_registry_repository_under_a_key_in_another_region_is_invalid(b: FakeBackend) -> None:
    with pytest.raises(api.InvalidArgument) as err:
        b.functions.create_repository(NEW_REPOSITORY, kms_key=EU_KEY)
    assert_rule(err, "R7")
    with pytest.raises(api.NotFound):
        b.functions.get_repository_key(NEW_REPOSITORY)


@pytest.mark.parametrize("key", [US_KEY, GLOBAL_KEY], ids=["multi-region", "global"])
def test_r30_dataflow_launch_with_a_non_regional_key_is_invalid(key: str) -> None:
    b = make()
    with pytest.raises(api.InvalidArgument) as err:
        launch(b, key=key)
    assert_rule(err, "R30")
    assert "relaunch-1" not in states(b)


def test_r30_dataflow_launch_with_a_key_in_another_region_is_invalid(b: FakeBackend) -> None:
    with pytest.raises(api.InvalidArgument) as err:
        launch(b, key=EU_KEY)
    assert err.value.rule in ("R7", "R30"), err.value


def test_r30_dataflow_launch_in_the_key_region_runs_under_its_primary(b: FakeBackend) -> None:
    j = launch(b, key=NEW_KEY)
    assert j.state == "RUNNING"
    assert j.kms_key == NEW_KEY and j.kms_key_version == v(NEW_KEY, 1)


def test_r7_firestore_restore_of_a_nam5_database_needs_a_key_in_us(b: FakeBackend) -> None:
    with pytest.raises(api.InvalidArgument) as err:
        b.firestore.restore_database("us-restored", US_BACKUP, kms_key=NEW_KEY)  # us-east1
    assert_rule(err, "R7")
    restored = b.firestore.restore_database("us-restored", US_BACKUP, kms_key=US_KEY)
    assert restored.location == "nam5" and restored.kms_key == US_KEY


def test_r7_firestore_restore_of_a_regional_database_needs_a_key_in_that_region(b: FakeBackend) -> None:
    with pytest.raises(api.InvalidArgument) as err:
        b.firestore.restore_database("restored", NEW_BACKUP, kms_key=EU_KEY)
    assert_rule(err, "R7")


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


# -- R31 / R34: Dataflow --------------------------------------------------------------------


def test_r31_disabling_a_running_job_version_cancels_it_for_good() -> None:
    b = make(dataflow=[job(INGEST, "ingest", v(APP_KEY, 2)), job(BATCH, "nightly", v(APP_KEY, 3))])
    disable(b, v(APP_KEY, 2))
    assert states(b) == {INGEST: "CANCELLED", BATCH: "RUNNING"}
    enable(b, v(APP_KEY, 2))
    assert states(b)[INGEST] == "CANCELLED"  # re-enabling does not bring it back


def test_r31_destroying_a_running_job_version_cancels_it() -> None:
    b = make(dataflow=[job(INGEST, "ingest", v(APP_KEY, 2)), job(BATCH, "nightly", v(APP_KEY, 3))])
    b.kms.destroy_crypto_key_version(v(APP_KEY, 2))
    assert states(b) == {INGEST: "CANCELLED", BATCH: "RUNNING"}


def test_r31_disabling_a_version_no_job_uses_leaves_the_jobs_running(b: FakeBackend) -> None:
    disable(b, v(APP_KEY, 1))  # the DONE job's version
    assert states(b) == {INGEST: "RUNNING", LEGACY: "RUNNING", BATCH: "RUNNING", FINISHED: "DONE"}


def test_r31_a_snapshot_of_a_running_streaming_job_is_ready_at_once(b: FakeBackend) -> None:
    snap = b.dataflow.snapshot_job(INGEST)
    assert snap.state == "READY" and snap.job == INGEST
    assert snap.created == NOW
    assert [s.id for s in b.dataflow.get_job(INGEST).snapshots] == [snap.id]
    assert b.dataflow.get_job(INGEST).state == "RUNNING"


@pytest.mark.parametrize("job_id", [BATCH, FINISHED], ids=["running-batch", "done-batch"])
def test_r31_a_batch_job_cannot_be_snapshotted(b: FakeBackend, job_id: str) -> None:
    with pytest.raises(api.FailedPrecondition) as err:
        b.dataflow.snapshot_job(job_id)
    assert err.value.rule == "R31"
    assert b.dataflow.get_job(job_id).snapshots == ()


def test_r31_a_streaming_job_that_no_longer_runs_cannot_be_snapshotted(b: FakeBackend) -> None:
    b.dataflow.drain_job(INGEST)
    b.dataflow.cancel_job(LEGACY)
    for job_id in (INGEST, LEGACY):
        with pytest.raises(api.FailedPrecondition) as err:
            b.dataflow.snapshot_job(job_id)
        assert err.value.rule == "R31"


def test_r31_a_relaunch_from_a_snapshot_runs_under_the_new_key(b: FakeBackend) -> None:
    snap = b.dataflow.snapshot_job(INGEST)
    j = launch(b, key=NEW_KEY, from_snapshot=snap.id)
    assert j.state == "RUNNING" and j.kms_key_version == v(NEW_KEY, 1)
    with pytest.raises(api.NotFound):
        launch(b, "relaunch-2", key=NEW_KEY, from_snapshot="no-such-snapshot")


@pytest.mark.parametrize("target", [NEW_KEY, APP_KEY], ids=["new-key", "same-key"])
def test_r34_a_running_job_key_cannot_change(b: FakeBackend, target: str) -> None:
    with pytest.raises(api.FailedPrecondition) as err:
        b.dataflow.update_job_kms_key(INGEST, target)
    assert err.value.rule == "R34"
    j = b.dataflow.get_job(INGEST)
    assert j.kms_key == APP_KEY and j.kms_key_version == v(APP_KEY, 3) and j.state == "RUNNING"


# -- R40 / R41 / R43: Cloud Run -------------------------------------------------------------


def traffic(backend: FakeBackend) -> dict[str, tuple[str | None, int]]:
    return {
        r.name: (r.kms_key_version, r.traffic_percent) for r in backend.run.get_service(SERVICE).revisions
    }


def test_r40_update_creates_a_revision_under_the_current_primary_with_the_latest_traffic(
    b: FakeBackend,
) -> None:
    svc = b.run.update_service(SERVICE)
    assert svc.latest is not None and svc.latest.name == "api-00003"
    assert traffic(b) == {
        "api-00001": (v(APP_KEY, 1), 0),
        "api-00002": (v(APP_KEY, 2), 0),
        "api-00003": (v(APP_KEY, 3), 100),
    }
    assert svc.latest.kms_key == APP_KEY


def test_r43_after_a_rotation_a_new_revision_takes_the_new_primary(b: FakeBackend) -> None:
    rotate(b)
    assert b.run.get_service(SERVICE).latest.kms_key_version == v(APP_KEY, 2)  # type: ignore[union-attr]
    b.run.update_service(SERVICE)
    assert traffic(b)["api-00003"] == (v(APP_KEY, 4), 100)


def test_r40_update_under_a_new_key_moves_only_the_latest_revision(b: FakeBackend) -> None:
    svc = b.run.update_service(SERVICE, kms_key=NEW_KEY)
    assert svc.latest is not None
    assert (svc.latest.kms_key, svc.latest.kms_key_version) == (NEW_KEY, v(NEW_KEY, 1))


def test_r43_traffic_pinned_to_an_older_revision_stays_there() -> None:
    b = make(
        run=[
            service(
                revisions=[
                    revision("api-00001", v(APP_KEY, 1), 30),
                    revision("api-00002", v(APP_KEY, 2), 70),
                ]
            )
        ]
    )
    b.run.update_service(SERVICE)
    assert traffic(b) == {
        "api-00001": (v(APP_KEY, 1), 30),
        "api-00002": (v(APP_KEY, 2), 0),
        "api-00003": (v(APP_KEY, 3), 70),
    }


def test_r43_a_revision_with_traffic_cannot_be_deleted_an_idle_one_can(b: FakeBackend) -> None:
    with pytest.raises(api.FailedPrecondition):
        b.run.delete_revision(SERVICE, "api-00002")
    b.run.delete_revision(SERVICE, "api-00001")
    assert list(traffic(b)) == ["api-00002"]


def disable_key(backend: FakeBackend, key: str = APP_KEY) -> list[str]:
    names = [x.name for x in backend.kms.list_crypto_key_versions(key) if x.state == "ENABLED"]
    for name in names:
        disable(backend, name)
    return names


def test_r41_no_new_revision_under_a_disabled_key(b: FakeBackend) -> None:
    disable_key(b)
    with pytest.raises(api.FailedPrecondition) as err:
        b.run.update_service(SERVICE)
    assert "R41" in err.value.message
    assert len(traffic(b)) == 2


def test_r41_a_new_revision_under_a_new_valid_key_deploys_although_the_old_is_disabled(
    b: FakeBackend,
) -> None:
    disable_key(b)
    svc = b.run.update_service(SERVICE, kms_key=NEW_KEY)
    assert svc.latest is not None and svc.latest.kms_key_version == v(NEW_KEY, 1)
    b.run.start_instance(SERVICE)


def test_r41_no_new_instance_under_a_disabled_serving_version_until_re_enabled(b: FakeBackend) -> None:
    b.run.start_instance(SERVICE)
    disable(b, v(APP_KEY, 2))
    with pytest.raises(api.FailedPrecondition) as err:
        b.run.start_instance(SERVICE)
    assert err.value.rule == "R41" and "R41" in err.value.message
    assert "api-00002" in err.value.message
    enable(b, v(APP_KEY, 2))
    b.run.start_instance(SERVICE)


def test_r41_a_disabled_idle_revision_does_not_stop_new_instances(b: FakeBackend) -> None:
    disable(b, v(APP_KEY, 1))  # api-00001 serves no traffic
    b.run.start_instance(SERVICE)


def test_r41_a_whole_disabled_key_stops_new_instances(b: FakeBackend) -> None:
    names = disable_key(b)
    with pytest.raises(api.FailedPrecondition, match="R41"):
        b.run.start_instance(SERVICE)
    for name in names:
        enable(b, name)
    b.run.start_instance(SERVICE)


# -- R42: functions -------------------------------------------------------------------------


def test_r42_redeploy_under_a_key_whose_repository_is_under_another_key_fails(b: FakeBackend) -> None:
    with pytest.raises(api.FailedPrecondition) as err:
        b.functions.redeploy_function(FUNCTION, kms_key=NEW_KEY)
    assert err.value.rule == "R42"
    assert REPOSITORY in err.value.message
    fn = b.functions.get_function(FUNCTION)
    assert (fn.kms_key, fn.kms_key_version, fn.docker_repository) == (APP_KEY, v(APP_KEY, 2), REPOSITORY)


def test_r42_a_key_version_instead_of_a_key_is_invalid(b: FakeBackend) -> None:
    with pytest.raises(api.InvalidArgument) as err:
        b.functions.redeploy_function(FUNCTION, kms_key=v(APP_KEY, 3))
    assert_rule(err, "R42")


def test_r42_a_repository_under_the_new_key_then_redeploy_uses_its_primary(b: FakeBackend) -> None:
    b.functions.create_repository(NEW_REPOSITORY, kms_key=NEW_KEY)
    assert b.functions.get_repository_key(NEW_REPOSITORY) == NEW_KEY
    fn = b.functions.redeploy_function(FUNCTION, kms_key=NEW_KEY, docker_repository=NEW_REPOSITORY)
    assert (fn.kms_key, fn.kms_key_version, fn.docker_repository) == (NEW_KEY, v(NEW_KEY, 1), NEW_REPOSITORY)
    b.functions.invoke(FUNCTION)
    with pytest.raises(api.AlreadyExists):
        b.functions.create_repository(NEW_REPOSITORY, kms_key=NEW_KEY)


def test_r42_a_redeploy_after_a_rotation_takes_the_new_primary(b: FakeBackend) -> None:
    rotate(b)
    fn = b.functions.redeploy_function(FUNCTION)
    assert fn.kms_key_version == v(APP_KEY, 4)


def test_r42_invoke_fails_while_the_function_version_is_disabled(b: FakeBackend) -> None:
    b.functions.invoke(FUNCTION)
    disable(b, v(APP_KEY, 2))
    with pytest.raises(api.FailedPrecondition) as err:
        b.functions.invoke(FUNCTION)
    assert err.value.rule in ("R41", "R42")
    enable(b, v(APP_KEY, 2))
    b.functions.invoke(FUNCTION)


def test_r42_no_redeploy_under_a_disabled_primary(b: FakeBackend) -> None:
    disable(b, v(APP_KEY, 3))
    with pytest.raises(api.FailedPrecondition):
        b.functions.redeploy_function(FUNCTION)
    assert b.functions.get_function(FUNCTION).kms_key_version == v(APP_KEY, 2)


# -- the world file: these sections are validated -------------------------------------------


def bad_world(path: str, **overrides: Any) -> BadInput:
    with pytest.raises(BadInput) as err:
        FakeBackend.from_dict(services_world(**overrides), source="world.yaml")
    assert path in err.value.message, (path, err.value.message)
    assert err.value.exit_code == 2
    return err.value


@pytest.mark.parametrize(
    ("path", "section", "entry"),
    [
        ("firestore[0].database", "firestore", database("projects/demo/dbs/x")),
        ("dataflow[0].job", "dataflow", job("not a job id", "x")),
        ("run[0].service", "run", service("projects/demo/services/api")),
        ("functions[0].function", "functions", function("resize")),
    ],
    ids=["firestore", "dataflow", "run", "functions"],
)
def test_world_malformed_name(path: str, section: str, entry: dict[str, Any]) -> None:
    err = bad_world(path, **{section: [entry]})
    assert "malformed" in err.message


def test_world_malformed_repository_name() -> None:
    bad_world(
        "artifact_registry[0].repository", artifact_registry=[{"repository": "functions", "kms_key": None}]
    )


@pytest.mark.parametrize(
    ("path", "rule", "section", "entry"),
    [
        ("firestore[0].kms_key", "R7", "firestore", database(location="nam5", active=[])),
        ("dataflow[0].kms_key", "R30", "dataflow", job(INGEST, "x", v(EU_KEY, 1), key=EU_KEY)),
        ("dataflow[0].kms_key", "R30", "dataflow", job(INGEST, "x", v(GLOBAL_KEY, 1), key=GLOBAL_KEY)),
        (
            "run[0].revisions[0].kms_key",
            "R7",
            "run",
            service(revisions=[revision("a-1", v(EU_KEY, 1), 100, EU_KEY)]),
        ),
        ("functions[0].kms_key", "R7", "functions", function(version=v(EU_KEY, 1), key=EU_KEY)),
    ],
    ids=["firestore-nam5", "dataflow-other-region", "dataflow-global", "run", "functions"],
)
def test_world_key_in_the_wrong_location(path: str, rule: str, section: str, entry: dict[str, Any]) -> None:
    err = bad_world(path, **{section: [entry]})
    assert rule in err.message


def test_world_artifact_registry_key_in_the_wrong_region() -> None:
    err = bad_world(
        "artifact_registry[0].kms_key",
        artifact_registry=[{"repository": REPOSITORY, "kms_key": EU_KEY}],
    )
    assert "R7" in err.message


@pytest.mark.parametrize(
    ("path", "section", "entry"),
    [
        ("firestore[0].active_key_versions[0]", "firestore", database(active=[v(APP_KEY, 9)])),
        (
            "firestore[0].backups[0].kms_key_version",
            "firestore",
            database(backups=[backup(OLD_BACKUP, v(APP_KEY, 9), "2026-11-20T00:00:00Z", OLD_BACKUP_EXPIRES)]),
        ),
        ("dataflow[0].kms_key_version", "dataflow", job(INGEST, "x", v(APP_KEY, 9))),
        (
            "run[0].revisions[0].kms_key_version",
            "run",
            service(revisions=[revision("a-1", v(APP_KEY, 9), 100)]),
        ),
        ("functions[0].kms_key_version", "functions", function(version=v(APP_KEY, 9))),
    ],
    ids=["firestore-active", "firestore-backup", "dataflow", "run", "functions"],
)
def test_world_dangling_kms_key_version(path: str, section: str, entry: dict[str, Any]) -> None:
    err = bad_world(path, **{section: [entry]})
    assert "version 9 does not exist" in err.message


@pytest.mark.parametrize(
    ("path", "section", "entry"),
    [
        ("dataflow[0].kms_key_version", "dataflow", job(INGEST, "x", v(NEW_KEY, 1))),
        (
            "run[0].revisions[0].kms_key_version",
            "run",
            service(revisions=[revision("a-1", v(NEW_KEY, 1), 100)]),
        ),
        ("functions[0].kms_key_version", "functions", function(version=v(NEW_KEY, 1))),
        ("firestore[0].active_key_versions[0]", "firestore", database(active=[v(NEW_KEY, 1)])),
    ],
    ids=["dataflow", "run", "functions", "firestore-active"],
)
def test_world_kms_key_version_of_another_key_than_the_resource_key(
    path: str, section: str, entry: dict[str, Any]
) -> None:
    """A resource encrypted under APP_KEY cannot hold a version of NEW_KEY: the cloud
    never produces that (the version is the key's primary at deploy/launch time)."""
    bad_world(path, **{section: [entry]})


def test_world_dangling_docker_repository() -> None:
    """A function's repository must be one of artifact_registry's when that section is
    given; otherwise every inventory of the key fails later with NOT_FOUND (exit 1)."""
    other = "projects/demo/locations/us-east1/repositories/other"
    bad_world(
        "functions[0].docker_repository",
        artifact_registry=[{"repository": other, "kms_key": APP_KEY}],
    )


def test_world_dangling_key_in_a_service_section() -> None:
    missing = "projects/demo/locations/us-east1/keyRings/ring/cryptoKeys/nope"
    err = bad_world("functions[0].kms_key", functions=[function(key=missing, version=v(APP_KEY, 2))])
    assert "not declared" in err.message


def test_world_the_all_services_world_loads_and_dumps_back(b: FakeBackend) -> None:
    doc = b.dump()
    again = FakeBackend.from_dict(copy.deepcopy(doc))
    assert again.dump() == doc
    assert {s: len(doc[s]) for s in ("firestore", "dataflow", "run", "functions")} == {
        "firestore": 2,
        "dataflow": 4,
        "run": 1,
        "functions": 1,
    }
