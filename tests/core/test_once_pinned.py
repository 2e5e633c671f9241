"""Which calls each backend sends without blind repeats, pinned as they were before their
declarations moved into one place (issue 15, items 3 and 4): a call that could make two
of something (a version, revision, database, job) is retried only when the service
refused it, on the fake (its faults) and on the gcp backend (its RetryPolicy) alike.
Observed by behaviour, not read from the declarations, so a change to the declarations
that changes what is repeated fails here.

Backends: fake; gcp (its retry policy, in process)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any
from unittest import mock

import pytest

from rotator import apierrors as api
from rotator.backends.fake import faults
from rotator.backends.gcp import retry as gcp_retry
from rotator.retry import RetryPolicy

# (API, method[, what the call carries]) sent once: retried only when refused.
BOTH_ONCE = {
    ("kms", "create_crypto_key_version"),
    ("firestore", "restore_database"),
    ("dataflow", "snapshot_job"),
    ("run", "update_service"),
    ("functions", "redeploy_function"),
    ("functions", "create_repository"),
    ("batch", "create_job"),
    ("storage", "rewrite_object", "no precondition"),
}
# Where the backends differed: the fake streams a manifest's rows inside the call, the
# gcp adapter sends a delete once.
FAKE_ONCE = BOTH_ONCE | {("batch", "write_manifest")}
GCP_ONCE = BOTH_ONCE | {("storage", "delete_object"), ("storage", "delete_object", "no precondition")}


_NAME = "projects/p/locations/l/keyRings/r/cryptoKeys/k"


def _arguments(fn: Callable[..., Any], precondition: bool) -> dict[str, Any]:
    """Plausible arguments for any API method: its parameters by name."""
    values: dict[str, Any] = {}
    for name, p in inspect.signature(fn).parameters.items():
        if name == "self":
            continue
        if name == "if_generation_match":
            values[name] = 7 if precondition else None
        elif name in ("permissions",):
            values[name] = ["x.y.z"]
        elif name == "rows":
            values[name] = iter([("b", "o", 1)])
        elif name == "since":
            from datetime import datetime, timezone

            values[name] = datetime(2026, 1, 1, tzinfo=timezone.utc)
        elif name == "version":
            values[name] = f"{_NAME}/cryptoKeyVersions/1"
        elif name == "state":
            values[name] = "ENABLED"
        elif name == "data":
            values[name] = b"{}"
        elif name == "policy":
            from rotator.model import IamPolicy

            values[name] = IamPolicy(bindings={}, etag="")
        elif name in ("versions", "soft_deleted", "use_backup_encryption"):
            values[name] = False
        elif name in ("page_size",):
            values[name] = 10
        elif p.default is not inspect.Parameter.empty and name not in ("kms_key",):
            continue
        else:
            values[name] = _NAME
    return values


def _cases() -> list[tuple[str, str, bool]]:
    cases = []
    for service, protocol in faults.APIS.items():
        for method in sorted(faults.api_methods(protocol)):
            cases.append((service, method, True))
            if "if_generation_match" in inspect.signature(getattr(protocol, method)).parameters:
                cases.append((service, method, False))
    return cases


def _key(service: str, method: str, precondition: bool) -> tuple[str, ...]:
    return (service, method) if precondition else (service, method, "no precondition")


class _Inner:
    """Every call of the fake's service fails with UNAVAILABLE, and counts."""

    def __init__(self, protocol: type) -> None:
        self.calls = 0
        self.project = "p"
        for name in faults.api_methods(protocol):
            original = getattr(protocol, name)

            def failing(*_args: Any, **_kwargs: Any) -> Any:
                self.calls += 1
                raise api.Unavailable("down", resource="r")

            signature = inspect.signature(original)
            failing.__signature__ = signature.replace(  # type: ignore[attr-defined]
                parameters=list(signature.parameters.values())[1:]
            )
            setattr(self, name, failing)
        self.job_name = lambda job_id: f"projects/p/locations/global/jobs/{job_id}"


def test_the_fake_sends_once_exactly_the_calls_it_sent_once_before() -> None:
    once = set()
    for service, method, precondition in _cases():
        inner = _Inner(faults.APIS[service])
        policy = RetryPolicy(initial=0, maximum=0, attempts=3, sleep=lambda _s: None)
        wrapped = faults.FaultyApi(service, inner, faults.FaultInjector(faults.FaultSpec()), policy)
        fn = getattr(wrapped, method)
        with pytest.raises(api.Unavailable):
            fn(**_arguments(getattr(faults.APIS[service], method), precondition))
        assert inner.calls in (1, 3), (service, method)
        if inner.calls == 1:
            once.add(_key(service, method, precondition))
    assert once == FAKE_ONCE


def _gcp_adapters() -> dict[str, type]:
    from rotator.backends.gcp.batch import GcpStorageBatch
    from rotator.backends.gcp.inventory import GcpKeyInventory
    from rotator.backends.gcp.kms import GcpKms
    from rotator.backends.gcp.logs import GcpLogs
    from rotator.services import part

    found: dict[str, type] = {
        "kms": GcpKms,
        "batch": GcpStorageBatch,
        "inventory": GcpKeyInventory,
        "logs": GcpLogs,
    }
    for service in ("storage", "firestore", "dataflow", "run", "functions"):
        module = part(service, "gcp")
        found[service] = next(
            v
            for v in vars(module).values()
            if isinstance(v, type) and v.__module__ == module.__name__ and v.__name__.startswith("Gcp")
        )
    return found


class _Recording(gcp_retry.RetryPolicy):
    """The gcp policy, telling which calls it would retry only when refused (`once`)."""

    def __init__(self) -> None:
        super().__init__(initial=0, maximum=0, attempts=1, sleep=lambda _s: None)
        self.once_used = 0
        self.calls_used = 0

    def _retrying(self, predicate: Callable[[BaseException], bool]) -> Any:
        if self.once_used + self.calls_used > 20:  # a MagicMock's pages never end
            raise RuntimeError("enough pages")
        if predicate == self.rejected:
            self.once_used += 1
        else:
            self.calls_used += 1
        return super()._retrying(predicate)


def test_the_gcp_backend_sends_once_exactly_the_calls_it_sent_once_before() -> None:
    once, silent = set(), []
    for service, adapter in _gcp_adapters().items():
        for method, precondition in [(m, p) for s, m, p in _cases() if s == service]:
            policy = _Recording()
            kwargs = {}
            for name in list(inspect.signature(adapter).parameters)[:]:
                if name == "retry":
                    kwargs[name] = policy
                elif name == "project":
                    kwargs[name] = "p"
                elif name == "organization":
                    kwargs[name] = "organizations/1"
                else:
                    kwargs[name] = mock.MagicMock()
            instance = adapter(**kwargs)
            if isinstance(getattr(instance, "_regions", None), dict):  # Dataflow: where each job runs
                instance._regions = {_NAME: "us-central1"}
            fn = getattr(instance, method)
            try:
                fn(**_arguments(fn, precondition))
            except Exception:  # a MagicMock's answer is not always a resource: what was sent counts
                pass
            if not (policy.once_used or policy.calls_used):
                silent.append((service, method))
            if policy.once_used:
                once.add(_key(service, method, precondition))
    # Answered by asking another API (Cloud KMS Inventory's search).
    assert silent == [("functions", "repository_image_versions")]
    assert once == GCP_ONCE
