"""The fake's Dataflow enforces what the cloud enforces: a disabled or destroyed version
cancels the running jobs on it, snapshots and relaunches (R31), a running job's key is
fixed (R34).

Backends: fake.
"""

from __future__ import annotations

import pytest
from service_fakes import (
    NOW,
    disable,
    enable,
    launch,
    make,
    states,
)
from worlds import APP_2026_KEY as NEW_KEY
from worlds import (
    APP_KEY,
    BATCH,
    FINISHED,
    INGEST,
    LEGACY,
    job,
    v,
)

from rotator import apierrors as api
from rotator.backends.fake import FakeBackend

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
