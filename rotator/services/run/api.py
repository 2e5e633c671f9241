"""Cloud Run as rotator calls it: services read per region, redeployed under a key."""

from __future__ import annotations

from typing import Protocol

from rotator.model import RunService


class RunReads(Protocol):
    def list_services(self, region: str) -> list[RunService]:
        """The services of one region: Cloud Run lists per region, never all ("-")."""
        ...

    def get_service(self, name: str) -> RunService: ...

    def test_iam_permissions(self, resource: str, permissions: list[str]) -> list[str]:
        """The subset of `permissions` the caller holds on it (testIamPermissions)."""
        ...


class RunApi(RunReads, Protocol):
    def update_service(self, name: str, *, kms_key: str | None = ...) -> RunService:
        """Deploy a new revision, under `kms_key` if given (else the current key)."""
        ...
