"""Retries for the real backend: rotator.retry's policy, deciding on the google-cloud
clients' own exceptions (they are translated to rotator.apierrors only after the last
attempt, in errors.translated)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from google.api_core import exceptions as gexc

from rotator import retry
from rotator.services.calls import repeatable

T = TypeVar("T")

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

    def for_calls_of(self, api: str) -> ApiRetry:
        """This policy as the gcp adapter of `api` (a Backend attribute: kms, storage,
        batch...) holds it."""
        return ApiRetry(api, self)


@dataclass(frozen=True)
class ApiRetry:
    """The retry policy as one API's gcp adapter holds it. The adapters retry through
    `request` only, naming the call: its declaration (rotator.services.calls) says
    whether a blind repeat is safe, so a gcp method cannot disagree with the fake's
    faults, which read the same declarations."""

    api: str
    policy: RetryPolicy

    def request(
        self, method: str, fn: Callable[..., T], /, *args: Any, preconditioned: bool = False, **kwargs: Any
    ) -> T:
        """Call fn: retried on any transient error when a blind repeat of `method` is
        safe, else only when the service refused it (RetryPolicy.once).
        `preconditioned`: the call carries if_generation_match (Repeat.IF_MATCH)."""
        if repeatable(self.api, method, gcp=True, preconditioned=preconditioned):
            return self.policy.call(fn, *args, **kwargs)
        return self.policy.once(fn, *args, **kwargs)
