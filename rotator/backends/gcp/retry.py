"""Retries for the real backend, and only here (tenacity): throttling and transient
server errors, with exponential backoff, jitter and an overall cap. Never another
4xx. Wait, stop and sleep are injectable so tests run without sleeping."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import tenacity
from google.api_core import exceptions as gexc

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
    # A dropped HTTP connection (requests) or socket error is transient too.
    name = type(error).__name__
    return name in ("ConnectionError", "ChunkedEncodingError", "ReadTimeout", "ConnectTimeout")


@dataclass
class RetryPolicy:
    initial: float = 0.5
    maximum: float = 30.0
    deadline: float = 300.0  # overall cap per call, seconds
    attempts: int = 12
    sleep: Callable[[float], None] = time.sleep
    on_retry: Callable[[BaseException, int], None] = field(default=lambda _e, _n: None)

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call fn, retrying what is retryable. A non-idempotent call must not come
        here (see `once`)."""
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(retryable),
            wait=tenacity.wait_exponential_jitter(
                multiplier=self.initial, max=self.maximum, jitter=self.initial
            ),
            stop=tenacity.stop_after_delay(self.deadline) | tenacity.stop_after_attempt(self.attempts),
            sleep=self.sleep,
            reraise=True,
            before_sleep=self._report,
        )
        return retrying(fn, *args, **kwargs)

    def _report(self, state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        self.on_retry(error or RuntimeError("retry"), state.attempt_number)

    def once(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """For calls not safe to repeat blindly (creating a key version, a job): retried
        only when the service said it did nothing (429 / RESOURCE_EXHAUSTED: rejected,
        e.g. the KMS quota, R6); never on UNAVAILABLE or a deadline, after which the
        change may have happened. The journal and the re-check on resume cover those."""
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(REJECTED),
            wait=tenacity.wait_exponential_jitter(
                multiplier=self.initial, max=self.maximum, jitter=self.initial
            ),
            stop=tenacity.stop_after_delay(self.deadline) | tenacity.stop_after_attempt(self.attempts),
            sleep=self.sleep,
            reraise=True,
            before_sleep=self._report,
        )
        return retrying(fn, *args, **kwargs)
