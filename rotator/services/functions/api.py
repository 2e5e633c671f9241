"""Cloud Run functions and the Artifact Registry repositories their images live in,
as rotator calls them (FunctionsReads for planning, FunctionsApi for apply)."""

from __future__ import annotations

from typing import Protocol

from rotator.model import CloudFunction


class FunctionsReads(Protocol):
    def list_functions(self) -> list[CloudFunction]: ...

    def get_function(self, name: str) -> CloudFunction: ...

    def get_repository_key(self, repository: str) -> str | None: ...

    def list_repositories(self, region: str) -> list[tuple[str, str | None]]:
        """(name, key) of one region's Artifact Registry repositories."""
        ...

    def repository_image_versions(self, repository: str, key: str) -> tuple[str, ...] | None:
        """The versions of `key` the repository's images are encrypted under, or None
        when nothing says (Artifact Registry records no version: then any may be)."""
        ...

    def test_iam_permissions(self, resource: str, permissions: list[str]) -> list[str]:
        """The subset of `permissions` the caller holds on it (testIamPermissions)."""
        ...


class FunctionsApi(FunctionsReads, Protocol):
    def redeploy_function(
        self, name: str, *, kms_key: str | None = ..., docker_repository: str | None = ...
    ) -> CloudFunction: ...

    def create_repository(self, repository: str, *, kms_key: str | None) -> None: ...
