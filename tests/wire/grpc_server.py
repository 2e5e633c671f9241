"""The fake world served as Google's gRPC APIs, for tests of the real (gcp) backend.

    from grpc_server import Fault, serve_grpc

    with serve_grpc(FakeBackend.from_dict(world)) as server:
        channel = grpc.insecure_channel(server.endpoint)
        client = kms_v1.KeyManagementServiceClient(
            transport=KeyManagementServiceGrpcTransport(channel=channel))
        server.faults.append(Fault(method="UpdateCryptoKeyVersion", times=2))
        ...
        assert [c.method for c in server.calls] == [...]

The messages are the client packages' own proto-plus types (their `serialize` /
`deserialize` classmethods) and, for IAM and long-running operations, the raw
protobuf types the clients use (`SerializeToString` / `FromString`), registered with
grpc's generic handlers: no protoc, no generated servicer code. One server hosts
every service; `server.env()` gives the ROTATOR_ENDPOINT_* variables of SPEC.

Hosted (service: methods):
  google.cloud.location.Locations: ListLocations (the KMS client's mixin)
  google.cloud.kms.v1.KeyManagementService: ListKeyRings, ListCryptoKeys, GetCryptoKey, ListCryptoKeyVersions,
      GetCryptoKeyVersion, CreateCryptoKeyVersion, UpdateCryptoKeyPrimaryVersion,
      UpdateCryptoKeyVersion, DestroyCryptoKeyVersion, RestoreCryptoKeyVersion
  google.iam.v1.IAMPolicy: GetIamPolicy, SetIamPolicy, TestIamPermissions (the KMS client's IAM mixin
      calls this service, not KeyManagementService; resources are KMS keys)
  google.firestore.admin.v1.FirestoreAdmin: ListDatabases, GetDatabase, ListBackups,
      RestoreDatabase (LRO)
  google.dataflow.v1beta3.JobsV1Beta3: ListJobs, AggregatedListJobs, GetJob, SnapshotJob
  google.cloud.run.v2.Services: ListServices, GetService, UpdateService (LRO)
  google.cloud.run.v2.Revisions: ListRevisions
  google.cloud.functions.v2.FunctionService: ListFunctions, GetFunction, UpdateFunction (LRO)
  google.cloud.kms.inventory.v1.KeyTrackingService: SearchProtectedResources (an
      organization or a project scope), GetProtectedResourcesSummary (KEY/protectedResourcesSummary)
  google.cloud.kms.inventory.v1.KeyDashboardService: ListCryptoKeys
  google.longrunning.Operations: GetOperation (every LRO here is returned done)

How the fake's hidden facts appear on the wire (the gcp backend reads them there):
  * a Cloud Run revision's key version: its annotation REVISION_VERSION_ANNOTATION
    (the full version name);
  * a function's key version: its label FUNCTION_VERSION_LABEL (the version number);
  * a Firestore backup's and a Dataflow job's key version: only through KMS Inventory
    (SearchProtectedResources), as on Google Cloud (Backup and Job carry no version).
"""

from __future__ import annotations

import random
import re
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from concurrent import futures
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple

import grpc
from google.cloud import artifactregistry_v1 as artifactregistry
from google.cloud import dataflow_v1beta3 as dataflow
from google.cloud import functions_v2 as functions
from google.cloud import kms_inventory_v1 as inventory
from google.cloud import kms_v1 as kms
from google.cloud import run_v2 as run
from google.cloud import storagebatchoperations_v1 as batchops
from google.cloud.firestore_admin_v1.types import backup as fs_backup
from google.cloud.firestore_admin_v1.types import database as fs_database
from google.cloud.firestore_admin_v1.types import firestore_admin as fs_admin
from google.cloud.location import locations_pb2
from google.iam.v1 import iam_policy_pb2, policy_pb2
from google.longrunning import operations_pb2
from google.protobuf import any_pb2

from rotator import apierrors as api
from rotator.errors import BadInput
from rotator.model import IamPolicy, unreachable_of

KMS = "google.cloud.kms.v1.KeyManagementService"
IAM = "google.iam.v1.IAMPolicy"
FIRESTORE_ADMIN = "google.firestore.admin.v1.FirestoreAdmin"
DATAFLOW_JOBS = "google.dataflow.v1beta3.JobsV1Beta3"
DATAFLOW_SNAPSHOTS = "google.dataflow.v1beta3.SnapshotsV1Beta3"
RUN_SERVICES = "google.cloud.run.v2.Services"
RUN_REVISIONS = "google.cloud.run.v2.Revisions"
FUNCTIONS = "google.cloud.functions.v2.FunctionService"
ARTIFACT_REGISTRY = "google.devtools.artifactregistry.v1.ArtifactRegistry"
STORAGE_BATCH = "google.cloud.storagebatchoperations.v1.StorageBatchOperations"
KMS_INVENTORY = "google.cloud.kms.inventory.v1.KeyTrackingService"
KMS_DASHBOARD = "google.cloud.kms.inventory.v1.KeyDashboardService"
LOCATIONS = "google.cloud.location.Locations"
OPERATIONS = "google.longrunning.Operations"

REVISION_VERSION_ANNOTATION = "rotator.kms-key-version"
FUNCTION_VERSION_LABEL = "rotator-kms-key-version"

# The SPEC's endpoint variables this server answers for (not storage: JSON over HTTP).
ENDPOINT_VARIABLES = (
    "ROTATOR_ENDPOINT_KMS",
    "ROTATOR_ENDPOINT_KMS_INVENTORY",
    "ROTATOR_ENDPOINT_FIRESTORE_ADMIN",
    "ROTATOR_ENDPOINT_DATAFLOW",
    "ROTATOR_ENDPOINT_RUN",
    "ROTATOR_ENDPOINT_FUNCTIONS",
    "ROTATOR_ENDPOINT_STORAGE_BATCH",
)

# rotator.apierrors codes -> gRPC status. An etag/generation precondition is a
# concurrency conflict: Google's gRPC APIs answer ABORTED (IAM SetIamPolicy does).
_STATUS = {
    "INVALID_ARGUMENT": grpc.StatusCode.INVALID_ARGUMENT,
    "FAILED_PRECONDITION": grpc.StatusCode.FAILED_PRECONDITION,
    "PRECONDITION_FAILED": grpc.StatusCode.ABORTED,
    "PERMISSION_DENIED": grpc.StatusCode.PERMISSION_DENIED,
    "NOT_FOUND": grpc.StatusCode.NOT_FOUND,
    "ALREADY_EXISTS": grpc.StatusCode.ALREADY_EXISTS,
    "RESOURCE_EXHAUSTED": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "UNAVAILABLE": grpc.StatusCode.UNAVAILABLE,
}
# In a long-running method these arrive at once as the RPC's status (validation);
# any other error is the finished operation's `error` (the deployment failed).
_RPC_TIME_ERRORS = (
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.ABORTED,
)

# UpdateFunction mask paths that make Cloud Functions build the source again.
_REBUILDING_FIELDS = {
    "build_config",
    "build_config.source",
    "build_config.docker_repository",
    "kms_key_name",
}

# A deploy time for the world file's own revisions and functions, which have none.
_LONG_AGO = datetime(2000, 1, 1, tzinfo=timezone.utc)
_TERMINAL_JOB_STATES = {"DONE", "FAILED", "CANCELLED", "UPDATED", "DRAINED"}


