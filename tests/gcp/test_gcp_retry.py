"""Retries live only in backends/gcp: what is retried, what never is, and the messages.

Backends: gcp (its error translation and retry policy, in process)."""

from __future__ import annotations

import pytest
from google.api_core import exceptions as gexc

from rotator import apierrors as api
from rotator.backends.gcp.errors import translate, translated
from rotator.backends.gcp.retry import RetryPolicy


class Flaky:
    def __init__(self, *errors: Exception, result: str = "ok"):
        self.errors = list(errors)
        self.calls = 0
        self.result = result

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.result


def policy(slept: list[float]) -> RetryPolicy:
    return RetryPolicy(initial=0.5, maximum=4.0, deadline=300.0, attempts=6, sleep=slept.append)


@pytest.mark.parametrize(
    "error",
    [
        gexc.TooManyRequests("429 rateLimitExceeded"),
        gexc.ServiceUnavailable("503 backendError"),
        gexc.InternalServerError("500"),
        gexc.DeadlineExceeded("deadline"),
        gexc.ResourceExhausted("KMS quota (R6)"),
    ],
    ids=["429", "503", "500", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED"],
)
def test_transient_errors_are_retried_with_growing_jittered_waits(error: Exception) -> None:
    slept: list[float] = []
    fn = Flaky(error, error, error)
    assert policy(slept).call(fn) == "ok"
    assert fn.calls == 4
    assert len(slept) == 3
    # Exponential with jitter: each wait at least the base step, never above the cap.
    assert slept[0] >= 0.5 and slept[1] >= 1.0 and slept[2] >= 2.0
    assert all(s <= 4.0 for s in slept)


@pytest.mark.parametrize(
    "error",
    [
        gexc.Forbidden("403"),
        gexc.NotFound("404"),
        gexc.PreconditionFailed("412"),
        gexc.BadRequest("400"),
        gexc.PermissionDenied("PERMISSION_DENIED"),
        gexc.FailedPrecondition("FAILED_PRECONDITION"),
    ],
    ids=["403", "404", "412", "400", "PERMISSION_DENIED", "FAILED_PRECONDITION"],
)
def test_other_client_errors_are_never_retried(error: Exception) -> None:
    slept: list[float] = []
    fn = Flaky(error)
    with pytest.raises(type(error)):
        policy(slept).call(fn)
    assert fn.calls == 1
    assert slept == []


def test_retries_stop_at_the_cap_and_raise_the_last_error() -> None:
    slept: list[float] = []
    fn = Flaky(*[gexc.ServiceUnavailable("503")] * 20)
    with pytest.raises(gexc.ServiceUnavailable):
        policy(slept).call(fn)
    assert fn.calls == 6  # attempts cap


def test_a_create_is_not_retried_when_it_may_have_happened() -> None:
    fn = Flaky(gexc.ServiceUnavailable("503"))
    with pytest.raises(gexc.ServiceUnavailable):
        policy([]).once(fn)
    assert fn.calls == 1


def test_a_create_is_retried_when_the_service_rejected_it() -> None:
    slept: list[float] = []
    fn = Flaky(gexc.ResourceExhausted("KMS quota (R6)"), gexc.TooManyRequests("429"))
    assert policy(slept).once(fn) == "ok"
    assert fn.calls == 3 and len(slept) == 2


def test_a_missing_permission_names_the_permission_and_the_resource() -> None:
    key = "projects/demo/locations/us-east1/keyRings/ring/cryptoKeys/app"
    err = translate(
        gexc.PermissionDenied("Permission denied"), "update_crypto_key_version", f"{key}/cryptoKeyVersions/1"
    )
    assert isinstance(err, api.PermissionDenied)
    assert "cloudkms.cryptoKeyVersions.update" in err.message
    assert f"{key}/cryptoKeyVersions/1" in err.message
    err = translate(gexc.Forbidden("403 forbidden"), "rewrite_object", "gs://b/o")
    assert "storage.objects.create" in err.message and "gs://b/o" in err.message


@pytest.mark.parametrize(
    ("google", "ours"),
    [
        (gexc.NotFound("x"), api.NotFound),
        (gexc.PreconditionFailed("x"), api.PreconditionFailed),
        (gexc.FailedPrecondition("x"), api.FailedPrecondition),
        (gexc.TooManyRequests("x"), api.ResourceExhausted),
        (gexc.ServiceUnavailable("x"), api.Unavailable),
        (gexc.BadRequest("x"), api.InvalidArgument),
        (gexc.Conflict("x"), api.AlreadyExists),
    ],
)
def test_google_errors_become_rotator_api_errors(google: Exception, ours: type[api.ApiError]) -> None:
    with pytest.raises(ours), translated("get_object", "gs://b/o"):
        raise google
