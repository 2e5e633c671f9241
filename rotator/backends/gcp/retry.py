"""Retries for the real backend: rotator.retry's policy, deciding on the google-cloud
clients' own exceptions (they are translated to rotator.apierrors only after the last
attempt, in errors.translated)."""

from __future__ import annotations

from dataclasses import dataclass

from google.api_core import exceptions as gexc

from rotator import retry

RETRYABLE: tuple[type[BaseException], ...] = (
    gexc.TooManyRequests,  # 429
    gexc.ResourceExhausted,  # RESOURCE_EXHAUSTED (KMS quota, R6)
    gexc.ServiceUnavailable,  # 503 / UNAVAILABLE
    gexc.InternalServerError,  # 500
    gexc.BadGateway,
    gexc.GatewayTimeout,
    gexc.DeadlineExceeded,
)


# The service refused the request without acting on it: safe to send again, even a create.
REJECTED: tuple[type[BaseException], ...] = (gexc.TooManyRequests, gexc.ResourceExhausted)


def retryable(error: BaseException) -> bool:
    if isinstance(error, RETRYABLE):
        return True
    if getattr(error, "code", None) == 408:  # Request Timeout: retry it, per the request-rate guidance
        return True
    # A dropped HTTP connection (requests) or socket error is transient too.
    name = type(error).__name__
    return name in ("ConnectionError", "ChunkedEncodingError", "ReadTimeout", "ConnectTimeout")


@dataclass
class RetryPolicy(retry.RetryPolicy):
    def transient(self, error: BaseException) -> bool:
        return retryable(error)

    def rejected(self, error: BaseException) -> bool:
        return isinstance(error, REJECTED)
