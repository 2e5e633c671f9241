"""Firestore Admin, Dataflow, Cloud Run, Cloud Run functions and Artifact Registry
through their google-cloud clients, as the Backend protocol needs them.

Where an API does not say which key version a resource was encrypted under, the
version is left None and the inventory treats the resource as pinning every version
of its key (the safe side). Revisions and functions that rotator itself deploys carry
the version in an annotation / label, so they pin exactly one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from typing import Any

from rotator import apierrors as api
from rotator.backends.gcp.errors import tested_permissions, translated
from rotator.backends.gcp.retry import RetryPolicy
from rotator.backends.gcp.shared import (
    OPERATION_TIMEOUT,
    UNSET,
    PrimaryOf,
    location_of,
    output_time,
    recorded_version,
)
from rotator.model import (
    BatchJob,
    CloudFunction,
    CryptoKey,
    Listing,
    ProtectedResource,
    ProtectedResourcesSummary,
)

FUNCTION_VERSION_LABEL = "rotator-kms-key-version"


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
        self.client, self.registry, self.project, self.retry = client, registry, project, retry
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
            pager = self.retry.call(self.client.list_functions, parent=parent, retry=None)
            for page in pager.pages:
                found.extend(self._fn(f) for f in page.functions)
                unreachable.extend(location_of(u) for u in page.unreachable)
        return Listing(found, unreachable=unreachable)

    def get_function(self, name: str) -> CloudFunction:
        with translated("get_function", name):
            return self._fn(self.retry.call(self.client.get_function, name=name, retry=None))

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
            fn = self.retry.call(self.client.get_function, name=name, retry=None)
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
            after = self.retry.call(self.client.get_function, name=name, retry=None)
        if after.build_config.build == built_before:
            after.labels[FUNCTION_VERSION_LABEL] = label_before
            self._update(after, ["labels"])
            with translated("get_function", name):
                after = self.retry.call(self.client.get_function, name=name, retry=None)
        return self._fn(after)

    def _update(self, fn: Any, paths: list[str]) -> None:
        with translated("update_function", fn.name):
            op = self.retry.once(
                self.client.update_function, function=fn, update_mask={"paths": paths}, retry=None
            )
            op.result(timeout=OPERATION_TIMEOUT)

    def get_repository_key(self, repository: str) -> str | None:
        if self.registry is None:
            raise api.NotFound(f"Artifact Registry is not reachable for {repository}", resource=repository)
        with translated("get_repository", repository):
            return (
                self.retry.call(self.registry.get_repository, name=repository, retry=None).kms_key_name
                or None
            )

    def list_repositories(self, region: str) -> list[tuple[str, str | None]]:
        if self.registry is None:
            return []
        parent = f"projects/{self.project}/locations/{region}"
        with translated("list_repositories", parent):
            pager = self.retry.call(self.registry.list_repositories, parent=parent, retry=None)
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
            op = self.retry.once(
                self.registry.create_repository,
                request={
                    "parent": parent,
                    "repository_id": repo_id,
                    "repository": {"format_": "DOCKER", "kms_key_name": kms_key or ""},
                },
                retry=None,
            )
            op.result(timeout=OPERATION_TIMEOUT)


class GcpKeyInventory:
    """Cloud KMS Inventory: the per-key summary (no organization needed), the search
    (names and versions; only with ROTATOR_ORGANIZATION) and the key list of a project."""

    def __init__(self, tracking: Any, dashboard: Any, organization: str | None, retry: RetryPolicy):
        self.tracking, self.dashboard, self.retry = tracking, dashboard, retry
        self.organization = organization
        self._cache: dict[str, list[ProtectedResource]] = {}

    def get_protected_resources_summary(self, key: str) -> ProtectedResourcesSummary:
        name = f"{key}/protectedResourcesSummary"
        with translated("get_protected_resources_summary", key):
            s = self.retry.call(self.tracking.get_protected_resources_summary, name=name, retry=None)
        return ProtectedResourcesSummary(
            key=key,
            resource_count=int(s.resource_count),
            project_count=int(s.project_count),
            resource_types={k: int(v) for k, v in s.resource_types.items()},
            cloud_products={k: int(v) for k, v in s.cloud_products.items()},
        )

    def search_protected_resources(self, organization: str, key: str) -> list[ProtectedResource]:
        with translated("search_protected_resources", key):
            pager = self.retry.call(
                self.tracking.search_protected_resources,
                request={"scope": f"organizations/{organization}", "crypto_key": key},
                retry=None,
            )
            return [
                ProtectedResource(
                    r.name,
                    r.resource_type,
                    tuple(r.crypto_key_versions) or ((r.crypto_key_version,) if r.crypto_key_version else ()),
                    r.project_id,
                )
                for r in pager
            ]

    def list_crypto_keys(self, project: str) -> list[CryptoKey]:
        from rotator.backends.gcp.kms import crypto_key

        with translated("list_crypto_keys", f"projects/{project}"):
            pager = self.retry.call(self.dashboard.list_crypto_keys, parent=f"projects/{project}", retry=None)
            return [crypto_key(k) for k in pager]

    def listed_versions(self, key: str, resource: str) -> tuple[str, ...] | None:
        """Every version the search lists for `resource`, or None if it is not listed (or
        there is no organization to search)."""
        if not self.organization:
            return None
        if key not in self._cache:
            self._cache[key] = self.search_protected_resources(self.organization, key)
        found = [r.versions for r in self._cache[key] if r.name == resource]
        return tuple(found[0]) if found and found[0] else None

    def versions_of(self, key: str | None, resource: str) -> str | None:
        """The one version the search says protects `resource`, or None if unknown (no
        organization, or the search lists none or several)."""
        if not key or not self.organization:
            return None
        if key not in self._cache:
            try:
                self._cache[key] = self.search_protected_resources(self.organization, key)
            except api.ApiError:
                # Unknown, so any version (the safe side); the plan's inventory line says why.
                self._cache[key] = []
        found = [r.versions for r in self._cache[key] if r.name == resource]
        return found[0][0] if found and len(found[0]) == 1 else None


class GcpStorageBatch:
    """Cloud Storage batch operations (google-cloud-storagebatchoperations): a
    RewriteObject(kms_key) job over a manifest of exactly the objects to move."""

    def __init__(self, client: Any, storage_client: Any, project: str, retry: RetryPolicy):
        self.client, self.storage_client, self.project, self.retry = client, storage_client, project, retry

    def write_manifest(self, bucket: str, name: str, rows: Iterable[tuple[str, str, int]]) -> str:
        """Streamed to a temporary file first: a million rows never sit in memory."""
        with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as fh:
            for b, n, g in rows:
                fh.write(f"{b},{n},{g}\n")
            path = fh.name
        try:
            blob = self.storage_client.bucket(bucket).blob(name)
            with translated("write_manifest", f"gs://{bucket}/{name}"):
                # Re-uploading the same manifest is harmless: safe to retry.
                self.retry.call(blob.upload_from_filename, path, content_type="text/csv", retry=None)
        finally:
            os.unlink(path)
        return f"gs://{bucket}/{name}"

    def job_name(self, job_id: str) -> str:
        return f"projects/{self.project}/locations/global/jobs/{job_id}"

    def create_job(self, job_id: str, bucket: str, manifest_uri: str, kms_key: str) -> BatchJob:
        from google.cloud import storagebatchoperations_v1 as sb

        job = sb.Job(
            bucket_list=sb.BucketList(
                buckets=[
                    sb.BucketList.Bucket(bucket=bucket, manifest=sb.Manifest(manifest_location=manifest_uri))
                ]
            ),
            rewrite_object=sb.RewriteObject(kms_key=kms_key),
            description="rotator: re-encrypt objects under a new key version",
        )
        parent = f"projects/{self.project}/locations/global"
        with translated("create_batch_job", parent):
            # Not retried blindly: the engine records the job id and resumes it instead.
            self.retry.once(self.client.create_job, parent=parent, job_id=job_id, job=job, retry=None)
        return self.get_job(self.job_name(job_id))

    def get_job(self, name: str) -> BatchJob:
        from google.cloud import storagebatchoperations_v1 as sb

        with translated("get_batch_job", name):
            j = self.retry.call(self.client.get_job, name=name, retry=None)
        errors = tuple(
            (
                e.object_uri,
                e.error_details[0]
                if e.error_details
                else s.error_code.name
                if hasattr(s.error_code, "name")
                else str(s.error_code),
            )
            for s in j.error_summaries
            for e in s.error_log_entries
        )
        bucket = j.bucket_list.buckets[0].bucket if j.bucket_list.buckets else ""
        counters = j.counters
        return BatchJob(
            j.name,
            bucket,
            sb.Job.State(j.state).name,
            int(counters.total_object_count),
            int(counters.succeeded_object_count),
            int(counters.failed_object_count),
            errors,
        )
