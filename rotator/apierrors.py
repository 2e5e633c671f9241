"""Errors a cloud API answers with, as both backends raise them.

The fake raises these where the cloud would; the gcp backend translates
google.api_core exceptions into them. The engine never sees a google exception.
"""

from __future__ import annotations


class ApiError(Exception):
    code = "UNKNOWN"
    http_status = 500
    retryable = False

    def __init__(self, message: str, *, resource: str | None = None, rule: str | None = None):
        super().__init__(message)
        self.message = message
        self.resource = resource
        self.rule = rule

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class InvalidArgument(ApiError):
    code, http_status = "INVALID_ARGUMENT", 400


class FailedPrecondition(ApiError):
    code, http_status = "FAILED_PRECONDITION", 400


class PreconditionFailed(ApiError):
    """HTTP 412: an if_generation_match (or etag) precondition did not hold."""

    code, http_status = "PRECONDITION_FAILED", 412


class PermissionDenied(ApiError):
    code, http_status = "PERMISSION_DENIED", 403


class NotFound(ApiError):
    code, http_status = "NOT_FOUND", 404


class AlreadyExists(ApiError):
    code, http_status = "ALREADY_EXISTS", 409


class ResourceExhausted(ApiError):
    code, http_status, retryable = "RESOURCE_EXHAUSTED", 429, True


class Unavailable(ApiError):
    code, http_status, retryable = "UNAVAILABLE", 503, True


class DeadlineExceeded(ApiError):
    """The answer did not come in time: the change may or may not have happened."""

    code, http_status, retryable = "DEADLINE_EXCEEDED", 504, True
