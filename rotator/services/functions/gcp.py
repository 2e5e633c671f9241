"""Cloud Run functions through google-cloud-functions (functions_v2), and the Artifact
Registry repositories their images live in through google-cloud-artifact-registry, as
the Backend protocol needs them: functions with their key and (for those rotator
deployed) the key version their label records; a function built again under its key's
primary (R42); repositories and their keys."""

from __future__ import annotations

from typing import Any

from rotator import apierrors as api
from rotator.backends.gcp.connect import grpc_transport
from rotator.backends.gcp.errors import tested_permissions, translated
from rotator.backends.gcp.retry import RetryPolicy
from rotator.backends.gcp.shared import (
    OPERATION_TIMEOUT,
    UNSET,
    GcpWorld,
    PrimaryOf,
    output_time,
    recorded_version,
)
from rotator.model import CloudFunction, Listing
from rotator.names import location_of

FUNCTION_VERSION_LABEL = "rotator-kms-key-version"


def connect(backend: GcpWorld) -> GcpFunctions:
    """The adapter over the Functions and Artifact Registry clients (their libraries
    imported here, on first use: a plan that never reads functions never loads them)."""
    from google.cloud import functions_v2
    from google.cloud.functions_v2.services.function_service.transports import (
        FunctionServiceGrpcTransport,
    )

    functions = functions_v2.FunctionServiceClient(
        transport=grpc_transport(FunctionServiceGrpcTransport, "functions", backend.credentials)
    )
    # Artifact Registry (repositories under the function's key, R42). Locally it is
    # served beside functions: ROTATOR_ENDPOINT_FUNCTIONS (an addition to SPEC's list).
    from google.cloud import artifactregistry_v1
    from google.cloud.artifactregistry_v1.services.artifact_registry.transports import (
        ArtifactRegistryGrpcTransport,
    )

    registry = artifactregistry_v1.ArtifactRegistryClient(
        transport=grpc_transport(ArtifactRegistryGrpcTransport, "functions", backend.credentials)
    )
    return GcpFunctions(
        functions, registry, backend.project, backend.retry, backend.primary_of, backend.inventory
    )


class GcpFunctions:
    def __init__(
        self,
        client: Any,
        registry: Any,
        project: str,
        retry: RetryPolicy,
        primary_of: PrimaryOf,
        inventory: Any = None,
    ):
        self.client, self.registry, self.project = client, registry, project
        self.retry = retry.for_calls_of("functions")  # retries as each call's declaration says
        self.primary_of, self.inventory = primary_of, inventory

    def test_iam_permissions(self, resource: str, permissions: list[str]) -> list[str]:
        return tested_permissions(self.retry, self.client, resource, permissions)

    @staticmethod
    def _fn(f: Any) -> CloudFunction:
        key = f.kms_key_name or None
        repo = f.build_config.docker_repository if f.build_config else None
        return CloudFunction(
            f.name,
            key,
            recorded_version(key, f.labels.get(FUNCTION_VERSION_LABEL)),
            repo or None,
            # "The last update timestamp of a Cloud Function": any update moves it, so a
            # later metadata-only update hides an earlier deploy (CONTRACT.md).
            deployed=output_time(f.update_time),
        )

    def list_functions(self) -> list[CloudFunction]:
        """All locations ("-"); "if any location is unreachable, the response will contain
        functions from all reachable locations along with the names of any unreachable
        locations" (ListFunctionsRequest.parent): a partial list."""
        parent = f"projects/{self.project}/locations/-"
        found: list[CloudFunction] = []
        unreachable: list[str] = []
        with translated("list_functions", parent):
            pager = self.retry.request(
                "list_functions", self.client.list_functions, parent=parent, retry=None
            )
            for page in pager.pages:
                found.extend(self._fn(f) for f in page.functions)
                unreachable.extend(location_of(u) for u in page.unreachable)
        return Listing(found, unreachable=unreachable)

    def get_function(self, name: str) -> CloudFunction:
        with translated("get_function", name):
            return self._fn(
                self.retry.request("get_function", self.client.get_function, name=name, retry=None)
            )

    def redeploy_function(
        self, name: str, *, kms_key: str | None = UNSET, docker_repository: str | None = UNSET
    ) -> CloudFunction:
        """Build the function's source again and deploy it under the key's primary (R42).
        The update names `build_config.source` (the same source) so the function is
        built again; whether it was is read back, not assumed: BuildConfig.build is "The
        Cloud Build name of the latest successful deployment of the function". Without a
        new build the version label is put back: the image is still under the version
        that built it, and the function keeps pinning it."""
        with translated("get_function", name):
            fn = self.retry.request("get_function", self.client.get_function, name=name, retry=None)
        built_before = fn.build_config.build
        label_before = fn.labels.get(FUNCTION_VERSION_LABEL, "")
        paths = ["labels", "build_config.source"]
        if kms_key is not UNSET:
            fn.kms_key_name = kms_key or ""
            paths.append("kms_key_name")
        if docker_repository is not UNSET:
            fn.build_config.docker_repository = docker_repository or ""
            paths.append("build_config.docker_repository")
        primary = self.primary_of(fn.kms_key_name) if fn.kms_key_name else None
        fn.labels[FUNCTION_VERSION_LABEL] = str(primary) if primary is not None else ""
        self._update(fn, paths)
        with translated("get_function", name):
            after = self.retry.request("get_function", self.client.get_function, name=name, retry=None)
        if after.build_config.build == built_before:
            after.labels[FUNCTION_VERSION_LABEL] = label_before
            self._update(after, ["labels"])
            with translated("get_function", name):
                after = self.retry.request("get_function", self.client.get_function, name=name, retry=None)
        return self._fn(after)

    def _update(self, fn: Any, paths: list[str]) -> None:
        with translated("update_function", fn.name):
            op = self.retry.request(
                "redeploy_function",
                self.client.update_function,
                function=fn,
                update_mask={"paths": paths},
                retry=None,
            )
            op.result(timeout=OPERATION_TIMEOUT)

    def get_repository_key(self, repository: str) -> str | None:
        if self.registry is None:
            raise api.NotFound(f"Artifact Registry is not reachable for {repository}", resource=repository)
        with translated("get_repository", repository):
            return (
                self.retry.request(
                    "get_repository", self.registry.get_repository, name=repository, retry=None
                ).kms_key_name
                or None
            )

    def list_repositories(self, region: str) -> list[tuple[str, str | None]]:
        if self.registry is None:
            return []
        parent = f"projects/{self.project}/locations/{region}"
        with translated("list_repositories", parent):
            pager = self.retry.request(
                "list_repositories", self.registry.list_repositories, parent=parent, retry=None
            )
            return [(r.name, r.kms_key_name or None) for r in pager]

    def repository_image_versions(self, repository: str, key: str) -> tuple[str, ...] | None:
        """A Repository and its DockerImages carry no key version; only KMS Inventory's
        search (with an organization) lists the versions a repository uses."""
        if self.inventory is None:
            return None
        return self.inventory.listed_versions(key, f"//artifactregistry.googleapis.com/{repository}")

    def create_repository(self, repository: str, *, kms_key: str | None) -> None:
        parent, _, repo_id = repository.rpartition("/repositories/")
        with translated("create_repository", repository):
            op = self.retry.request(
                "create_repository",
                self.registry.create_repository,
                request={
                    "parent": parent,
                    "repository_id": repo_id,
                    "repository": {"format_": "DOCKER", "kms_key_name": kms_key or ""},
                },
                retry=None,
            )
            op.result(timeout=OPERATION_TIMEOUT)
