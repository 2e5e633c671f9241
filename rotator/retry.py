"""Client-side retries (tenacity): throttling and transient server errors, with
exponential backoff, jitter and an overall cap; never another 4xx. A backend's API
client layer uses this, never the engine: the gcp backend around the google-cloud
clients (backends/gcp/retry.py adds the google exceptions), the fake backend around its
services when it injects faults (backends/fake/faults.py). Wait, stop and sleep are
injectable so tests run without sleeping."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import tenacity

from rotator import apierrors as api

T = TypeVar("T")


@dataclass
class RetryPolicy:
    initial: float = 0.5
    maximum: float = 30.0
    deadline: float = 300.0  # overall cap per call, seconds
    attempts: int = 12
    sleep: Callable[[float], None] = time.sleep
    on_retry: Callable[[BaseException, int], None] = field(default=lambda _e, _n: None)

    def transient(self, error: BaseException) -> bool:
        """Worth sending again (an idempotent call): the service may answer next time."""
        return isinstance(error, api.ApiError) and error.retryable

    def rejected(self, error: BaseException) -> bool:
        """The service refused without acting (quota, throttling): safe even for a create."""
        return isinstance(error, api.ResourceExhausted)

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call fn, retrying what is transient. A non-idempotent call must not come
        here (see `once`)."""
        return self._retrying(self.transient)(fn, *args, **kwargs)

    def once(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """For calls not safe to repeat blindly (creating a key version, a job): retried
        only when the service said it did nothing (429 / RESOURCE_EXHAUSTED: rejected,
        e.g. the KMS quota, R6); never on UNAVAILABLE or a deadline, after which the
        change may have happened. The journal and the re-check on resume cover those."""
        return self._retrying(self.rejected)(fn, *args, **kwargs)

    def _retrying(self, predicate: Callable[[BaseException], bool]) -> tenacity.Retrying:
        return tenacity.Retrying(
            retry=tenacity.retry_if_exception(predicate),
            wait=tenacity.wait_exponential_jitter(
                multiplier=self.initial, max=self.maximum, jitter=self.initial
            ),
            stop=tenacity.stop_after_delay(self.deadline) | tenacity.stop_after_attempt(self.attempts),
            sleep=self.sleep,
            reraise=True,
            before_sleep=self._report,
        )

    def _report(self, state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        self.on_retry(error or RuntimeError("retry"), state.attempt_number)
