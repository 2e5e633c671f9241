"""One contract test per call the gcp backend makes (rotator/backends/gcp/CONTRACT.md):
each refusal the reference documents, answered by the wire servers with Google's status
(and, for Cloud Storage, Google's message), and the fields an answer carries or leaves
out for the view asked. Driven through the official clients, as rotator drives them.

`test_every_call_in_the_contract_is_tested` keeps it so: a call named in CONTRACT.md
with no row here (or no test named in COVERED_ELSEWHERE) fails.

Backends: gcp over the wire."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.api_core import exceptions as gexc
from google.cloud import artifactregistry_v1 as artifactregistry
from google.cloud import dataflow_v1beta3 as dataflow
from google.cloud import functions_v2 as functions
from google.cloud import kms_inventory_v1 as inventory
from google.cloud import kms_v1 as kms
from google.cloud import run_v2 as run
from google.cloud import storage
from google.cloud import storagebatchoperations_v1 as batchops
from google.cloud.artifactregistry_v1.services.artifact_registry.transports import (
    ArtifactRegistryGrpcTransport,
)
from google.cloud.dataflow_v1beta3.services.jobs_v1_beta3.transports import JobsV1Beta3GrpcTransport
from google.cloud.dataflow_v1beta3.services.snapshots_v1_beta3.transports import (
    SnapshotsV1Beta3GrpcTransport,
)
from google.cloud.firestore_admin_v1 import FirestoreAdminClient
from google.cloud.firestore_admin_v1.services.firestore_admin.transports import FirestoreAdminGrpcTransport
from google.cloud.functions_v2.services.function_service.transports import FunctionServiceGrpcTransport
from google.cloud.kms_inventory_v1.services.key_dashboard_service.transports import (
    KeyDashboardServiceGrpcTransport,
)
from google.cloud.kms_inventory_v1.services.key_tracking_service.transports import (
    KeyTrackingServiceGrpcTransport,
)
from google.cloud.kms_v1.services.key_management_service.transports import KeyManagementServiceGrpcTransport
from google.cloud.run_v2.services.revisions.transports import RevisionsGrpcTransport
from google.cloud.run_v2.services.services.transports import ServicesGrpcTransport
from google.cloud.storagebatchoperations_v1.services.storage_batch_operations.transports import (
    StorageBatchOperationsGrpcTransport,
)
from storage_http import serve_storage
from worlds import APP_KEY, BUCKET, DB, FUNCTION, OLD_BACKUP, PROJECT, RING, SERVICE

from rotator.backends.fake import FakeBackend

CONTRACT = Path(__file__).resolve().parents[2] / "rotator" / "backends" / "gcp" / "CONTRACT.md"
HERE = Path(__file__).resolve().parent
LOC = f"projects/{PROJECT}/locations/us-east1"
VERSION_1 = f"{APP_KEY}/cryptoKeyVersions/1"
GOOGLE_412 = "At least one of the pre-conditions you specified did not hold."


class Clients:
    """The official clients, each on one channel to the gRPC server."""

    def __init__(self, channel: grpc.Channel):
        self.kms = kms.KeyManagementServiceClient(
            transport=KeyManagementServiceGrpcTransport(channel=channel)
        )
        self.tracking = inventory.KeyTrackingServiceClient(
            transport=KeyTrackingServiceGrpcTransport(channel=channel)
        )
        self.dashboard = inventory.KeyDashboardServiceClient(
            transport=KeyDashboardServiceGrpcTransport(channel=channel)
        )
        self.firestore = FirestoreAdminClient(transport=FirestoreAdminGrpcTransport(channel=channel))
        self.jobs = dataflow.JobsV1Beta3Client(transport=JobsV1Beta3GrpcTransport(channel=channel))
        self.snapshots = dataflow.SnapshotsV1Beta3Client(
            transport=SnapshotsV1Beta3GrpcTransport(channel=channel)
        )
        self.services = run.ServicesClient(transport=ServicesGrpcTransport(channel=channel))
        self.revisions = run.RevisionsClient(transport=RevisionsGrpcTransport(channel=channel))
        self.functions = functions.FunctionServiceClient(
            transport=FunctionServiceGrpcTransport(channel=channel)
        )
        self.registry = artifactregistry.ArtifactRegistryClient(
            transport=ArtifactRegistryGrpcTransport(channel=channel)
        )
        self.batch = batchops.StorageBatchOperationsClient(
            transport=StorageBatchOperationsGrpcTransport(channel=channel)
        )


@pytest.fixture
def c(grpc_channel: grpc.Channel) -> Clients:
    return Clients(grpc_channel)


@pytest.fixture
def gcs(grpc_backend: FakeBackend, monkeypatch: pytest.MonkeyPatch) -> Iterator[storage.Client]:
    with serve_storage(grpc_backend) as server:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.url)
        monkeypatch.setenv("DISABLE_GCS_PYTHON_CLIENT_OTEL_BUCKET_METADATA", "true")
        yield storage.Client(project=PROJECT)
    assert server.errors == []


def _drain(pager: Any) -> list[Any]:
    return list(pager)


# -- refusals: (contract call, the call with a missing or malformed required field, the field) ----
# The id is "<API section>.<call>" as CONTRACT.md names them (the lint below reads it).
GRPC_REFUSALS: list[tuple[str, Callable[[Clients], Any], str]] = [
    ("kms_v1.ListLocations", lambda c: _drain(c.kms.list_locations(request={"name": ""})), "name"),
    ("kms_v1.ListKeyRings", lambda c: _drain(c.kms.list_key_rings(parent=f"projects/{PROJECT}")), "parent"),
    ("kms_v1.ListCryptoKeys", lambda c: _drain(c.kms.list_crypto_keys(parent=LOC)), "parent"),
    ("kms_v1.GetCryptoKey", lambda c: c.kms.get_crypto_key(name=RING), "name"),
    ("kms_v1.ListCryptoKeyVersions", lambda c: _drain(c.kms.list_crypto_key_versions(parent="")), "parent"),
    ("kms_v1.GetCryptoKeyVersion", lambda c: c.kms.get_crypto_key_version(name=APP_KEY), "name"),
    (
        "kms_v1.CreateCryptoKeyVersion",
        lambda c: c.kms.create_crypto_key_version(parent=RING, crypto_key_version={}),
        "parent",
    ),
    (
        "kms_v1.UpdateCryptoKeyPrimaryVersion",
        # The id, not the version's name (UpdateCryptoKeyPrimaryVersionRequest.crypto_key_version_id).
        lambda c: c.kms.update_crypto_key_primary_version(name=APP_KEY, crypto_key_version_id=VERSION_1),
        "crypto_key_version_id",
    ),
    (
        "kms_v1.UpdateCryptoKeyVersion",
        lambda c: c.kms.update_crypto_key_version(
            crypto_key_version={"state": kms.CryptoKeyVersion.CryptoKeyVersionState.DISABLED},
            update_mask={"paths": ["state"]},
        ),
        "crypto_key_version.name",
    ),
    ("kms_v1.DestroyCryptoKeyVersion", lambda c: c.kms.destroy_crypto_key_version(name=""), "name"),
    ("kms_v1.RestoreCryptoKeyVersion", lambda c: c.kms.restore_crypto_key_version(name=APP_KEY), "name"),
    ("kms_v1.GetIamPolicy", lambda c: c.kms.get_iam_policy(request={"resource": ""}), "resource"),
    (
        "kms_v1.SetIamPolicy",
        lambda c: c.kms.set_iam_policy(request={"resource": "", "policy": {}}),
        "resource",
    ),
    (
        "kms_v1.TestIamPermissions",
        lambda c: c.kms.test_iam_permissions(request={"resource": "", "permissions": ["a.b.c"]}),
        "resource",
    ),
    (
        "kms_inventory_v1.SearchProtectedResources",
        lambda c: _drain(
            c.tracking.search_protected_resources(request={"scope": "folders/1", "crypto_key": APP_KEY})
        ),
        "scope",
    ),
    (
        "kms_inventory_v1.GetProtectedResourcesSummary",
        lambda c: c.tracking.get_protected_resources_summary(name=APP_KEY),  # without the suffix
        "name",
    ),
    ("kms_inventory_v1.ListCryptoKeys", lambda c: _drain(c.dashboard.list_crypto_keys(parent=LOC)), "parent"),
    ("firestore_admin_v1.ListDatabases", lambda c: c.firestore.list_databases(parent=""), "parent"),
    (
        "firestore_admin_v1.GetDatabase",
        lambda c: c.firestore.get_database(name=f"projects/{PROJECT}"),
        "name",
    ),
    (
        "firestore_admin_v1.ListBackups",
        lambda c: c.firestore.list_backups(parent=f"projects/{PROJECT}"),
        "parent",
    ),
    (
        "firestore_admin_v1.RestoreDatabase",
        lambda c: c.firestore.restore_database(
            request={"parent": f"projects/{PROJECT}", "database_id": "", "backup": OLD_BACKUP}
        ),
        "database_id",
    ),
    (
        "dataflow_v1beta3.AggregatedListJobs",
        lambda c: _drain(c.jobs.aggregated_list_jobs(request={"project_id": ""})),
        "project_id",
    ),
    ("dataflow_v1beta3.GetJob", lambda c: c.jobs.get_job(request={"project_id": PROJECT}), "job_id"),
    (
        "dataflow_v1beta3.SnapshotJob",
        lambda c: c.jobs.snapshot_job(request={"project_id": PROJECT}),
        "job_id",
    ),
    ("dataflow_v1beta3.ListSnapshots", lambda c: c.snapshots.list_snapshots(request={}), "project_id"),
    (
        "run_v2.ListServices",
        lambda c: _drain(c.services.list_services(parent=f"projects/{PROJECT}")),
        "parent",
    ),
    ("run_v2.GetService", lambda c: c.services.get_service(name=LOC), "name"),
    ("run_v2.UpdateService", lambda c: c.services.update_service(service={"name": ""}), "service.name"),
    (
        "run_v2.TestIamPermissions",
        lambda c: c.services.test_iam_permissions(
            request={"resource": "", "permissions": ["run.services.get"]}
        ),
        "resource",
    ),
    ("run_v2.ListRevisions", lambda c: _drain(c.revisions.list_revisions(parent=LOC)), "parent"),
    (
        "functions_v2.ListFunctions",
        lambda c: _drain(c.functions.list_functions(parent=f"projects/{PROJECT}")),
        "parent",
    ),
    ("functions_v2.GetFunction", lambda c: c.functions.get_function(name=LOC), "name"),
    (
        "functions_v2.UpdateFunction",
        lambda c: c.functions.update_function(function={"name": ""}, update_mask={"paths": ["labels"]}),
        "function.name",
    ),
    (
        "functions_v2.TestIamPermissions",
        lambda c: c.functions.test_iam_permissions(request={"resource": "", "permissions": ["x.y.z"]}),
        "resource",
    ),
    ("artifactregistry_v1.GetRepository", lambda c: c.registry.get_repository(name=LOC), "name"),
    (
        "artifactregistry_v1.ListRepositories",
        lambda c: _drain(c.registry.list_repositories(parent=f"projects/{PROJECT}")),
        "parent",
    ),
    (
        "artifactregistry_v1.CreateRepository",
        lambda c: c.registry.create_repository(
            request={"parent": LOC, "repository_id": "", "repository": {}}
        ),
        "repository_id",
    ),
    (
        "storagebatchoperations_v1.CreateJob",
        lambda c: c.batch.create_job(parent=f"projects/{PROJECT}", job={}, job_id="j"),
        "parent",
    ),
    ("storagebatchoperations_v1.GetJob", lambda c: c.batch.get_job(name=LOC), "name"),
]


@pytest.mark.parametrize(("rpc", "call", "field"), GRPC_REFUSALS, ids=[r[0] for r in GRPC_REFUSALS])
def test_grpc_refusal(c: Clients, rpc: str, call: Callable[[Clients], Any], field: str) -> None:
    """A required field missing or malformed is INVALID_ARGUMENT, before anything happens."""
    with pytest.raises(gexc.InvalidArgument) as info:
        call(c)
    assert field in str(info.value.message), (rpc, info.value.message)


# -- Cloud Storage (JSON API): refusals with Google's status, reason and message -------------------
def _insert_again(g: storage.Client) -> None:
    blob = g.bucket(BUCKET).blob("plans/p.json.lock")
    blob.upload_from_string(b"{}", if_generation_match=0, retry=None)
    g.bucket(BUCKET).blob("plans/p.json.lock").upload_from_string(b"{}", if_generation_match=0, retry=None)


def _delete_stale(g: storage.Client) -> None:
    blob = g.bucket(BUCKET).blob("plans/p.json")
    blob.upload_from_string(b"{}", if_generation_match=0, retry=None)
    g.bucket(BUCKET).delete_blob(
        "plans/p.json", if_generation_match=int(blob.generation or 0) + 1, retry=None
    )


def _media_stale(g: storage.Client) -> None:
    blob = g.bucket(BUCKET).blob("plans/q.json")
    blob.upload_from_string(b"{}", if_generation_match=0, retry=None)
    got = g.bucket(BUCKET).get_blob("plans/q.json", retry=None)
    assert got is not None
    blob.upload_from_string(b"{1}", if_generation_match=got.generation, retry=None)  # replaced since
    got.download_as_bytes(if_generation_match=got.generation, retry=None)


STORAGE_REFUSALS: list[tuple[str, Callable[[storage.Client], Any], type[Exception], str | None]] = [
    (
        "google-cloud-storage.buckets.list",
        lambda g: list(g.list_buckets(project="elsewhere")),
        gexc.Forbidden,
        None,
    ),
    (
        "google-cloud-storage.buckets.get",
        lambda g: g.get_bucket("no-such-bucket", retry=None),
        gexc.NotFound,
        None,
    ),
    (
        "google-cloud-storage.buckets.patch",
        lambda g: _patch(g, "no-such-bucket"),
        gexc.NotFound,
        None,
    ),
    (
        "google-cloud-storage.buckets.testIamPermissions",
        lambda g: g.bucket("no-such-bucket").test_iam_permissions(["storage.objects.update"], retry=None),
        gexc.NotFound,
        None,
    ),
    (
        "google-cloud-storage.objects.list",
        lambda g: list(g.list_blobs(BUCKET, versions=True, soft_deleted=True, retry=None)),
        gexc.BadRequest,
        None,
    ),
    ("google-cloud-storage.objects.insert", _insert_again, gexc.PreconditionFailed, GOOGLE_412),
    ("google-cloud-storage.objects.get", _media_stale, gexc.PreconditionFailed, GOOGLE_412),
    ("google-cloud-storage.objects.delete", _delete_stale, gexc.PreconditionFailed, GOOGLE_412),
    (
        "google-cloud-storage.objects.rewrite",
        lambda g: _rewrite_stale(g),
        gexc.PreconditionFailed,
        GOOGLE_412,
    ),
    (
        "google-cloud-storage.projects.serviceAccount.get",
        lambda g: g.get_service_account_email(project="elsewhere", retry=None),
        gexc.Forbidden,
        None,
    ),
]


def _patch(g: storage.Client, name: str) -> None:
    b = g.bucket(name)
    b.default_kms_key_name = APP_KEY
    b.patch(retry=None)


def _rewrite_stale(g: storage.Client) -> None:
    (live,) = [b for b in g.list_blobs(BUCKET, retry=None)][:1]
    b = g.bucket(BUCKET)
    b.blob(live.name, kms_key_name=APP_KEY).rewrite(
        b.blob(live.name), if_generation_match=int(live.generation or 0) + 1, retry=None
    )


@pytest.mark.parametrize(
    ("rpc", "call", "error", "message"), STORAGE_REFUSALS, ids=[r[0] for r in STORAGE_REFUSALS]
)
def test_storage_refusal(
    gcs: storage.Client,
    rpc: str,
    call: Callable[[storage.Client], Any],
    error: type[Exception],
    message: str | None,
) -> None:
    with pytest.raises(error) as info:
        call(gcs)
    if message is not None:
        assert message in str(info.value), (rpc, str(info.value))


# -- answers: what each view carries, and leaves out ------------------------------------------------
def test_kms_answers_carry_no_attestation_in_the_basic_view(c: Clients) -> None:
    """ListCryptoKeyVersionsRequest.view / ListCryptoKeysRequest.version_view: BASIC (the
    default, rotator's) leaves out `attestation`; the key carries its primary by name."""
    versions = list(c.kms.list_crypto_key_versions(parent=APP_KEY))
    assert versions and all(v.state and "attestation" not in v for v in versions)
    (key,) = [k for k in c.kms.list_crypto_keys(parent=RING) if k.name == APP_KEY]
    assert key.primary.name.startswith(APP_KEY + "/cryptoKeyVersions/") and "attestation" not in key.primary
    assert key.version_template.protection_level and key.destroy_scheduled_duration
    locations = c.kms.list_locations(request={"name": f"projects/{PROJECT}"}).locations
    assert "us-east1" in {loc.location_id for loc in locations}
    assert RING in {r.name for r in c.kms.list_key_rings(parent=LOC)}


def test_kms_inventory_answers(c: Clients) -> None:
    """The summary counts, never names; a project scope lists that project only; the
    dashboard lists kms_v1 CryptoKeys of every location."""
    summary = c.tracking.get_protected_resources_summary(name=f"{APP_KEY}/protectedResourcesSummary")
    assert summary.resource_count > 0 and summary.project_count >= 1 and summary.cloud_products
    listed = list(
        c.tracking.search_protected_resources(request={"scope": f"projects/{PROJECT}", "crypto_key": APP_KEY})
    )
    assert listed and {r.project_id for r in listed} == {PROJECT}
    keys = [k.name for k in c.dashboard.list_crypto_keys(parent=f"projects/{PROJECT}")]
    assert APP_KEY in keys


def test_iam_answers_the_subset_held(c: Clients) -> None:
    asked = ["cloudkms.cryptoKeyVersions.update"]
    held = c.kms.test_iam_permissions(request={"resource": APP_KEY, "permissions": asked})
    assert list(held.permissions) == asked
    assert list(
        c.services.test_iam_permissions(
            request={"resource": SERVICE, "permissions": ["run.services.update"]}
        ).permissions
    )
    assert list(
        c.functions.test_iam_permissions(request={"resource": FUNCTION, "permissions": ["x.y.z"]}).permissions
    )


@pytest.mark.parametrize(
    "resource",
    [f"{APP_KEY}-missing", f"{SERVICE}-missing", f"{FUNCTION}-missing"],
    ids=["kms", "run", "functions"],
)
def test_iam_test_permissions_of_a_missing_resource_is_an_empty_set(c: Clients, resource: str) -> None:
    """iam_policy.proto TestIamPermissions: "If the resource does not exist, this will
    return an empty set of permissions, not a `NOT_FOUND` error." """
    client = c.services if "/services/" in resource else c.functions if "/functions/" in resource else c.kms
    answer = client.test_iam_permissions(request={"resource": resource, "permissions": ["a.b.c"]})
    assert list(answer.permissions) == []


def test_firestore_database_answer(c: Clients) -> None:
    db = c.firestore.get_database(name=DB)
    assert db.cmek_config.kms_key_name == APP_KEY and db.cmek_config.active_key_version


# -- the lint: every call CONTRACT.md names has a test ---------------------------------------------
# Calls whose contract is shown by a test in another file (file: test function).
_RC, _HTTP = "test_rpc_contract.py::", "test_storage_http.py::"
COVERED_ELSEWHERE = {
    "dataflow_v1beta3.GetJob": _RC + "test_dataflow_lists_only_summaries_whatever_view_is_asked",
    "dataflow_v1beta3.AggregatedListJobs": _RC + "test_dataflow_lists_only_summaries_whatever_view_is_asked",
    "run_v2.ListServices": _RC + "test_cloud_run_is_listed_in_the_keys_region_never_with_the_wildcard",
    "functions_v2.UpdateFunction": _RC + "test_a_labels_only_update_builds_nothing",
    "google-cloud-storage.objects.list": _HTTP
    + "test_list_blobs_with_fields_gives_everything_the_inventory_needs_without_a_get",
    "google-cloud-storage.objects.rewrite": _HTTP + "test_rewrite_refusals_come_back_as_google_errors",
    "google-cloud-storage.buckets.patch": _HTTP + "test_patch_default_key_refused_as_google_would",
}
# Named in CONTRACT.md but served by no local stand-in (the row says *not served*).
NOT_SERVED = {"storagebatchoperations_v1.entries.list"}


def contract_calls(text: str) -> dict[str, str]:
    """'<section's API>.<call>' -> its row, for every table row of CONTRACT.md."""
    calls: dict[str, str] = {}
    section = ""
    for line in text.splitlines():
        if line.startswith("## "):
            ticks = re.findall(r"`([^`]+)`", line)
            section = ticks[0] if ticks else line[3:].strip()
            continue
        if not line.startswith("| ") or line.startswith("| call") or section.startswith("Where"):
            continue
        first = re.sub(r"\([^)]*\)", "", line.split("|")[1]).strip()
        prefix = ""
        for part in (p.strip() for p in first.split("/")):
            if "." in part:
                prefix = part.rsplit(".", 1)[0] + "."
            elif prefix:
                part = prefix + part
            calls[f"{section}.{part}"] = line
    return calls


def test_every_call_in_the_contract_is_tested() -> None:
    calls = contract_calls(CONTRACT.read_text())
    assert len(calls) >= 45, sorted(calls)  # the parser found the tables
    here = {r[0] for r in GRPC_REFUSALS} | {r[0] for r in STORAGE_REFUSALS}
    untested = []
    for call, row in sorted(calls.items()):
        if call in NOT_SERVED:
            assert "*not served*" in row, call
        elif call not in here and call not in COVERED_ELSEWHERE:
            untested.append(call)
    assert untested == [], f"calls in CONTRACT.md without a contract test: {untested}"
    for ref in COVERED_ELSEWHERE.values():
        file, _, test = ref.partition("::")
        assert f"def {test}(" in (HERE / file).read_text(), ref
    assert not (here - set(calls)), (
        f"rows here for calls CONTRACT.md does not name: {sorted(here - set(calls))}"
    )
