"""google.api_core exceptions -> rotator.apierrors, with the permission a 403 is about."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from google.api_core import exceptions as gexc

from rotator import apierrors as api

T = TypeVar("T")

# The IAM permission each call needs, so a 403 says what to grant.
PERMISSIONS = {
    "get_crypto_key": "cloudkms.cryptoKeys.get",
    "list_crypto_key_versions": "cloudkms.cryptoKeyVersions.list",
    "create_crypto_key_version": "cloudkms.cryptoKeyVersions.create",
    "update_crypto_key_primary_version": "cloudkms.cryptoKeys.update",
    "update_crypto_key_version": "cloudkms.cryptoKeyVersions.update",
    "destroy_crypto_key_version": "cloudkms.cryptoKeyVersions.destroy",
    "restore_crypto_key_version": "cloudkms.cryptoKeyVersions.restore",
    "get_iam_policy": "cloudkms.cryptoKeys.getIamPolicy",
    "set_iam_policy": "cloudkms.cryptoKeys.setIamPolicy",
    "list_buckets": "storage.buckets.list",
    "get_bucket": "storage.buckets.get",
    "patch_bucket": "storage.buckets.update",
    "list_objects": "storage.objects.list",
    "get_object": "storage.objects.get",
    "rewrite_object": "storage.objects.create, storage.objects.delete and storage.objects.get",
    "list_databases": "datastore.databases.list",
    "get_database": "datastore.databases.getMetadata",
    "list_backups": "datastore.backups.list",
    "restore_database": "datastore.backups.restoreDatabase and datastore.databases.create",
    "list_jobs": "dataflow.jobs.list",
    "get_job": "dataflow.jobs.get",
    "snapshot_job": "dataflow.snapshots.create",
    "list_snapshots": "dataflow.snapshots.list",
    "list_services": "run.services.list",
    "get_service": "run.services.get",
    "update_service": "run.services.update",
    "list_revisions": "run.revisions.list",
    "list_functions": "cloudfunctions.functions.list",
    "get_function": "cloudfunctions.functions.get",
    "update_function": "cloudfunctions.functions.update",
    "search_protected_resources": "cloudkms.protectedResources.search",
    "write_manifest": "storage.objects.create",
    "list_log_entries": "logging.logEntries.list",
    "create_batch_job": "storagebatchoperations.jobs.create",
    "get_batch_job": "storagebatchoperations.jobs.get",
    "get_service_account": "resourcemanager.projects.get",
}

_MAP: list[tuple[type[gexc.GoogleAPICallError], type[api.ApiError]]] = [
    (gexc.NotFound, api.NotFound),
    # gRPC ABORTED (a concurrent change, e.g. a stale IAM etag) subclasses Conflict: first.
    (gexc.Aborted, api.PreconditionFailed),
    (gexc.AlreadyExists, api.AlreadyExists),
    (gexc.Conflict, api.AlreadyExists),
    (gexc.PreconditionFailed, api.PreconditionFailed),  # HTTP 412 (ifGenerationMatch, etag)
    (gexc.FailedPrecondition, api.FailedPrecondition),
    (gexc.PermissionDenied, api.PermissionDenied),  # gRPC PERMISSION_DENIED
    (gexc.Forbidden, api.PermissionDenied),  # HTTP 403
    (gexc.Unauthenticated, api.PermissionDenied),
    (gexc.TooManyRequests, api.ResourceExhausted),
    (gexc.ResourceExhausted, api.ResourceExhausted),
    (gexc.ServiceUnavailable, api.Unavailable),
    (gexc.DeadlineExceeded, api.Unavailable),
    (gexc.InternalServerError, api.Unavailable),
    (gexc.BadRequest, api.InvalidArgument),
    (gexc.InvalidArgument, api.InvalidArgument),
]


def translate(error: gexc.GoogleAPICallError, method: str, resource: str) -> api.ApiError:
    message = getattr(error, "message", None) or str(error)
    for google_cls, ours in _MAP:
        if isinstance(error, google_cls):
            if ours is api.PermissionDenied:
                need = PERMISSIONS.get(method, method)
                return api.PermissionDenied(
                    f"permission denied on {resource}: {method} needs {need} ({message})",
                    resource=resource,
                )
            return ours(f"{method} {resource}: {message}", resource=resource)
    return api.ApiError(f"{method} {resource}: {message}", resource=resource)


@contextmanager
def translated(method: str, resource: str) -> Iterator[None]:
    try:
        yield
    except gexc.GoogleAPICallError as e:
        raise translate(e, method, resource) from e


def call(
    policy_call: Callable[..., T], method: str, resource: str, fn: Callable[..., T], *a: object, **kw: object
) -> T:
    with translated(method, resource):
        return policy_call(fn, *a, **kw)