# The request fields each hosted method requires ("Required." in the request's field
# docstrings) and the names they must match; a missing or malformed one is refused
# INVALID_ARGUMENT before the method runs (rotator/backends/gcp/CONTRACT.md).
_P = "projects/[^/]+"
_L = f"{_P}/locations/[^/]+"
_KEY = f"{_L}/keyRings/[^/]+/cryptoKeys/[^/]+"
_VERSION = f"{_KEY}/cryptoKeyVersions/[0-9]+"
_ANY = ".+"
REQUIRED: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {
    (LOCATIONS, "ListLocations"): (("name", _P),),
    (KMS, "ListKeyRings"): (("parent", _L),),
    (KMS, "ListCryptoKeys"): (("parent", f"{_L}/keyRings/[^/]+"),),
    (KMS, "GetCryptoKey"): (("name", _KEY),),
    (KMS, "ListCryptoKeyVersions"): (("parent", _KEY),),
    (KMS, "GetCryptoKeyVersion"): (("name", _VERSION),),
    (KMS, "CreateCryptoKeyVersion"): (("parent", _KEY),),
    (KMS, "UpdateCryptoKeyPrimaryVersion"): (("name", _KEY), ("crypto_key_version_id", "[0-9]+")),
    (KMS, "UpdateCryptoKeyVersion"): (("crypto_key_version.name", _VERSION),),
    (KMS, "DestroyCryptoKeyVersion"): (("name", _VERSION),),
    (KMS, "RestoreCryptoKeyVersion"): (("name", _VERSION),),
    (IAM, "GetIamPolicy"): (("resource", _ANY),),
    (IAM, "SetIamPolicy"): (("resource", _ANY),),
    (IAM, "TestIamPermissions"): (("resource", _ANY),),
    (FIRESTORE_ADMIN, "ListDatabases"): (("parent", _P),),
    (FIRESTORE_ADMIN, "GetDatabase"): (("name", f"{_P}/databases/[^/]+"),),
    (FIRESTORE_ADMIN, "ListBackups"): (("parent", _L),),
    (FIRESTORE_ADMIN, "RestoreDatabase"): (
        ("parent", _P),
        ("database_id", _ANY),
        ("backup", f"{_L}/backups/[^/]+"),
    ),
    (DATAFLOW_JOBS, "AggregatedListJobs"): (("project_id", _ANY),),
    (DATAFLOW_JOBS, "GetJob"): (("project_id", _ANY), ("job_id", _ANY)),
    (DATAFLOW_JOBS, "SnapshotJob"): (("project_id", _ANY), ("job_id", _ANY)),
    (DATAFLOW_SNAPSHOTS, "ListSnapshots"): (("project_id", _ANY),),
    (RUN_SERVICES, "ListServices"): (("parent", _L),),
    (RUN_SERVICES, "GetService"): (("name", f"{_L}/services/[^/]+"),),
    (RUN_SERVICES, "UpdateService"): (("service.name", f"{_L}/services/[^/]+"),),
    (RUN_SERVICES, "TestIamPermissions"): (("resource", _ANY),),
    (RUN_REVISIONS, "ListRevisions"): (("parent", f"{_L}/services/[^/]+"),),
    (FUNCTIONS, "ListFunctions"): (("parent", _L),),
    (FUNCTIONS, "GetFunction"): (("name", f"{_L}/functions/[^/]+"),),
    (FUNCTIONS, "UpdateFunction"): (("function.name", f"{_L}/functions/[^/]+"),),
    (ARTIFACT_REGISTRY, "GetRepository"): (("name", f"{_L}/repositories/[^/]+"),),
    (ARTIFACT_REGISTRY, "ListRepositories"): (("parent", _L),),
    (ARTIFACT_REGISTRY, "CreateRepository"): (("parent", _L), ("repository_id", _ANY)),
    (KMS_INVENTORY, "SearchProtectedResources"): (
        ("scope", "(organizations|projects)/[^/]+"),
        ("crypto_key", f"{_KEY}(/cryptoKeyVersions/[0-9]+)?"),
    ),
    (KMS_INVENTORY, "GetProtectedResourcesSummary"): (("name", f"{_KEY}/protectedResourcesSummary"),),
    (KMS_DASHBOARD, "ListCryptoKeys"): (("parent", _P),),
    (STORAGE_BATCH, "CreateJob"): (("parent", _L),),
    (STORAGE_BATCH, "GetJob"): (("name", f"{_L}/jobs/[^/]+"),),
    (OPERATIONS, "GetOperation"): (("name", _ANY),),
}


def check_required(service: str, method: str, request: Any) -> None:
    """Refuse, as Google does, a request whose required field is missing or malformed."""
    for path, pattern in REQUIRED.get((service, method), ()):
        value: Any = request
        for part in path.split("."):
            value = getattr(value, part)
        if not value:
            raise RpcAbort(grpc.StatusCode.INVALID_ARGUMENT, f"{path} is required")
        if not re.fullmatch(pattern, str(value)):
            raise RpcAbort(grpc.StatusCode.INVALID_ARGUMENT, f"{path}: invalid resource name {value!r}")


def status_for(error: api.ApiError) -> grpc.StatusCode:
    return _STATUS.get(error.code, grpc.StatusCode.UNKNOWN)


