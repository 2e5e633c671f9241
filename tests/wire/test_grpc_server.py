"""tests/wire/grpc_server.py through the official Google client libraries: every
hosted method, values round-tripping between the fake and the wire, the fake's
errors as google.api_core exceptions, and fault injection.

Backends: wire servers (grpc_server.py under the official clients)."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import grpc
import pytest
from google.api_core import exceptions as gexc
from google.cloud import dataflow_v1beta3 as dataflow
from google.cloud import functions_v2 as functions
from google.cloud import kms_inventory_v1 as inventory
from google.cloud import kms_v1 as kms
from google.cloud import run_v2 as run
from google.cloud.dataflow_v1beta3.services.jobs_v1_beta3.transports import JobsV1Beta3GrpcTransport
from google.cloud.firestore_admin_v1 import FirestoreAdminClient
from google.cloud.firestore_admin_v1.services.firestore_admin.transports import FirestoreAdminGrpcTransport
from google.cloud.firestore_admin_v1.types import database as fs_database
from google.cloud.functions_v2.services.function_service.transports import FunctionServiceGrpcTransport
from google.cloud.kms_inventory_v1.services.key_tracking_service.transports import (
    KeyTrackingServiceGrpcTransport,
)
from google.cloud.kms_v1.services.key_management_service.transports import KeyManagementServiceGrpcTransport
from google.cloud.run_v2.services.revisions.transports import RevisionsGrpcTransport
from google.cloud.run_v2.services.services.transports import ServicesGrpcTransport
from google.iam.v1 import policy_pb2
from google.protobuf import field_mask_pb2
from grpc_server import (
    ENDPOINT_VARIABLES,
    FUNCTION_VERSION_LABEL,
    IAM,
    KMS,
    REVISION_VERSION_ANNOTATION,
    Fault,
    GrpcServer,
    status_for,
)
from worlds import APP_2026_KEY as NEW_KEY
from worlds import APP_EU_KEY as EU_KEY
from worlds import (
    APP_KEY,
    BATCH,
    BUCKET,
    DB,
    ENCRYPTER_DECRYPTER,
    FINISHED,
    FUNCTION,
    INGEST,
    LEGACY,
    NEW_BACKUP,
    OLD_BACKUP,
    PROJECT,
    REPOSITORY,
    SERVICE,
    US_BACKUP,
    US_DB,
    US_KEY,
    services_world,
    v,
)

from rotator import apierrors as api
from rotator.backends.fake import FakeBackend

VersionState = kms.CryptoKeyVersion.CryptoKeyVersionState
NEW_REPOSITORY = f"projects/{PROJECT}/locations/us-east1/repositories/functions-2026"
FULL = dataflow.JobView.JOB_VIEW_ALL


# -- clients ----------------------------------------------------------------------------------
@pytest.fixture
def kms_client(grpc_channel: grpc.Channel) -> kms.KeyManagementServiceClient:
    return kms.KeyManagementServiceClient(transport=KeyManagementServiceGrpcTransport(channel=grpc_channel))


@pytest.fixture
def firestore_client(grpc_channel: grpc.Channel) -> FirestoreAdminClient:
    return FirestoreAdminClient(transport=FirestoreAdminGrpcTransport(channel=grpc_channel))


@pytest.fixture
def jobs_client(grpc_channel: grpc.Channel) -> dataflow.JobsV1Beta3Client:
    return dataflow.JobsV1Beta3Client(transport=JobsV1Beta3GrpcTransport(channel=grpc_channel))


@pytest.fixture
def services_client(grpc_channel: grpc.Channel) -> run.ServicesClient:
    return run.ServicesClient(transport=ServicesGrpcTransport(channel=grpc_channel))


@pytest.fixture
def revisions_client(grpc_channel: grpc.Channel) -> run.RevisionsClient:
    return run.RevisionsClient(transport=RevisionsGrpcTransport(channel=grpc_channel))


@pytest.fixture
def functions_client(grpc_channel: grpc.Channel) -> functions.FunctionServiceClient:
    return functions.FunctionServiceClient(transport=FunctionServiceGrpcTransport(channel=grpc_channel))


@pytest.fixture
def inventory_client(grpc_channel: grpc.Channel) -> inventory.KeyTrackingServiceClient:
    return inventory.KeyTrackingServiceClient(transport=KeyTrackingServiceGrpcTransport(channel=grpc_channel))


def _state(b: FakeBackend, key: str, number: int) -> str:
    return b.kms.get_crypto_key_version(v(key, number)).state


# -- the server itself ----------------------------------------------------------------------------
def test_endpoint_env_and_call_log(
    grpc_server: GrpcServer, kms_client: kms.KeyManagementServiceClient
) -> None:
    host, port = grpc_server.endpoint.split(":")
    assert host == "127.0.0.1" and int(port) > 0
    assert grpc_server.env() == {name: grpc_server.endpoint for name in ENDPOINT_VARIABLES}
    kms_client.get_crypto_key(name=APP_KEY)
    kms_client.get_iam_policy(request={"resource": APP_KEY})
    assert [(c.service, c.method) for c in grpc_server.calls] == [
        (KMS, "GetCryptoKey"),
        (IAM, "GetIamPolicy"),  # the KMS client's IAM mixin calls google.iam.v1.IAMPolicy
    ]
    service, method, request = grpc_server.calls[0]
    assert isinstance(request, kms.GetCryptoKeyRequest) and request.name == APP_KEY


def test_status_for_maps_every_api_error_to_the_matching_google_exception() -> None:
    expected = {
        api.InvalidArgument: gexc.InvalidArgument,
        api.FailedPrecondition: gexc.FailedPrecondition,
        api.PreconditionFailed: gexc.Aborted,
        api.PermissionDenied: gexc.PermissionDenied,
        api.NotFound: gexc.NotFound,
        api.AlreadyExists: gexc.AlreadyExists,
        api.ResourceExhausted: gexc.ResourceExhausted,
        api.Unavailable: gexc.ServiceUnavailable,
    }
    for error_cls, google_cls in expected.items():
        code = status_for(error_cls("x"))
        assert type(gexc.from_grpc_status(code, "x")) is google_cls, error_cls


# -- KMS ----------------------------------------------------------------------------------------
def test_get_crypto_key(kms_client: kms.KeyManagementServiceClient) -> None:
    key = kms_client.get_crypto_key(name=APP_KEY)
    assert key.name == APP_KEY
    assert key.primary.name == v(APP_KEY, 3)
    assert key.primary.state == VersionState.ENABLED
    assert key.version_template.protection_level == kms.ProtectionLevel.SOFTWARE
    assert key.destroy_scheduled_duration == timedelta(days=30)
    assert key.purpose == kms.CryptoKey.CryptoKeyPurpose.ENCRYPT_DECRYPT


def test_get_crypto_key_not_found(kms_client: kms.KeyManagementServiceClient) -> None:
    with pytest.raises(gexc.NotFound):
        kms_client.get_crypto_key(name=f"{APP_KEY}-missing")


def test_list_crypto_key_versions_pages(
    grpc_server: GrpcServer, grpc_backend: FakeBackend, kms_client: kms.KeyManagementServiceClient
) -> None:
    grpc_backend.kms.create_crypto_key_version(APP_KEY)
    grpc_backend.kms.update_crypto_key_version(v(APP_KEY, 1), "DISABLED")
    pager = kms_client.list_crypto_key_versions(request={"parent": APP_KEY, "page_size": 3})
    versions = [(x.name, x.state) for x in pager]
    assert versions == [
        (v(APP_KEY, 1), VersionState.DISABLED),
        (v(APP_KEY, 2), VersionState.ENABLED),
        (v(APP_KEY, 3), VersionState.ENABLED),
        (v(APP_KEY, 4), VersionState.ENABLED),
    ]
    assert grpc_server.methods_called() == ["ListCryptoKeyVersions", "ListCryptoKeyVersions"]
    assert grpc_server.requests("ListCryptoKeyVersions")[1].page_token
    with pytest.raises(gexc.InvalidArgument):
        list(kms_client.list_crypto_key_versions(request={"parent": APP_KEY, "page_token": "nonsense"}))


def test_get_create_and_make_primary(
    grpc_backend: FakeBackend, kms_client: kms.KeyManagementServiceClient
) -> None:
    assert kms_client.get_crypto_key_version(name=v(APP_KEY, 2)).state == VersionState.ENABLED
    created = kms_client.create_crypto_key_version(parent=APP_KEY, crypto_key_version={})
    assert created.name == v(APP_KEY, 4) and created.state == VersionState.ENABLED
    assert grpc_backend.kms.get_crypto_key_version(v(APP_KEY, 4)).state == "ENABLED"
    key = kms_client.update_crypto_key_primary_version(name=APP_KEY, crypto_key_version_id="4")
    assert key.primary.name == v(APP_KEY, 4)
    assert grpc_backend.kms.get_crypto_key(APP_KEY).primary == 4


def test_disable_and_enable_a_version(
    grpc_backend: FakeBackend, kms_client: kms.KeyManagementServiceClient
) -> None:
    mask = field_mask_pb2.FieldMask(paths=["state"])
    out = kms_client.update_crypto_key_version(
        crypto_key_version={"name": v(APP_KEY, 1), "state": VersionState.DISABLED}, update_mask=mask
    )
    assert out.state == VersionState.DISABLED
    assert _state(grpc_backend, APP_KEY, 1) == "DISABLED"
    kms_client.update_crypto_key_version(
        crypto_key_version={"name": v(APP_KEY, 1), "state": VersionState.ENABLED}, update_mask=mask
    )
    assert _state(grpc_backend, APP_KEY, 1) == "ENABLED"
    with pytest.raises(gexc.InvalidArgument):  # no mask
        kms_client.update_crypto_key_version(
            crypto_key_version={"name": v(APP_KEY, 1), "state": VersionState.DISABLED}
        )
    assert _state(grpc_backend, APP_KEY, 1) == "ENABLED"


def test_primary_must_be_enabled_arrives_as_failed_precondition(
    grpc_backend: FakeBackend, kms_client: kms.KeyManagementServiceClient
) -> None:
    grpc_backend.kms.update_crypto_key_version(v(APP_KEY, 1), "DISABLED")
    with pytest.raises(gexc.FailedPrecondition, match="R2"):
        kms_client.update_crypto_key_primary_version(name=APP_KEY, crypto_key_version_id="1")


def test_destroy_and_restore(grpc_backend: FakeBackend, kms_client: kms.KeyManagementServiceClient) -> None:
    out = kms_client.destroy_crypto_key_version(name=v(APP_KEY, 1))
    assert out.state == VersionState.DESTROY_SCHEDULED
    assert out.destroy_time == grpc_backend.clock.now() + timedelta(days=30)
    assert _state(grpc_backend, APP_KEY, 1) == "DESTROY_SCHEDULED"
    restored = kms_client.restore_crypto_key_version(name=v(APP_KEY, 1))
    assert restored.state == VersionState.DISABLED  # R1: never straight back to ENABLED
    assert _state(grpc_backend, APP_KEY, 1) == "DISABLED"
    with pytest.raises(gexc.FailedPrecondition):
        kms_client.restore_crypto_key_version(name=v(APP_KEY, 2))


def test_iam_policy_round_trips_with_etag(
    grpc_backend: FakeBackend, kms_client: kms.KeyManagementServiceClient
) -> None:
    policy = kms_client.get_iam_policy(request={"resource": NEW_KEY})
    assert isinstance(policy, policy_pb2.Policy)
    members = {b.role: list(b.members) for b in policy.bindings}
    assert members == {
        ENCRYPTER_DECRYPTER: sorted(grpc_backend.kms.get_iam_policy(NEW_KEY).members(ENCRYPTER_DECRYPTER))
    }
    stale = policy.etag
    policy.bindings.add(role="roles/cloudkms.viewer", members=["user:ops@example.com"])
    updated = kms_client.set_iam_policy(request={"resource": NEW_KEY, "policy": policy})
    assert updated.etag != stale
    assert grpc_backend.kms.get_iam_policy(NEW_KEY).members("roles/cloudkms.viewer") == [
        "user:ops@example.com"
    ]
    with pytest.raises(gexc.Aborted):  # read-modify-write on a stale etag
        kms_client.set_iam_policy(request={"resource": NEW_KEY, "policy": policy})
    with pytest.raises(gexc.NotFound):
        kms_client.get_iam_policy(request={"resource": f"{NEW_KEY}-missing"})


# -- faults ---------------------------------------------------------------------------------------
def test_injected_unavailable_is_retried_by_the_client_default_retry(
    grpc_server: GrpcServer, grpc_backend: FakeBackend, kms_client: kms.KeyManagementServiceClient
) -> None:
    grpc_server.faults.append(
        Fault(method="UpdateCryptoKeyVersion", code=grpc.StatusCode.UNAVAILABLE, times=2)
    )
    kms_client.update_crypto_key_version(
        crypto_key_version={"name": v(APP_KEY, 1), "state": VersionState.DISABLED},
        update_mask=field_mask_pb2.FieldMask(paths=["state"]),
    )
    assert grpc_server.methods_called() == ["UpdateCryptoKeyVersion"] * 3
    assert [h.code for h in grpc_server.fault_hits] == [grpc.StatusCode.UNAVAILABLE] * 2
    assert _state(grpc_backend, APP_KEY, 1) == "DISABLED"


def test_injected_unavailable_without_retry_is_service_unavailable(
    grpc_server: GrpcServer, grpc_backend: FakeBackend, kms_client: kms.KeyManagementServiceClient
) -> None:
    grpc_server.inject("UpdateCryptoKeyVersion", times=1)
    with pytest.raises(gexc.ServiceUnavailable):
        kms_client.update_crypto_key_version(
            crypto_key_version={"name": v(APP_KEY, 1), "state": VersionState.DISABLED},
            update_mask=field_mask_pb2.FieldMask(paths=["state"]),
            retry=None,
        )
    assert _state(grpc_backend, APP_KEY, 1) == "ENABLED"  # "before": never reached the fake


def test_fault_after_the_change_loses_the_reply(
    grpc_server: GrpcServer, grpc_backend: FakeBackend, kms_client: kms.KeyManagementServiceClient
) -> None:
    grpc_server.inject(
        f"/{KMS}/CreateCryptoKeyVersion", grpc.StatusCode.DEADLINE_EXCEEDED, times=1, when="after"
    )
    with pytest.raises(gexc.DeadlineExceeded):
        kms_client.create_crypto_key_version(parent=APP_KEY, crypto_key_version={}, retry=None)
    assert [x.number for x in grpc_backend.kms.list_crypto_key_versions(APP_KEY)] == [1, 2, 3, 4]


def test_fault_rate_is_reproducible_with_a_seed(
    grpc_server: GrpcServer, kms_client: kms.KeyManagementServiceClient
) -> None:
    grpc_server.faults.append(
        Fault(method="GetCryptoKeyVersion", code=grpc.StatusCode.RESOURCE_EXHAUSTED, rate=0.5, seed=7)
    )
    outcomes = []
    for _ in range(20):
        try:
            kms_client.get_crypto_key_version(name=v(APP_KEY, 1), retry=None)
            outcomes.append(True)
        except gexc.ResourceExhausted:
            outcomes.append(False)
    rng = random.Random(7)
    assert outcomes == [rng.random() >= 0.5 for _ in range(20)]
    assert 0 < outcomes.count(False) < 20
    kms_client.get_crypto_key(name=APP_KEY)  # other methods are untouched


def test_fault_skip_and_service_filter(
    grpc_server: GrpcServer, kms_client: kms.KeyManagementServiceClient
) -> None:
    grpc_server.inject("*", grpc.StatusCode.PERMISSION_DENIED, service=KMS, skip=1, times=1)
    kms_client.get_crypto_key(name=APP_KEY)
    kms_client.get_iam_policy(request={"resource": APP_KEY})  # another service: untouched
    with pytest.raises(gexc.PermissionDenied):
        kms_client.get_crypto_key(name=APP_KEY, retry=None)
    kms_client.get_crypto_key(name=APP_KEY)


# -- Firestore Admin --------------------------------------------------------------------------------
def test_list_and_get_databases(firestore_client: FirestoreAdminClient) -> None:
    listed = {d.name: d for d in firestore_client.list_databases(parent=f"projects/{PROJECT}").databases}
    assert set(listed) == {DB, US_DB}
    db = firestore_client.get_database(name=DB)
    assert db.location_id == "us-east1"
    assert db.cmek_config.kms_key_name == APP_KEY
    assert list(db.cmek_config.active_key_version) == [v(APP_KEY, 3)]
    assert listed[US_DB].cmek_config.kms_key_name == US_KEY
    with pytest.raises(gexc.NotFound):
        firestore_client.get_database(name=f"projects/{PROJECT}/databases/missing")


def test_database_shows_both_versions_during_reencryption(
    grpc_backend: FakeBackend, firestore_client: FirestoreAdminClient
) -> None:
    grpc_backend.kms.create_crypto_key_version(APP_KEY)
    grpc_backend.kms.update_crypto_key_primary_version(APP_KEY, v(APP_KEY, 4))
    db = firestore_client.get_database(name=DB)
    assert list(db.cmek_config.active_key_version) == [v(APP_KEY, 3), v(APP_KEY, 4)]


def test_list_backups(firestore_client: FirestoreAdminClient) -> None:
    everywhere = firestore_client.list_backups(parent=f"projects/{PROJECT}/locations/-").backups
    assert {b.name for b in everywhere} == {OLD_BACKUP, NEW_BACKUP, US_BACKUP}
    old = next(b for b in everywhere if b.name == OLD_BACKUP)
    assert old.database == DB
    assert old.expire_time.isoformat().startswith("2026-12-05T00:00:00")
    regional = firestore_client.list_backups(parent=f"projects/{PROJECT}/locations/us-east1").backups
    assert {b.name for b in regional} == {OLD_BACKUP, NEW_BACKUP}


def test_restore_database_under_a_new_key_is_a_finished_operation(
    grpc_server: GrpcServer, grpc_backend: FakeBackend, firestore_client: FirestoreAdminClient
) -> None:
    op = firestore_client.restore_database(
        request={
            "parent": f"projects/{PROJECT}",
            "database_id": "restored",
            "backup": NEW_BACKUP,
            "encryption_config": {"customer_managed_encryption": {"kms_key_name": NEW_KEY}},
        }
    )
    assert op.done()
    db = op.result()
    assert isinstance(db, fs_database.Database)
    assert db.name == f"projects/{PROJECT}/databases/restored"
    assert db.cmek_config.kms_key_name == NEW_KEY
    assert list(db.cmek_config.active_key_version) == [v(NEW_KEY, 1)]
    assert grpc_backend.firestore.get_database(db.name).kms_key == NEW_KEY
    # The operation is kept: the operations client can fetch it again.
    again = firestore_client.transport.operations_client.get_operation(op.operation.name)
    assert again.done and again.response.type_url.endswith("google.firestore.admin.v1.Database")
    assert grpc_server.methods_called() == ["RestoreDatabase", "GetOperation"]


def test_restore_database_defaults_to_the_backups_encryption(
    grpc_backend: FakeBackend, firestore_client: FirestoreAdminClient
) -> None:
    db = firestore_client.restore_database(
        request={"parent": f"projects/{PROJECT}", "database_id": "copy", "backup": OLD_BACKUP}
    ).result()
    assert db.cmek_config.kms_key_name == APP_KEY
    assert list(db.cmek_config.active_key_version) == [v(APP_KEY, 1)]
    plain = firestore_client.restore_database(
        request={
            "parent": f"projects/{PROJECT}",
            "database_id": "plain",
            "backup": OLD_BACKUP,
            "encryption_config": {"google_default_encryption": {}},
        }
    ).result()
    assert "cmek_config" not in plain and grpc_backend.firestore.get_database(plain.name).kms_key is None


def test_restore_database_errors(grpc_backend: FakeBackend, firestore_client: FirestoreAdminClient) -> None:
    with pytest.raises(gexc.AlreadyExists):  # validation errors: the RPC itself fails
        firestore_client.restore_database(
            request={"parent": f"projects/{PROJECT}", "database_id": "(default)", "backup": NEW_BACKUP}
        )
    grpc_backend.kms.update_crypto_key_version(v(APP_KEY, 1), "DISABLED")
    op = firestore_client.restore_database(  # the backup's version is unusable: the LRO fails
        request={"parent": f"projects/{PROJECT}", "database_id": "lost", "backup": OLD_BACKUP}
    )
    with pytest.raises(gexc.FailedPrecondition, match="R22"):
        op.result()


# -- Dataflow ---------------------------------------------------------------------------------------
def test_list_jobs_in_a_region(jobs_client: dataflow.JobsV1Beta3Client) -> None:
    jobs = list(jobs_client.list_jobs(request={"project_id": PROJECT, "location": "us-east1", "view": FULL}))
    assert [j.id for j in jobs] == [BATCH, INGEST, FINISHED, LEGACY]  # newest first
    ingest = jobs[1]
    assert ingest.name == "ingest" and ingest.location == "us-east1" and ingest.project_id == PROJECT
    assert ingest.type_ == dataflow.JobType.JOB_TYPE_STREAMING
    assert ingest.current_state == dataflow.JobState.JOB_STATE_RUNNING
    assert ingest.create_time.isoformat().startswith("2026-11-01T00:00:00")
    # "ListJobs always returns summaries now. Use GetJob for other JobViews"
    # (ListJobsRequest.view): even asked for the full view, no environment, so no key.
    assert "environment" not in ingest
    assert jobs[2].current_state == dataflow.JobState.JOB_STATE_DONE
    # No location is us-central1 (Dataflow's legacy default), not every region.
    assert list(jobs_client.list_jobs(request={"project_id": PROJECT})) == []


def test_aggregated_list_jobs_filters_and_pages(
    grpc_server: GrpcServer, jobs_client: dataflow.JobsV1Beta3Client
) -> None:
    active = jobs_client.aggregated_list_jobs(
        request={"project_id": PROJECT, "filter": dataflow.ListJobsRequest.Filter.ACTIVE, "page_size": 1}
    )
    assert [j.id for j in active] == [BATCH, INGEST, LEGACY]
    assert grpc_server.methods_called() == ["AggregatedListJobs"] * 3
    done = jobs_client.aggregated_list_jobs(
        request={"project_id": PROJECT, "filter": dataflow.ListJobsRequest.Filter.TERMINATED}
    )
    assert [j.id for j in done] == [FINISHED]


def test_get_job_and_a_job_cancelled_by_its_version(
    grpc_backend: FakeBackend, jobs_client: dataflow.JobsV1Beta3Client
) -> None:
    job = jobs_client.get_job(
        request={"project_id": PROJECT, "location": "us-east1", "job_id": BATCH, "view": FULL}
    )
    assert job.type_ == dataflow.JobType.JOB_TYPE_BATCH and job.name == "nightly"
    assert job.environment.service_kms_key_name == APP_KEY
    grpc_backend.kms.update_crypto_key_version(v(APP_KEY, 3), "DISABLED")  # R31
    job = jobs_client.get_job(request={"project_id": PROJECT, "location": "us-east1", "job_id": BATCH})
    assert job.current_state == dataflow.JobState.JOB_STATE_CANCELLED
    with pytest.raises(gexc.NotFound):
        jobs_client.get_job(request={"project_id": PROJECT, "location": "europe-west1", "job_id": BATCH})
    with pytest.raises(gexc.NotFound):
        jobs_client.get_job(request={"project_id": PROJECT, "location": "us-east1", "job_id": "nope"})


def test_snapshot_job(grpc_backend: FakeBackend, jobs_client: dataflow.JobsV1Beta3Client) -> None:
    snap = jobs_client.snapshot_job(
        request={"project_id": PROJECT, "location": "us-east1", "job_id": INGEST, "ttl": {"seconds": 3600}}
    )
    assert snap.source_job_id == INGEST and snap.state == dataflow.SnapshotState.READY
    assert snap.region == "us-east1" and snap.ttl == timedelta(hours=1)
    assert [s.id for s in grpc_backend.dataflow.get_job(INGEST).snapshots] == [snap.id]
    with pytest.raises(gexc.FailedPrecondition, match="R31"):  # batch jobs cannot be snapshotted
        jobs_client.snapshot_job(request={"project_id": PROJECT, "location": "us-east1", "job_id": BATCH})


# -- Cloud Run -----------------------------------------------------------------------------------
def test_get_and_list_services(services_client: run.ServicesClient) -> None:
    s = services_client.get_service(name=SERVICE)
    assert s.template.encryption_key == APP_KEY
    assert s.template.encryption_key_revocation_action == run.EncryptionKeyRevocationAction.PREVENT_NEW
    assert s.latest_created_revision == f"{SERVICE}/revisions/api-00002"
    assert [(t.revision, t.percent) for t in s.traffic_statuses] == [("api-00002", 100)]
    assert [t.percent for t in s.traffic] == [100]
    with pytest.raises(gexc.InvalidArgument, match='cannot be the "-" wildcard'):
        list(services_client.list_services(parent=f"projects/{PROJECT}/locations/-"))
    assert [
        x.name for x in services_client.list_services(parent=f"projects/{PROJECT}/locations/us-east1")
    ] == [SERVICE]
    assert list(services_client.list_services(parent=f"projects/{PROJECT}/locations/europe-west1")) == []
    with pytest.raises(gexc.NotFound):
        services_client.get_service(name=f"{SERVICE}-missing")


def test_list_revisions(revisions_client: run.RevisionsClient) -> None:
    revisions = list(revisions_client.list_revisions(parent=SERVICE))
    assert [r.name for r in revisions] == [f"{SERVICE}/revisions/api-00001", f"{SERVICE}/revisions/api-00002"]
    assert [r.encryption_key for r in revisions] == [APP_KEY, APP_KEY]
    assert [r.annotations[REVISION_VERSION_ANNOTATION] for r in revisions] == [v(APP_KEY, 1), v(APP_KEY, 2)]
    assert revisions[0].create_time < revisions[1].create_time
    assert revisions[0].service == "api"


def test_update_service_under_the_same_key_deploys_on_the_primary(
    grpc_server: GrpcServer,
    grpc_backend: FakeBackend,
    services_client: run.ServicesClient,
    revisions_client: run.RevisionsClient,
) -> None:
    current = services_client.get_service(name=SERVICE)
    op = services_client.update_service(service=current)
    s = op.result()
    assert isinstance(s, run.Service)
    assert s.latest_created_revision == f"{SERVICE}/revisions/api-00003"
    assert [(t.revision, t.percent) for t in s.traffic_statuses] == [("api-00003", 100)]
    latest = grpc_backend.run.get_service(SERVICE).latest
    assert latest is not None and (latest.kms_key, latest.kms_key_version) == (APP_KEY, v(APP_KEY, 3))
    revisions = list(revisions_client.list_revisions(parent=SERVICE))
    assert revisions[-1].annotations[REVISION_VERSION_ANNOTATION] == v(APP_KEY, 3)
    assert grpc_server.requests("UpdateService")[0].service.template.encryption_key == APP_KEY


def test_update_service_to_a_new_key(grpc_backend: FakeBackend, services_client: run.ServicesClient) -> None:
    current = services_client.get_service(name=SERVICE)
    current.template.encryption_key = NEW_KEY
    s = services_client.update_service(service=current).result()
    assert s.template.encryption_key == NEW_KEY
    latest = grpc_backend.run.get_service(SERVICE).latest
    assert latest is not None and latest.kms_key_version == v(NEW_KEY, 1)


def test_update_service_errors(grpc_backend: FakeBackend, services_client: run.ServicesClient) -> None:
    current = services_client.get_service(name=SERVICE)
    current.template.encryption_key = EU_KEY
    with pytest.raises(gexc.InvalidArgument, match="R7"):  # validation: the RPC fails
        services_client.update_service(service=current)
    grpc_backend.kms.update_crypto_key_version(v(APP_KEY, 3), "DISABLED")  # the primary
    op = services_client.update_service(service=services_client.get_service(name=SERVICE))
    with pytest.raises(gexc.FailedPrecondition, match="R41"):  # the deployment fails
        op.result()
    assert len(grpc_backend.run.get_service(SERVICE).revisions) == 2


@pytest.mark.parametrize("grpc_world", [services_world(new_key_agents=())])
def test_update_service_without_the_agents_role_is_permission_denied(
    services_client: run.ServicesClient,
) -> None:
    current = services_client.get_service(name=SERVICE)
    current.template.encryption_key = NEW_KEY
    with pytest.raises(gexc.PermissionDenied, match="R5"):
        services_client.update_service(service=current).result()


# -- Cloud Run functions ------------------------------------------------------------------------------
def test_get_and_list_functions(functions_client: functions.FunctionServiceClient) -> None:
    f = functions_client.get_function(name=FUNCTION)
    assert f.kms_key_name == APP_KEY
    assert f.build_config.docker_repository == REPOSITORY
    assert f.labels[FUNCTION_VERSION_LABEL] == "2"
    assert f.state == functions.Function.State.ACTIVE
    assert [x.name for x in functions_client.list_functions(parent=f"projects/{PROJECT}/locations/-")] == [
        FUNCTION
    ]
    assert list(functions_client.list_functions(parent=f"projects/{PROJECT}/locations/europe-west1")) == []
    with pytest.raises(gexc.NotFound):
        functions_client.get_function(name=f"{FUNCTION}-missing")


def test_update_function_redeploys_on_the_primary(
    grpc_backend: FakeBackend, functions_client: functions.FunctionServiceClient
) -> None:
    f = functions_client.get_function(name=FUNCTION)
    out = functions_client.update_function(function=f).result()
    assert isinstance(out, functions.Function)
    assert out.labels[FUNCTION_VERSION_LABEL] == "3"
    assert grpc_backend.functions.get_function(FUNCTION).kms_key_version == v(APP_KEY, 3)


_NEW_REPO_WORLD = services_world(
    artifact_registry=[
        {"repository": REPOSITORY, "kms_key": APP_KEY},
        {"repository": NEW_REPOSITORY, "kms_key": NEW_KEY},
    ]
)


@pytest.mark.parametrize("grpc_world", [_NEW_REPO_WORLD])
def test_update_function_to_a_new_key_and_repository(
    grpc_backend: FakeBackend, functions_client: functions.FunctionServiceClient
) -> None:
    # The key alone: the repository is still under the old key (R42), the LRO fails.
    op = functions_client.update_function(
        function={"name": FUNCTION, "kms_key_name": NEW_KEY},
        update_mask=field_mask_pb2.FieldMask(paths=["kms_key_name"]),
    )
    with pytest.raises(gexc.FailedPrecondition, match="R42"):
        op.result()
    out = functions_client.update_function(
        function={
            "name": FUNCTION,
            "kms_key_name": NEW_KEY,
            "build_config": {"docker_repository": NEW_REPOSITORY},
        },
        update_mask=field_mask_pb2.FieldMask(paths=["kms_key_name", "build_config.docker_repository"]),
    ).result()
    assert (out.kms_key_name, out.build_config.docker_repository) == (NEW_KEY, NEW_REPOSITORY)
    assert out.labels[FUNCTION_VERSION_LABEL] == "1"
    f = grpc_backend.functions.get_function(FUNCTION)
    assert (f.kms_key, f.kms_key_version, f.docker_repository) == (NEW_KEY, v(NEW_KEY, 1), NEW_REPOSITORY)


# -- KMS Inventory ------------------------------------------------------------------------------------
def _search(client: inventory.KeyTrackingServiceClient, key: str, **kw: Any) -> dict[str, list[str]]:
    found = client.search_protected_resources(request={"scope": "organizations/123", "crypto_key": key, **kw})
    return {r.name: list(r.crypto_key_versions) for r in found}


def test_search_protected_resources(inventory_client: inventory.KeyTrackingServiceClient) -> None:
    loc = f"projects/{PROJECT}/locations/us-east1"
    assert _search(inventory_client, APP_KEY) == {
        f"//storage.googleapis.com/projects/_/buckets/{BUCKET}": [v(APP_KEY, 1)],
        f"//firestore.googleapis.com/{DB}": [v(APP_KEY, 3)],
        f"//firestore.googleapis.com/{OLD_BACKUP}": [v(APP_KEY, 1)],
        f"//firestore.googleapis.com/{NEW_BACKUP}": [v(APP_KEY, 3)],
        f"//dataflow.googleapis.com/{loc}/jobs/{INGEST}": [v(APP_KEY, 3)],
        f"//dataflow.googleapis.com/{loc}/jobs/{LEGACY}": [v(APP_KEY, 3)],
        f"//dataflow.googleapis.com/{loc}/jobs/{BATCH}": [v(APP_KEY, 3)],
        f"//dataflow.googleapis.com/{loc}/jobs/{FINISHED}": [v(APP_KEY, 1)],
        f"//run.googleapis.com/{SERVICE}": [v(APP_KEY, 1), v(APP_KEY, 2)],
        f"//run.googleapis.com/{SERVICE}/revisions/api-00001": [v(APP_KEY, 1)],
        f"//run.googleapis.com/{SERVICE}/revisions/api-00002": [v(APP_KEY, 2)],
        f"//cloudfunctions.googleapis.com/{FUNCTION}": [v(APP_KEY, 2)],
        # A CMEK repository is listed with the versions its images were pushed under.
        f"//artifactregistry.googleapis.com/{REPOSITORY}": [v(APP_KEY, 2)],
    }
    assert set(_search(inventory_client, US_KEY)) == {
        f"//firestore.googleapis.com/{US_DB}",
        f"//firestore.googleapis.com/{US_BACKUP}",
    }
    assert _search(inventory_client, NEW_KEY) == {}


def test_search_protected_resources_filters_and_pages(
    grpc_server: GrpcServer, inventory_client: inventory.KeyTrackingServiceClient
) -> None:
    assert set(_search(inventory_client, v(APP_KEY, 1))) == {
        f"//storage.googleapis.com/projects/_/buckets/{BUCKET}",
        f"//firestore.googleapis.com/{OLD_BACKUP}",
        f"//dataflow.googleapis.com/projects/{PROJECT}/locations/us-east1/jobs/{FINISHED}",
        f"//run.googleapis.com/{SERVICE}",
        f"//run.googleapis.com/{SERVICE}/revisions/api-00001",
    }
    only_jobs = _search(
        inventory_client, APP_KEY, resource_types=["dataflow.googleapis.com/Job"], page_size=3
    )
    assert len(only_jobs) == 4
    assert grpc_server.methods_called().count("SearchProtectedResources") == 1 + 2
    first = next(
        iter(
            inventory_client.search_protected_resources(
                request={"scope": "organizations/1", "crypto_key": APP_KEY}
            )
        )
    )
    assert first.project_id == PROJECT and first.resource_type == "storage.googleapis.com/Bucket"
    assert first.crypto_key_version == v(APP_KEY, 1)
    # SearchProtectedResourcesRequest.scope: organizations/N, projects/ID or projects/NUMBER
    # are allowed; anything else is refused.
    by_project = inventory_client.search_protected_resources(
        request={"scope": f"projects/{PROJECT}", "crypto_key": APP_KEY}
    )
    assert {r.project_id for r in by_project} == {PROJECT}
    with pytest.raises(gexc.InvalidArgument):
        _search_scope(inventory_client, "folders/1")
    with pytest.raises(gexc.NotFound):
        _search(inventory_client, f"{APP_KEY}-missing")


def _search_scope(client: inventory.KeyTrackingServiceClient, scope: str) -> None:
    list(client.search_protected_resources(request={"scope": scope, "crypto_key": APP_KEY}))


def test_get_unknown_operation_is_not_found(firestore_client: FirestoreAdminClient) -> None:
    with pytest.raises(gexc.NotFound):
        firestore_client.transport.operations_client.get_operation("projects/demo/operations/none")
