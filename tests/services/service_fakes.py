"""What the fake service tests share (tests/services/): a services_world backend, and
the KMS moves (rotate, disable, enable, revoke) and Dataflow launches they make on it."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from worlds import (
    APP_KEY,
    ENCRYPTER_DECRYPTER,
    services_world,
)

from rotator import apierrors as api
from rotator.backends.fake import FakeBackend

NOT_ACCESSIBLE = "The customer-managed encryption key required by the requested resource is not accessible"
NOW = datetime(2026, 11, 22, tzinfo=timezone.utc)
NEW_REPOSITORY = "projects/demo/locations/us-east1/repositories/functions-app-2026"


def make(**overrides: Any) -> FakeBackend:
    return FakeBackend.from_dict(services_world(**overrides))


def revoke(backend: FakeBackend, key: str, *members: str) -> None:
    """Remove `members`' Encrypter/Decrypter role on `key` (through the KMS API)."""
    policy = backend.kms.get_iam_policy(key)
    policy.bindings[ENCRYPTER_DECRYPTER] = [
        m for m in policy.members(ENCRYPTER_DECRYPTER) if m not in members
    ]
    backend.kms.set_iam_policy(key, policy)


def rotate(backend: FakeBackend, key: str = APP_KEY) -> str:
    """A new version made primary (R2); returns its name."""
    new = backend.kms.create_crypto_key_version(key)
    backend.kms.update_crypto_key_primary_version(key, new.name)
    return new.name


def disable(backend: FakeBackend, version: str) -> None:
    backend.kms.update_crypto_key_version(version, "DISABLED")


def enable(backend: FakeBackend, version: str) -> None:
    backend.kms.update_crypto_key_version(version, "ENABLED")


def launch(backend: FakeBackend, job_id: str = "relaunch-1", key: str | None = APP_KEY, **kw: Any) -> Any:
    args: dict[str, Any] = {
        "name": "ingest-v2",
        "region": "us-east1",
        "type": "STREAMING",
        "streaming_engine": True,
        "kms_key": key,
    }
    args.update(kw)
    return backend.dataflow.launch_job(job_id, **args)


def states(backend: FakeBackend) -> dict[str, str]:
    return {j.id: j.state for j in backend.dataflow.list_jobs()}


def assert_rule(err: pytest.ExceptionInfo[api.ApiError], rule: str) -> None:
    """The error names `rule`: as its rule, or in its message (e.g. "... (R7)")."""
    e = err.value
    assert e.rule == rule or f"{rule})" in e.message, (rule, e.rule, e.message)