class RpcAbort(Exception):
    """Raised by a handler to end the call with a status the fake itself has no error for."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code, self.message = code, message


@dataclass
class Fault:
    """Abort matching calls with `code`.

    method: short ("UpdateCryptoKeyVersion") or full ("/google.cloud.kms.v1.Key...
        /UpdateCryptoKeyVersion") method name, or "*" for every method;
    service: optional full service name to narrow `method` (e.g. KMS);
    times: fault this many matching calls, then let them through (None: no limit);
    rate: fault each matching call with this probability (random.Random(seed));
    skip: let this many matching calls through before the fault starts;
    when: "before" (the call never reaches the fake) or "after" (the fake applies it,
        then the reply is lost: the client sees `code` although the change happened);
    delay: seconds to sleep before answering a faulted call (e.g. with DEADLINE_EXCEEDED).
    """

    method: str = "*"
    code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE
    times: int | None = None
    rate: float | None = None
    seed: int | None = None
    service: str | None = None
    skip: int = 0
    when: str = "before"
    delay: float = 0.0
    message: str = "injected fault"
    seen: int = field(default=0, init=False)
    fired: int = field(default=0, init=False)
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.when not in ("before", "after"):
            raise ValueError(f"Fault.when must be 'before' or 'after', not {self.when!r}")
        self._rng = random.Random(self.seed)

    def matches(self, service: str, method: str) -> bool:
        if self.service is not None and self.service != service:
            return False
        return self.method in ("*", method, f"/{service}/{method}")

    def fires(self) -> bool:
        """Called once per matching call (under the server's lock)."""
        self.seen += 1
        if self.seen <= self.skip:
            return False
        if self.times is not None and self.fired >= self.times:
            return False
        if self.rate is not None and self._rng.random() >= self.rate:
            return False
        self.fired += 1
        return True


class Call(NamedTuple):
    service: str
    method: str
    request: Any


class FaultHit(NamedTuple):
    service: str
    method: str
    code: grpc.StatusCode


def _codec(cls: Any) -> tuple[Callable[[bytes], Any], Callable[[Any], bytes]]:
    if hasattr(cls, "deserialize"):  # proto-plus
        return cls.deserialize, cls.serialize
    return cls.FromString, lambda m: m.SerializeToString()  # raw protobuf


def _page(items: list[Any], page_size: int, page_token: str, default: int) -> tuple[list[Any], str]:
    size = page_size if page_size > 0 else default
    try:
        start = int(page_token[1:]) if page_token else 0
        if page_token and page_token[0] != "p":
            raise ValueError
    except ValueError:
        raise RpcAbort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid page token {page_token!r}") from None
    end = start + size
    return items[start:end], (f"p{end}" if end < len(items) else "")


def _seg(name: str, index: int) -> str:
    parts = name.split("/")
    return parts[index] if len(parts) > index else ""


class GrpcServer:
    """A running server; see the module docstring. Attributes:

    endpoint: "127.0.0.1:PORT"; calls: every call received, as Call(service, method,
    request) in arrival order (faulted ones too); faults: list of Fault, checked in
    order on each call (the first that fires wins); fault_hits: the faults that fired;
    default_page_size: page size when a list request gives none.
    """

    def __init__(
        self,
        backend: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: Iterable[Fault] = (),
        default_page_size: int = 100,
        max_workers: int = 8,
    ):
        self.backend = backend
        self.calls: list[Call] = []
        self.faults: list[Fault] = list(faults)
        self.fault_hits: list[FaultHit] = []
        # Called with ("before" | "after", "Service/Method") around every call's effect.
        self.hook: Callable[[str, str], None] | None = None
        self.default_page_size = default_page_size
        # Cloud Build runs per function (BuildConfig.build names the latest); False makes
        # every update metadata-only, to show a client that checks for a rebuild.
        self.builds: dict[str, int] = {}
        self.rebuild_on_update = True
        # Labels set by a metadata-only update, kept as Google keeps them (until a rebuild).
        self.function_labels: dict[str, dict[str, str]] = {}
        self.operations: dict[str, operations_pb2.Operation] = {}
        # Resources of products the fake does not model (e.g. BigQuery), listed by KMS
        # Inventory as Google would: key -> ProtectedResource messages.
        self.extra_protected: dict[str, list[inventory.ProtectedResource]] = {}
        self._lock = threading.Lock()
        self._op_counter = 0
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers))
        table: dict[str, dict[str, grpc.RpcMethodHandler]] = {}
        for service, method, req_cls, resp_cls, impl in self._methods():
            deserialize, _ = _codec(req_cls)
            _, serialize = _codec(resp_cls)
            table.setdefault(service, {})[method] = grpc.unary_unary_rpc_method_handler(
                self._wrap(service, method, impl),
                request_deserializer=deserialize,
                response_serializer=serialize,
            )
        self._server.add_generic_rpc_handlers(
            tuple(grpc.method_handlers_generic_handler(s, h) for s, h in table.items())
        )
        self.port = self._server.add_insecure_port(f"{host}:{port}")
        self.endpoint = f"{host}:{self.port}"
        self._server.start()

    # -- lifecycle -----------------------------------------------------------------------
    def stop(self, grace: float | None = None) -> None:
        self._server.stop(grace).wait()

    def __enter__(self) -> GrpcServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def env(self) -> dict[str, str]:
        """The SPEC's ROTATOR_ENDPOINT_* variables, all pointing at this server."""
        return {name: self.endpoint for name in ENDPOINT_VARIABLES}

    # -- test helpers ----------------------------------------------------------------------
    def inject(
        self, method: str = "*", code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE, **kw: Any
    ) -> Fault:
        fault = Fault(method=method, code=code, **kw)
        with self._lock:
            self.faults.append(fault)
        return fault

    def methods_called(self, service: str | None = None) -> list[str]:
        with self._lock:
            return [c.method for c in self.calls if service is None or c.service == service]

    def requests(self, method: str) -> list[Any]:
        with self._lock:
            return [c.request for c in self.calls if c.method == method]

    def clear(self) -> None:
        with self._lock:
            self.calls.clear()
            self.fault_hits.clear()
            self.faults.clear()

    # -- plumbing --------------------------------------------------------------------------
    def _wrap(self, service: str, method: str, impl: Callable[[Any], Any]) -> Callable[[Any, Any], Any]:
        def handle(request: Any, context: grpc.ServicerContext) -> Any:
            with self._lock:
                self.calls.append(Call(service, method, request))
                fault = next(
                    (f for f in self.faults if f.matches(service, method) and f.fires()),
                    None,
                )
                if fault is not None:
                    self.fault_hits.append(FaultHit(service, method, fault.code))
            if fault is not None and fault.when == "before":
                time.sleep(fault.delay)
                context.abort(fault.code, f"{fault.message} ({method})")
            hook, label = self.hook, f"{service.rsplit('.', 1)[-1]}/{method}"
            if hook is not None:
                hook("before", label)
            code, message, response = None, "", None
            try:
                check_required(service, method, request)
                response = impl(request)
            except RpcAbort as e:
                code, message = e.code, e.message
            except api.ApiError as e:
                code, message = status_for(e), e.message
            except BadInput as e:
                code, message = grpc.StatusCode.INVALID_ARGUMENT, e.message
            except Exception as e:  # a bug in this server or the fake: say so loudly
                code = grpc.StatusCode.INTERNAL
                message = f"grpc_server: {type(e).__name__}: {e}\n{traceback.format_exc()}"
            if hook is not None:
                hook("after", label)
            if fault is not None:
                time.sleep(fault.delay)
                context.abort(fault.code, f"{fault.message} ({method}, after it took effect)")
            if code is not None:
                context.abort(code, message)
            return response

        return handle

    def _methods(self) -> list[tuple[str, str, Any, Any, Callable[[Any], Any]]]:
        return [
            (KMS, "GetCryptoKey", kms.GetCryptoKeyRequest, kms.CryptoKey, self.get_crypto_key),
            (
                LOCATIONS,
                "ListLocations",
                locations_pb2.ListLocationsRequest,
                locations_pb2.ListLocationsResponse,
                self.list_locations,
            ),
            (KMS, "ListKeyRings", kms.ListKeyRingsRequest, kms.ListKeyRingsResponse, self.list_key_rings),
            (
                KMS,
                "ListCryptoKeys",
                kms.ListCryptoKeysRequest,
                kms.ListCryptoKeysResponse,
                self.list_kms_crypto_keys,
            ),
            (
                KMS,
                "ListCryptoKeyVersions",
                kms.ListCryptoKeyVersionsRequest,
                kms.ListCryptoKeyVersionsResponse,
                self.list_crypto_key_versions,
            ),
            (
                KMS,
                "GetCryptoKeyVersion",
                kms.GetCryptoKeyVersionRequest,
                kms.CryptoKeyVersion,
                self.get_crypto_key_version,
            ),
            (
                KMS,
                "CreateCryptoKeyVersion",
                kms.CreateCryptoKeyVersionRequest,
                kms.CryptoKeyVersion,
                self.create_crypto_key_version,
            ),
            (
                KMS,
                "UpdateCryptoKeyPrimaryVersion",
                kms.UpdateCryptoKeyPrimaryVersionRequest,
                kms.CryptoKey,
                self.update_crypto_key_primary_version,
            ),
            (
                KMS,
                "UpdateCryptoKeyVersion",
                kms.UpdateCryptoKeyVersionRequest,
                kms.CryptoKeyVersion,
                self.update_crypto_key_version,
            ),
            (
                KMS,
                "DestroyCryptoKeyVersion",
                kms.DestroyCryptoKeyVersionRequest,
                kms.CryptoKeyVersion,
                self.destroy_crypto_key_version,
            ),
            (
                KMS,
                "RestoreCryptoKeyVersion",
                kms.RestoreCryptoKeyVersionRequest,
                kms.CryptoKeyVersion,
                self.restore_crypto_key_version,
            ),
            (IAM, "GetIamPolicy", iam_policy_pb2.GetIamPolicyRequest, policy_pb2.Policy, self.get_iam_policy),
            (IAM, "SetIamPolicy", iam_policy_pb2.SetIamPolicyRequest, policy_pb2.Policy, self.set_iam_policy),
            (
                IAM,
                "TestIamPermissions",
                iam_policy_pb2.TestIamPermissionsRequest,
                iam_policy_pb2.TestIamPermissionsResponse,
                self.test_iam_permissions,
            ),
            (
                FIRESTORE_ADMIN,
                "ListDatabases",
                fs_admin.ListDatabasesRequest,
                fs_admin.ListDatabasesResponse,
                self.list_databases,
            ),
            (
                FIRESTORE_ADMIN,
                "GetDatabase",
                fs_admin.GetDatabaseRequest,
                fs_database.Database,
                self.get_database,
            ),
            (
                FIRESTORE_ADMIN,
                "ListBackups",
                fs_admin.ListBackupsRequest,
                fs_admin.ListBackupsResponse,
                self.list_backups,
            ),
            (
                FIRESTORE_ADMIN,
                "RestoreDatabase",
                fs_admin.RestoreDatabaseRequest,
                operations_pb2.Operation,
                self.restore_database,
            ),
            (DATAFLOW_JOBS, "ListJobs", dataflow.ListJobsRequest, dataflow.ListJobsResponse, self.list_jobs),
            (
                DATAFLOW_JOBS,
                "AggregatedListJobs",
                dataflow.ListJobsRequest,
                dataflow.ListJobsResponse,
                self.aggregated_list_jobs,
            ),
            (DATAFLOW_JOBS, "GetJob", dataflow.GetJobRequest, dataflow.Job, self.get_job),
            (DATAFLOW_JOBS, "SnapshotJob", dataflow.SnapshotJobRequest, dataflow.Snapshot, self.snapshot_job),
            (
                RUN_SERVICES,
                "ListServices",
                run.ListServicesRequest,
                run.ListServicesResponse,
                self.list_services,
            ),
            (RUN_SERVICES, "GetService", run.GetServiceRequest, run.Service, self.get_service),
            (
                RUN_SERVICES,
                "TestIamPermissions",
                iam_policy_pb2.TestIamPermissionsRequest,
                iam_policy_pb2.TestIamPermissionsResponse,
                self.test_run_iam_permissions,
            ),
            (
                RUN_SERVICES,
                "UpdateService",
                run.UpdateServiceRequest,
                operations_pb2.Operation,
                self.update_service,
            ),
            (
                RUN_REVISIONS,
                "ListRevisions",
                run.ListRevisionsRequest,
                run.ListRevisionsResponse,
                self.list_revisions,
            ),
            (
                FUNCTIONS,
                "ListFunctions",
                functions.ListFunctionsRequest,
                functions.ListFunctionsResponse,
                self.list_functions,
            ),
            (FUNCTIONS, "GetFunction", functions.GetFunctionRequest, functions.Function, self.get_function),
            (
                FUNCTIONS,
                "UpdateFunction",
                functions.UpdateFunctionRequest,
                operations_pb2.Operation,
                self.update_function,
            ),
            (
                STORAGE_BATCH,
                "CreateJob",
                batchops.CreateJobRequest,
                operations_pb2.Operation,
                self.create_batch_job,
            ),
            (STORAGE_BATCH, "GetJob", batchops.GetJobRequest, batchops.Job, self.get_batch_job),
            (
                DATAFLOW_SNAPSHOTS,
                "ListSnapshots",
                dataflow.ListSnapshotsRequest,
                dataflow.ListSnapshotsResponse,
                self.list_snapshots,
            ),
            (
                ARTIFACT_REGISTRY,
                "GetRepository",
                artifactregistry.GetRepositoryRequest,
                artifactregistry.Repository,
                self.get_repository,
            ),
            (
                ARTIFACT_REGISTRY,
                "ListRepositories",
                artifactregistry.ListRepositoriesRequest,
                artifactregistry.ListRepositoriesResponse,
                self.list_repositories,
            ),
            (
                ARTIFACT_REGISTRY,
                "CreateRepository",
                artifactregistry.CreateRepositoryRequest,
                operations_pb2.Operation,
                self.create_repository,
            ),
            (
                KMS_INVENTORY,
                "SearchProtectedResources",
                inventory.SearchProtectedResourcesRequest,
                inventory.SearchProtectedResourcesResponse,
                self.search_protected_resources,
            ),
            (
                KMS_INVENTORY,
                "GetProtectedResourcesSummary",
                inventory.GetProtectedResourcesSummaryRequest,
                inventory.ProtectedResourcesSummary,
                self.get_protected_resources_summary,
            ),
            (
                KMS_DASHBOARD,
                "ListCryptoKeys",
                inventory.ListCryptoKeysRequest,
                inventory.ListCryptoKeysResponse,
                self.list_inventory_crypto_keys,
            ),
            (
                OPERATIONS,
                "GetOperation",
                operations_pb2.GetOperationRequest,
                operations_pb2.Operation,
                self.get_operation,
            ),
        ]

    def _now(self) -> datetime:
        return self.backend.clock.now()

    @property
    def _project(self) -> str:
        return str(self.backend.project)

    def _check_project(self, name: str, what: str) -> None:
        if _seg(name, 0) != "projects" or _seg(name, 1) not in (self._project, self.backend.project_number):
            raise RpcAbort(grpc.StatusCode.NOT_FOUND, f"{what} {name!r} not found")

    def _lister(self, name: str, what: str) -> Any:
        """The project a list request names, as the fake sees it: the world's own, or
        another project the world names (FakeBackend.for_project); else NOT_FOUND."""
        project = _seg(name, 1)
        if _seg(name, 0) == "projects" and project not in (self._project, self.backend.project_number):
            if project in self.backend.projects():
                return self.backend.for_project(project)
        self._check_project(name, what)
        return self.backend

    # -- long-running operations -----------------------------------------------------------
    def _operation(self, prefix: str, run_it: Callable[[], Any]) -> operations_pb2.Operation:
        """Run the change now and return it as a finished Operation: the result packed
        in `response` (an Any of the result's proto type), or, for an error that is
        not a validation error, in `error`."""
        with self._lock:
            self._op_counter += 1
            name = f"{prefix}/operations/op-{self._op_counter:06d}"
        op = operations_pb2.Operation(name=name, done=True)
        try:
            result = run_it()
        except api.ApiError as e:
            code = status_for(e)
            if code in _RPC_TIME_ERRORS:
                raise
            op.error.code = code.value[0]
            op.error.message = e.message
        else:
            packed = any_pb2.Any()
            packed.Pack(type(result).pb(result))
            op.response.CopyFrom(packed)
        with self._lock:
            self.operations[name] = op
        return op

    def get_operation(self, req: operations_pb2.GetOperationRequest) -> operations_pb2.Operation:
        with self._lock:
            op = self.operations.get(req.name)
        if op is None:
            raise RpcAbort(grpc.StatusCode.NOT_FOUND, f"operation {req.name} not found")
        return op

    # -- KMS -------------------------------------------------------------------------------
    def _version_pb(self, v: Any, protection_level: str | None = None) -> kms.CryptoKeyVersion:
        if protection_level is None:
            protection_level = self.backend.kms.get_crypto_key(v.key).protection_level
        out = kms.CryptoKeyVersion(
            name=v.name,
            state=kms.CryptoKeyVersion.CryptoKeyVersionState[v.state],
            protection_level=_protection_level(protection_level),
            algorithm=kms.CryptoKeyVersion.CryptoKeyVersionAlgorithm.GOOGLE_SYMMETRIC_ENCRYPTION,
        )
        if v.destroy_time is not None:
            out.destroy_time = v.destroy_time
        if v.create_time is not None:
            out.create_time = v.create_time
        return out

    def _key_pb(self, k: Any) -> kms.CryptoKey:
        out = kms.CryptoKey(
            name=k.name,
            purpose=kms.CryptoKey.CryptoKeyPurpose.ENCRYPT_DECRYPT,
            version_template=kms.CryptoKeyVersionTemplate(
                protection_level=_protection_level(k.protection_level),
                algorithm=kms.CryptoKeyVersion.CryptoKeyVersionAlgorithm.GOOGLE_SYMMETRIC_ENCRYPTION,
            ),
            destroy_scheduled_duration=k.destroy_scheduled_duration,
        )
        if k.rotation_period is not None:
            out.rotation_period = k.rotation_period
        if k.next_rotation_time is not None:
            out.next_rotation_time = k.next_rotation_time
        if k.primary is not None:
            primary = self.backend.kms.get_crypto_key_version(f"{k.name}/cryptoKeyVersions/{k.primary}")
            out.primary = self._version_pb(primary, k.protection_level)
        return out

    def list_locations(self, req: locations_pb2.ListLocationsRequest) -> locations_pb2.ListLocationsResponse:
        """Cloud KMS's locations of a project (the KMS client's Locations mixin)."""
        ids = self.backend.kms.list_locations(req.name)
        page, token = _page(ids, req.page_size, req.page_token, self.default_page_size)
        return locations_pb2.ListLocationsResponse(
            locations=[locations_pb2.Location(name=f"{req.name}/locations/{i}", location_id=i) for i in page],
            next_page_token=token,
        )

    def list_key_rings(self, req: kms.ListKeyRingsRequest) -> kms.ListKeyRingsResponse:
        rings = self.backend.kms.list_key_rings(req.parent)
        page, token = _page(rings, req.page_size, req.page_token, self.default_page_size)
        return kms.ListKeyRingsResponse(
            key_rings=[kms.KeyRing(name=r) for r in page], next_page_token=token, total_size=len(rings)
        )

    def list_kms_crypto_keys(self, req: kms.ListCryptoKeysRequest) -> kms.ListCryptoKeysResponse:
        keys = self.backend.kms.list_crypto_keys(req.parent)
        page, token = _page(keys, req.page_size, req.page_token, self.default_page_size)
        return kms.ListCryptoKeysResponse(
            crypto_keys=[self._key_pb(k) for k in page], next_page_token=token, total_size=len(keys)
        )

    def get_crypto_key(self, req: kms.GetCryptoKeyRequest) -> kms.CryptoKey:
        return self._key_pb(self.backend.kms.get_crypto_key(req.name))

    def list_crypto_key_versions(
        self, req: kms.ListCryptoKeyVersionsRequest
    ) -> kms.ListCryptoKeyVersionsResponse:
        level = self.backend.kms.get_crypto_key(req.parent).protection_level
        versions = [self._version_pb(v, level) for v in self.backend.kms.list_crypto_key_versions(req.parent)]
        if req.filter:
            raise RpcAbort(grpc.StatusCode.UNIMPLEMENTED, "grpc_server: ListCryptoKeyVersions filter")
        page, token = _page(versions, req.page_size, req.page_token, self.default_page_size)
        return kms.ListCryptoKeyVersionsResponse(
            crypto_key_versions=page, next_page_token=token, total_size=len(versions)
        )

    def get_crypto_key_version(self, req: kms.GetCryptoKeyVersionRequest) -> kms.CryptoKeyVersion:
        return self._version_pb(self.backend.kms.get_crypto_key_version(req.name))

    def create_crypto_key_version(self, req: kms.CreateCryptoKeyVersionRequest) -> kms.CryptoKeyVersion:
        return self._version_pb(self.backend.kms.create_crypto_key_version(req.parent))

    def update_crypto_key_primary_version(
        self, req: kms.UpdateCryptoKeyPrimaryVersionRequest
    ) -> kms.CryptoKey:
        version = req.crypto_key_version_id
        if "/" not in version:  # the API takes the version id; accept a full name too
            version = f"{req.name}/cryptoKeyVersions/{version}"
        return self._key_pb(self.backend.kms.update_crypto_key_primary_version(req.name, version))

    def update_crypto_key_version(self, req: kms.UpdateCryptoKeyVersionRequest) -> kms.CryptoKeyVersion:
        paths = list(req.update_mask.paths)
        if paths != ["state"]:
            raise RpcAbort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"update_mask must be ['state'] (the only field this fake updates), not {paths}",
            )
        state = kms.CryptoKeyVersion.CryptoKeyVersionState(req.crypto_key_version.state).name
        version = self.backend.kms.update_crypto_key_version(req.crypto_key_version.name, state)
        return self._version_pb(version)

    def destroy_crypto_key_version(self, req: kms.DestroyCryptoKeyVersionRequest) -> kms.CryptoKeyVersion:
        return self._version_pb(self.backend.kms.destroy_crypto_key_version(req.name))

    def restore_crypto_key_version(self, req: kms.RestoreCryptoKeyVersionRequest) -> kms.CryptoKeyVersion:
        return self._version_pb(self.backend.kms.restore_crypto_key_version(req.name))

    # -- IAM (KMS keys) ----------------------------------------------------------------------
    @staticmethod
    def _policy_pb(policy: Any) -> policy_pb2.Policy:
        return policy_pb2.Policy(
            version=1,
            etag=policy.etag.encode(),
            bindings=[
                policy_pb2.Binding(role=role, members=sorted(members))
                for role, members in sorted(policy.bindings.items())
            ],
        )

    def _iam_key(self, resource: str) -> str:
        if "/cryptoKeys/" not in resource or "/cryptoKeyVersions/" in resource:
            raise RpcAbort(
                grpc.StatusCode.UNIMPLEMENTED, f"grpc_server: IAM policies of KMS keys only, not {resource}"
            )
        return resource

    def get_iam_policy(self, req: iam_policy_pb2.GetIamPolicyRequest) -> policy_pb2.Policy:
        return self._policy_pb(self.backend.kms.get_iam_policy(self._iam_key(req.resource)))

    def test_iam_permissions(
        self, req: iam_policy_pb2.TestIamPermissionsRequest
    ) -> iam_policy_pb2.TestIamPermissionsResponse:
        # The IAM mixin serves KMS keys and (the functions client's mixin) functions.
        # iam_policy.proto: "If the resource does not exist, this will return an empty set
        # of permissions, not a `NOT_FOUND` error."
        try:
            if "/functions/" in req.resource:
                held = self.backend.functions.test_iam_permissions(req.resource, list(req.permissions))
            else:
                key = self._iam_key(req.resource)
                held = self.backend.kms.test_iam_permissions(key, list(req.permissions))
        except api.NotFound:
            held = []
        return iam_policy_pb2.TestIamPermissionsResponse(permissions=held)

    def test_run_iam_permissions(
        self, req: iam_policy_pb2.TestIamPermissionsRequest
    ) -> iam_policy_pb2.TestIamPermissionsResponse:
        try:  # a missing service: no permissions, not NOT_FOUND (as IAM's TestIamPermissions)
            held = self.backend.run.test_iam_permissions(req.resource, list(req.permissions))
        except api.NotFound:
            held = []
        return iam_policy_pb2.TestIamPermissionsResponse(permissions=held)

    def set_iam_policy(self, req: iam_policy_pb2.SetIamPolicyRequest) -> policy_pb2.Policy:
        key = self._iam_key(req.resource)
        if req.policy.audit_configs or any(b.HasField("condition") for b in req.policy.bindings):
            raise RpcAbort(grpc.StatusCode.UNIMPLEMENTED, "grpc_server: conditions and audit configs")
        bindings: dict[str, list[str]] = {}
        for b in req.policy.bindings:
            bindings.setdefault(b.role, []).extend(b.members)
        policy = IamPolicy(bindings=bindings, etag=req.policy.etag.decode())
        return self._policy_pb(self.backend.kms.set_iam_policy(key, policy))

    # -- Firestore Admin ---------------------------------------------------------------------
    def _database_pb(self, d: Any) -> fs_database.Database:
        out = fs_database.Database(
            name=d.name,
            location_id=d.location,
            type_=fs_database.Database.DatabaseType.FIRESTORE_NATIVE,
            uid=d.uid,
        )
        if d.kms_key:
            out.cmek_config = fs_database.Database.CmekConfig(
                kms_key_name=d.kms_key, active_key_version=list(d.active_key_versions)
            )
        return out

    def list_databases(self, req: fs_admin.ListDatabasesRequest) -> fs_admin.ListDatabasesResponse:
        lister = self._lister(req.parent, "project")
        listing = lister.firestore.list_databases()  # the fake leaves out unreachable ones
        return fs_admin.ListDatabasesResponse(
            databases=[self._database_pb(d) for d in listing],
            unreachable=[f"{req.parent}/locations/{x}" for x in unreachable_of(listing)],
        )

    def get_database(self, req: fs_admin.GetDatabaseRequest) -> fs_database.Database:
        return self._database_pb(self.backend.firestore.get_database(req.name))

    def list_backups(self, req: fs_admin.ListBackupsRequest) -> fs_admin.ListBackupsResponse:
        lister = self._lister(req.parent, "project")
        location = _seg(req.parent, 3)
        if _seg(req.parent, 2) != "locations" or not location:
            raise RpcAbort(
                grpc.StatusCode.INVALID_ARGUMENT, f"parent must be projects/P/locations/L: {req.parent}"
            )
        if req.filter:
            raise RpcAbort(grpc.StatusCode.UNIMPLEMENTED, "grpc_server: ListBackups filter")
        listing = lister.firestore.list_backups()  # the fake leaves out unreachable ones
        self._reachable(location)
        backups = [
            fs_backup.Backup(
                name=b.name,
                database=b.database,
                database_uid=b.database_uid,
                snapshot_time=b.snapshot_time,
                expire_time=b.expire_time,
                state=fs_backup.Backup.State.READY,
            )
            for b in listing
            if location == "-" or _seg(b.name, 3) == location
        ]
        unreachable = [f"projects/{self._project}/locations/{x}" for x in unreachable_of(listing)]
        return fs_admin.ListBackupsResponse(
            backups=backups, unreachable=unreachable if location == "-" else []
        )

    def restore_database(self, req: fs_admin.RestoreDatabaseRequest) -> operations_pb2.Operation:
        self._check_project(req.parent, "project")
        config = req.encryption_config
        which = fs_database.Database.EncryptionConfig.pb(config).WhichOneof("encryption_type")
        kw: dict[str, Any] = {"kms_key": None, "use_backup_encryption": False}
        if which == "customer_managed_encryption":
            kw["kms_key"] = config.customer_managed_encryption.kms_key_name
        elif which in (None, "use_source_encryption"):  # the API's default: the backup's
            kw["use_backup_encryption"] = True

        def restore() -> fs_database.Database:
            return self._database_pb(
                self.backend.firestore.restore_database(req.database_id, req.backup, **kw)
            )

        return self._operation(f"{req.parent}/databases/{req.database_id}", restore)

    # -- Dataflow ----------------------------------------------------------------------------
    def _job_pb(self, j: Any, view: dataflow.JobView) -> dataflow.Job:
        out = dataflow.Job(
            id=j.id,
            project_id=self._project,
            name=j.name,
            location=j.region,
            type_=dataflow.JobType[f"JOB_TYPE_{j.type}"],
            current_state=dataflow.JobState[f"JOB_STATE_{j.state}"],
            create_time=j.created,
            start_time=j.created,
        )
        # As on Google Cloud, the summary view (the default) carries no environment.
        if view in (dataflow.JobView.JOB_VIEW_ALL, dataflow.JobView.JOB_VIEW_DESCRIPTION):
            # Streaming Engine shows as the experiment Dataflow sets for it.
            experiments = ["enable_streaming_engine"] if j.streaming_engine else []
            out.environment = dataflow.Environment(
                service_kms_key_name=j.kms_key or "", experiments=experiments
            )
        return out

    def _jobs(self, req: dataflow.ListJobsRequest, location: str | None) -> dataflow.ListJobsResponse:
        """ListJobsRequest.view: "Deprecated. ListJobs always returns summaries now. Use
        GetJob for other JobViews." So every job is a summary, whatever view is asked;
        an aggregated list leaves out the regions in `unreachable` (failed_location)."""
        lister = self._lister(f"projects/{req.project_id}", "project")
        wanted = req.filter
        listing = lister.dataflow.list_jobs()  # the fake leaves out unreachable regions
        self._reachable(location)
        jobs = [
            j
            for j in listing
            if (location is None or j.region == location)
            and not (wanted == dataflow.ListJobsRequest.Filter.ACTIVE and j.state in _TERMINAL_JOB_STATES)
            and not (
                wanted == dataflow.ListJobsRequest.Filter.TERMINATED and j.state not in _TERMINAL_JOB_STATES
            )
        ]
        jobs.sort(key=lambda j: j.created, reverse=True)  # newest first, as Dataflow lists
        page, token = _page(jobs, req.page_size, req.page_token, self.default_page_size)
        return dataflow.ListJobsResponse(
            jobs=[self._job_pb(j, dataflow.JobView.JOB_VIEW_SUMMARY) for j in page],
            next_page_token=token,
            failed_location=[
                dataflow.FailedLocation(name=r) for r in (unreachable_of(listing) if location is None else ())
            ],
        )

    def list_jobs(self, req: dataflow.ListJobsRequest) -> dataflow.ListJobsResponse:
        # No location means us-central1 on Google Cloud (a legacy default), not "all".
        return self._jobs(req, req.location or "us-central1")

    def aggregated_list_jobs(self, req: dataflow.ListJobsRequest) -> dataflow.ListJobsResponse:
        return self._jobs(req, None)

    def _find_job(self, project_id: str, job_id: str, location: str) -> Any:
        if project_id != self._project:
            raise RpcAbort(grpc.StatusCode.NOT_FOUND, f"project {project_id!r} not found")
        job = self.backend.dataflow.get_job(job_id)
        if location and job.region != location:
            raise api.NotFound(f"job {job_id} not found in {location}", resource=job_id)
        return job

    def get_job(self, req: dataflow.GetJobRequest) -> dataflow.Job:
        return self._job_pb(self._find_job(req.project_id, req.job_id, req.location), req.view)

    def snapshot_job(self, req: dataflow.SnapshotJobRequest) -> dataflow.Snapshot:
        job = self._find_job(req.project_id, req.job_id, req.location)
        snap = self.backend.dataflow.snapshot_job(job.id)
        out = dataflow.Snapshot(
            id=snap.id,
            project_id=self._project,
            source_job_id=snap.job,
            creation_time=snap.created,
            state=dataflow.SnapshotState[snap.state],
            region=job.region,
            description=req.description,
        )
        if req.ttl:
            out.ttl = req.ttl
        return out

    def list_snapshots(self, req: dataflow.ListSnapshotsRequest) -> dataflow.ListSnapshotsResponse:
        job = self._find_job(req.project_id, req.job_id, req.location)
        return dataflow.ListSnapshotsResponse(
            snapshots=[
                dataflow.Snapshot(
                    id=s.id,
                    project_id=self._project,
                    source_job_id=job.id,
                    creation_time=s.created,
                    state=dataflow.SnapshotState[s.state],
                    region=job.region,
                )
                for s in job.snapshots
            ]
        )

    # -- Cloud Run ----------------------------------------------------------------------------
    def _revision_name(self, service: str, revision: str) -> str:
        return f"{service}/revisions/{revision}"

    def _revision_pb(self, s: Any, index: int) -> run.Revision:
        r = s.revisions[index]
        # The fake's deploy time; a world file's own revision has none: then revision i
        # was created i minutes after an instant long before any key version (the order
        # Cloud Run lists them in, outside every KMS propagation window, as on the fake).
        created = r.deployed or _LONG_AGO + timedelta(minutes=index)
        out = run.Revision(
            name=self._revision_name(s.name, r.name),
            service=s.name.rsplit("/", 1)[1],
            encryption_key=r.kms_key or "",
            encryption_key_revocation_action=_revocation_action(s.revocation_action),
            create_time=created,
            update_time=created,
            generation=1,
        )
        if r.kms_key_version:
            out.annotations[REVISION_VERSION_ANNOTATION] = r.kms_key_version
        return out

    def _service_pb(self, s: Any) -> run.Service:
        latest = s.latest
        out = run.Service(
            name=s.name,
            generation=len(s.revisions),
            observed_generation=len(s.revisions),
            template=run.RevisionTemplate(
                encryption_key=(latest.kms_key or "") if latest else "",
                encryption_key_revocation_action=_revocation_action(s.revocation_action),
            ),
        )
        if latest is not None:
            out.latest_created_revision = self._revision_name(s.name, latest.name)
            out.latest_ready_revision = out.latest_created_revision
        allocation = run.TrafficTargetAllocationType
        by_name = allocation.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION
        for r in s.revisions:
            if r.traffic_percent:
                follows_latest = r is latest and not r.pinned
                kind = allocation.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST if follows_latest else by_name
                out.traffic.append(
                    run.TrafficTarget(
                        type_=kind, revision="" if follows_latest else r.name, percent=r.traffic_percent
                    )
                )
                out.traffic_statuses.append(
                    run.TrafficTargetStatus(type_=kind, revision=r.name, percent=r.traffic_percent)
                )
            # A tag is its own traffic entry (0% unless given a share): the same revision
            # can be listed twice, once by "latest" with its share and once by its tag.
            for tag in r.tags:
                out.traffic.append(run.TrafficTarget(type_=by_name, revision=r.name, percent=0, tag=tag))
                out.traffic_statuses.append(
                    run.TrafficTargetStatus(
                        type_=by_name, revision=r.name, percent=0, tag=tag, uri=f"https://{tag}---{s.name}"
                    )
                )
        return out

    def _reachable(self, location: str | None) -> None:
        """A one-location request to a location the fake marks unreachable fails, as
        Google suggests retrying an `unreachable` location alone "to get a concrete error"."""
        if location and location != "-" and location in self.backend.unreachable:
            raise RpcAbort(grpc.StatusCode.UNAVAILABLE, f"location {location} is unreachable")

    def _location_filter(self, parent: str) -> str:
        self._lister(parent, "project")
        if _seg(parent, 2) != "locations" or not _seg(parent, 3):
            raise RpcAbort(
                grpc.StatusCode.INVALID_ARGUMENT, f"parent must be projects/P/locations/L: {parent}"
            )
        return _seg(parent, 3)

    def list_services(self, req: run.ListServicesRequest) -> run.ListServicesResponse:
        # The fake refuses "-" as Cloud Run does (INVALID_ARGUMENT): one region per call.
        lister = self._lister(req.parent, "project")
        services = lister.run.list_services(self._location_filter(req.parent))
        page, token = _page(services, req.page_size, req.page_token, self.default_page_size)
        return run.ListServicesResponse(services=[self._service_pb(s) for s in page], next_page_token=token)

    def get_service(self, req: run.GetServiceRequest) -> run.Service:
        return self._service_pb(self.backend.run.get_service(req.name))

    def update_service(self, req: run.UpdateServiceRequest) -> operations_pb2.Operation:
        """A new revision (the fake deploys one on every update). The request is the
        whole service, as in the API: an empty template.encryption_key removes CMEK.
        kms_key is passed to the fake only when it changes."""
        name = req.service.name
        current = self.backend.run.get_service(name)
        old_key = current.latest.kms_key if current.latest else None
        new_key = req.service.template.encryption_key or None

        def update() -> run.Service:
            if req.validate_only:
                return self._service_pb(current)
            if new_key != old_key:
                return self._service_pb(self.backend.run.update_service(name, kms_key=new_key))
            return self._service_pb(self.backend.run.update_service(name))

        return self._operation(name.rsplit("/services/", 1)[0], update)

    def list_revisions(self, req: run.ListRevisionsRequest) -> run.ListRevisionsResponse:
        s = self.backend.run.get_service(req.parent)
        revisions = [self._revision_pb(s, i) for i in range(len(s.revisions))]
        page, token = _page(revisions, req.page_size, req.page_token, self.default_page_size)
        return run.ListRevisionsResponse(revisions=page, next_page_token=token)

    # -- Cloud Run functions ----------------------------------------------------------------
    def _function_pb(self, f: Any) -> functions.Function:
        out = functions.Function(
            name=f.name,
            kms_key_name=f.kms_key or "",
            build_config=functions.BuildConfig(
                docker_repository=f.docker_repository or "",
                build=f"projects/{self.backend.project_number}/locations/{_seg(f.name, 3)}/builds/"
                f"{f.name.rsplit('/', 1)[1]}-{self.builds.get(f.name, 0)}",
                source=functions.Source(
                    storage_source=functions.StorageSource(bucket="gcf-v2-sources", object_=f"{f.name}.zip")
                ),
            ),
            state=functions.Function.State.ACTIVE,
            environment=functions.Environment.GEN_2,
            update_time=f.deployed or _LONG_AGO,  # a world file's own: long before any version
        )
        if f.kms_key_version:
            out.labels[FUNCTION_VERSION_LABEL] = f.kms_key_version.rsplit("/", 1)[1]
        out.labels.update(self.function_labels.get(f.name, {}))
        return out

    def list_functions(self, req: functions.ListFunctionsRequest) -> functions.ListFunctionsResponse:
        lister = self._lister(req.parent, "project")
        location = self._location_filter(req.parent)
        if req.filter:
            raise RpcAbort(grpc.StatusCode.UNIMPLEMENTED, "grpc_server: ListFunctions filter")
        listing = lister.functions.list_functions()  # the fake leaves out unreachable ones
        self._reachable(location)
        found = [f for f in listing if location == "-" or _seg(f.name, 3) == location]
        page, token = _page(found, req.page_size, req.page_token, self.default_page_size)
        unreachable = [f"projects/{self._project}/locations/{x}" for x in unreachable_of(listing)]
        return functions.ListFunctionsResponse(
            functions=[self._function_pb(f) for f in page],
            next_page_token=token,
            unreachable=unreachable if location == "-" and not req.page_token else [],
        )

    def get_function(self, req: functions.GetFunctionRequest) -> functions.Function:
        return self._function_pb(self.backend.functions.get_function(req.name))

    def update_function(self, req: functions.UpdateFunctionRequest) -> operations_pb2.Operation:
        """With an update_mask only the named fields change; without one the request is
        the whole function ("If no field mask is provided, all fields will be updated").
        A change to the source, build or key runs a new build (BuildConfig.build changes)
        and redeploys under the key's primary (R42); a labels-only update is metadata:
        nothing is rebuilt and the image stays under the version that built it."""
        name = req.function.name
        current = self.backend.functions.get_function(name)
        paths = set(req.update_mask.paths)
        rebuilds = self.rebuild_on_update and (not paths or bool(paths & _REBUILDING_FIELDS))
        if not rebuilds:
            if not paths or "labels" in paths:
                with self._lock:
                    self.function_labels[name] = dict(req.function.labels)
            return self._operation(name.rsplit("/functions/", 1)[0], lambda: self._function_pb(current))
        wanted_key = req.function.kms_key_name or None
        wanted_repo = req.function.build_config.docker_repository or None
        kw: dict[str, Any] = {}
        if (not paths or "kms_key_name" in paths) and wanted_key != current.kms_key:
            kw["kms_key"] = wanted_key
        if (
            not paths or paths & {"build_config", "build_config.docker_repository"}
        ) and wanted_repo != current.docker_repository:
            kw["docker_repository"] = wanted_repo

        def update() -> functions.Function:
            deployed = self.backend.functions.redeploy_function(name, **kw)
            with self._lock:
                self.builds[name] = self.builds.get(name, 0) + 1
                self.function_labels.pop(name, None)
            return self._function_pb(deployed)

        return self._operation(name.rsplit("/functions/", 1)[0], update)

    # -- Cloud Storage batch operations ------------------------------------------------------
    def create_batch_job(self, req: batchops.CreateJobRequest) -> operations_pb2.Operation:
        b = req.job.bucket_list.buckets[0]

        def create() -> batchops.Job:
            job = self.backend.batch.create_job(
                req.job_id, b.bucket, b.manifest.manifest_location, req.job.rewrite_object.kms_key
            )
            return self._batch_job_pb(job)

        return self._operation(req.parent, create)

    def get_batch_job(self, req: batchops.GetJobRequest) -> batchops.Job:
        return self._batch_job_pb(self.backend.batch.get_job(req.name))

    @staticmethod
    def _batch_job_pb(job: Any) -> batchops.Job:
        return batchops.Job(
            name=job.name,
            bucket_list=batchops.BucketList(buckets=[batchops.BucketList.Bucket(bucket=job.bucket)]),
            state=batchops.Job.State[job.state],
            counters=batchops.Counters(
                total_object_count=job.total,
                succeeded_object_count=job.succeeded,
                failed_object_count=job.failed,
            ),
            error_summaries=[
                batchops.ErrorSummary(
                    error_count=job.failed,
                    error_log_entries=[
                        batchops.ErrorLogEntry(object_uri=uri, error_details=[err]) for uri, err in job.errors
                    ],
                )
            ]
            if job.errors
            else [],
        )

    # -- Artifact Registry (the repositories CMEK functions need, R42) ------------------------
    def get_repository(self, req: artifactregistry.GetRepositoryRequest) -> artifactregistry.Repository:
        key = self.backend.functions.get_repository_key(req.name)
        return artifactregistry.Repository(
            name=req.name, format_=artifactregistry.Repository.Format.DOCKER, kms_key_name=key or ""
        )

    def list_repositories(
        self, req: artifactregistry.ListRepositoriesRequest
    ) -> artifactregistry.ListRepositoriesResponse:
        """One location's repositories (ListRepositoriesRequest.parent: "The name of the
        parent resource whose repositories will be listed")."""
        repos = [
            artifactregistry.Repository(
                name=name, format_=artifactregistry.Repository.Format.DOCKER, kms_key_name=key or ""
            )
            for name, key in self.backend.functions.list_repositories(self._location_filter(req.parent))
        ]
        page, token = _page(repos, req.page_size, req.page_token, self.default_page_size)
        return artifactregistry.ListRepositoriesResponse(repositories=page, next_page_token=token)

    def create_repository(self, req: artifactregistry.CreateRepositoryRequest) -> operations_pb2.Operation:
        name = f"{req.parent}/repositories/{req.repository_id}"

        def create() -> artifactregistry.Repository:
            self.backend.functions.create_repository(name, kms_key=req.repository.kms_key_name or None)
            return self.get_repository(artifactregistry.GetRepositoryRequest(name=name))

        return self._operation(req.parent, create)

    # -- KMS Inventory ------------------------------------------------------------------------
    def search_protected_resources(
        self, req: inventory.SearchProtectedResourcesRequest
    ) -> inventory.SearchProtectedResourcesResponse:
        # scope (checked by REQUIRED): an organization, or a project by id or number.
        kind, _, scope_id = req.scope.partition("/")
        key = req.crypto_key.split("/cryptoKeyVersions/")[0]
        only_version = req.crypto_key if "/cryptoKeyVersions/" in req.crypto_key else None
        found = []
        # The fake's own inventory (one place knows what a key protects), then any extras.
        listed = self.backend.inventory.search_protected_resources(scope_id, key)
        for resource in [*map(self._resource_pb, listed), *self.extra_protected.get(key, [])]:
            if kind == "projects" and scope_id not in (resource.project_id, _seg(resource.project, 1)):
                continue  # a project scope lists that project's resources only
            if only_version and only_version not in resource.crypto_key_versions:
                continue
            if req.resource_types and not any(
                t in ("*", resource.resource_type)
                or (t.endswith(".*") and resource.resource_type.startswith(t[:-1]))
                for t in req.resource_types
            ):
                continue
            found.append(resource)
        page, token = _page(found, req.page_size, req.page_token, self.default_page_size)
        return inventory.SearchProtectedResourcesResponse(protected_resources=page, next_page_token=token)

    def get_protected_resources_summary(
        self, req: inventory.GetProtectedResourcesSummaryRequest
    ) -> inventory.ProtectedResourcesSummary:
        suffix = "/protectedResourcesSummary"
        if not req.name.endswith(suffix) or "/cryptoKeys/" not in req.name:
            raise RpcAbort(grpc.StatusCode.INVALID_ARGUMENT, f"name must be KEY{suffix}: {req.name!r}")
        key = req.name.removesuffix(suffix)
        s = self.backend.inventory.get_protected_resources_summary(key)
        types, products = dict(s.resource_types), dict(s.cloud_products)
        projects = {r.project for r in self.backend.inventory.protected(key)}
        for extra in self.extra_protected.get(key, []):
            types[extra.resource_type] = types.get(extra.resource_type, 0) + 1
            product = extra.resource_type.split(".", 1)[0]
            products[product] = products.get(product, 0) + 1
            projects.add(extra.project_id)
        return inventory.ProtectedResourcesSummary(
            name=key,
            resource_count=sum(types.values()),
            project_count=len(projects),
            resource_types=types,
            cloud_products=products,
        )

    def list_inventory_crypto_keys(
        self, req: inventory.ListCryptoKeysRequest
    ) -> inventory.ListCryptoKeysResponse:
        project = _seg(req.parent, 1)
        if _seg(req.parent, 0) != "projects" or not project:
            raise RpcAbort(grpc.StatusCode.INVALID_ARGUMENT, f"parent must be projects/P: {req.parent!r}")
        keys = [self._key_pb(k) for k in self.backend.inventory.list_crypto_keys(project)]
        page, token = _page(keys, req.page_size, req.page_token, self.default_page_size)
        return inventory.ListCryptoKeysResponse(crypto_keys=page, next_page_token=token)

    def _resource_pb(self, r: Any) -> inventory.ProtectedResource:
        location = _seg(r.name.lstrip("/"), 4) if "/locations/" in r.name else ""
        if r.resource_type == "storage.googleapis.com/Bucket":
            location = self.backend.storage.get_bucket(r.name.rsplit("/", 1)[1]).location
        return inventory.ProtectedResource(
            name=r.name,
            project=f"projects/{self.backend.project_number}" if r.project == self._project else "",
            project_id=r.project,
            cloud_product=r.resource_type.split(".", 1)[0],
            resource_type=r.resource_type,
            location=location.lower(),
            crypto_key_version=r.versions[0] if r.versions else "",
            crypto_key_versions=list(r.versions),
        )


def _all_objects(storage: Any, bucket: str) -> Iterable[Any]:
    for kw in ({"versions": True}, {"soft_deleted": True}):
        token = None
        while True:
            page = storage.list_objects(bucket, page_token=token, page_size=1000, **kw)
            yield from page.items
            token = page.next_page_token
            if not token:
                break


def _version_sort(version: str) -> tuple[str, int]:
    key, _, number = version.rpartition("/")
    return key, int(number) if number.isdigit() else 0


def _protection_level(name: str) -> kms.ProtectionLevel:
    try:
        return kms.ProtectionLevel[name]
    except KeyError:
        return kms.ProtectionLevel.PROTECTION_LEVEL_UNSPECIFIED


def _revocation_action(name: str) -> run.EncryptionKeyRevocationAction:
    try:
        return run.EncryptionKeyRevocationAction[name]
    except KeyError:
        return run.EncryptionKeyRevocationAction.ENCRYPTION_KEY_REVOCATION_ACTION_UNSPECIFIED


def serve_grpc(backend: Any, *, faults: Iterable[Fault] = (), **kw: Any) -> GrpcServer:
    """Start a server for `backend` (a FakeBackend) on 127.0.0.1 and a free port."""
    return GrpcServer(backend, faults=faults, **kw)
