"""google.api_core exceptions -> rotator.apierrors, with the permission a 403 is about."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from google.api_core import exceptions as gexc

from rotator import apierrors as api
from rotator.backends.gcp.retry import ApiRetry
from rotator.services.calls import PERMISSIONS

T = TypeVar("T")


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
    (gexc.DeadlineExceeded, api.DeadlineExceeded),
    (gexc.GatewayTimeout, api.DeadlineExceeded),  # HTTP 504
    (gexc.BadGateway, api.Unavailable),  # HTTP 502
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


def tested_permissions(retry: ApiRetry, client: Any, resource: str, permissions: list[str]) -> list[str]:
    """The caller's permissions on `resource` among `permissions`: the TestIamPermissions
    call that Cloud KMS, Cloud Run and Cloud Run functions share (iam_policy.proto), as
    the API `retry` serves declares it (it only reads: repeated)."""
    with translated("test_iam_permissions", resource):
        answer = retry.request(
            "test_iam_permissions",
            client.test_iam_permissions,
            request={"resource": resource, "permissions": permissions},
            retry=None,
        )
    return list(answer.permissions)
