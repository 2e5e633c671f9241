"""Fake Cloud Run functions (R42) with the Artifact Registry repositories they need:
a function always uses its key's primary version; a CMEK function needs a repository
protected by the same key; moving it means redeploying its source."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

from rotator import apierrors as api
from rotator.agents import agents
from rotator.backends.fake.documents import (
    check_key_name,
    check_region,
    encrypt_version,
    find,
    load_docs,
    save_docs,
)
from rotator.backends.fake.events import logs_key_failures
from rotator.backends.fake.inventory import project_of, versions_of
from rotator.backends.fake.kms import FakeKms
from rotator.backends.fake.shared import FakeWorld
from rotator.backends.fake.store import Store
from rotator.model import CloudFunction, Listing, ProtectedResource
from rotator.names import is_version_of, location_of
from rotator.services.functions.spec import SPEC
from rotator.timeutil import format_time, parse_time

_UNSET: Any = object()


class FakeFunctions:
    def __init__(self, store: Store, kms: FakeKms, project_number: str):
        self.store, self.kms = store, kms
        # Locations an all-locations list cannot reach (tests; see FakeBackend.unreachable).
        self.unreachable: set[str] = set()
        # A deploy needs all five agents on the key, as the CMEK page asks (R5, R42).
        self.agents = agents(SPEC.name, project_number)

    @staticmethod
    def _to_function(d: dict[str, Any]) -> CloudFunction:
        return CloudFunction(
            d["function"],
            d.get("kms_key"),
            d.get("kms_key_version"),
            d.get("docker_repository"),
            deployed=parse_time(d["deployed"]) if d.get("deployed") else None,
        )

    def list_functions(self) -> list[CloudFunction]:
        """Every location's functions ("-"), as a partial list when some location is in
        `unreachable` (ListFunctionsResponse.unreachable)."""
        with self.store.read() as c:
            found = [self._to_function(d) for d in load_docs(c, "functions")]
        return Listing([f for f in found if f.region not in self.unreachable], unreachable=self.unreachable)

    def protected_resources(self, key: str, home: str) -> Iterator[ProtectedResource]:
        """What Cloud KMS Inventory says its functions and their image repositories hold
        of `key` (the fake's inventory, rotator/backends/fake/inventory.py), each under
        its project (`home` if its name does not say)."""
        for f in self.list_functions():
            versions = versions_of(key, [f.kms_key_version])
            if versions or f.kms_key == key:
                name = f"//cloudfunctions.googleapis.com/{f.name}"
                yield ProtectedResource(
                    name, "cloudfunctions.googleapis.com/CloudFunction", versions, project_of(name, home)
                )
        with self.store.read() as c:
            repositories = load_docs(c, "artifact_registry")
        for r in repositories:
            if r.get("kms_key") == key:
                name = f"//artifactregistry.googleapis.com/{r['repository']}"
                yield ProtectedResource(
                    name,
                    "artifactregistry.googleapis.com/Repository",
                    versions_of(key, r.get("image_versions", [])),
                    project_of(name, home),
                )

    def resource_names(self, c: sqlite3.Connection) -> list[str]:
        """The names of its resources as the world keeps them, each under its project
        (FakeBackend.projects: the projects the wire servers answer for)."""
        return [d["function"] for d in load_docs(c, "functions")]

    def get_function(self, name: str) -> CloudFunction:
        with self.store.read() as c:
            return self._to_function(find(load_docs(c, "functions"), "function", name, "function"))

    def test_iam_permissions(self, resource: str, permissions: list[str]) -> list[str]:
        """Every permission (ROTATOR_FAKE_FAULTS deny=FUNCTION takes the changes away)."""
        self.get_function(resource)
        return list(permissions)

    # -- Artifact Registry ---------------------------------------------------------------
    def get_repository_key(self, repository: str) -> str | None:
        with self.store.read() as c:
            return find(load_docs(c, "artifact_registry"), "repository", repository, "repository").get(
                "kms_key"
            )

    def list_repositories(self, region: str) -> list[tuple[str, str | None]]:
        with self.store.read() as c:
            return [
                (r["repository"], r.get("kms_key"))
                for r in load_docs(c, "artifact_registry")
                if location_of(r["repository"]) == region
            ]

    def repository_image_versions(self, repository: str, key: str) -> tuple[str, ...] | None:
        """Every version an image was pushed under: each deploy into the repository adds
        the primary of the time; old images stay until deleted."""
        with self.store.read() as c:
            repo = find(load_docs(c, "artifact_registry"), "repository", repository, "repository")
        return tuple(v for v in repo.get("image_versions", []) if is_version_of(v, key))

    def create_repository(self, repository: str, *, kms_key: str | None) -> None:
        with self.store.write() as c:
            repos = load_docs(c, "artifact_registry")
            if any(r["repository"] == repository for r in repos):
                raise api.AlreadyExists(f"repository {repository} exists", resource=repository)
            if kms_key:
                kms_key = check_key_name(kms_key, service="Artifact Registry")
                check_region(
                    kms_key, location_of(repository), service="Artifact Registry", resource=repository
                )
                encrypt_version(c, self.kms, kms_key, self.agents[1:2], service="Artifact Registry")
            repos.append({"repository": repository, "kms_key": kms_key})
            save_docs(c, "artifact_registry", repos)

    # -- functions -----------------------------------------------------------------------
    def redeploy_function(
        self, name: str, *, kms_key: str | None = _UNSET, docker_repository: str | None = _UNSET
    ) -> CloudFunction:
        """Redeploy the source: the function is re-encrypted under the key's primary (R42)."""
        with self.store.write() as c:
            docs = load_docs(c, "functions")
            d = find(docs, "function", name, "function")
            key = d.get("kms_key") if kms_key is _UNSET else kms_key
            repo = d.get("docker_repository") if docker_repository is _UNSET else docker_repository
            version = None
            if key:
                key = check_key_name(key, service="Cloud Run functions")
                check_region(key, location_of(name), service="Cloud Run functions", resource=name)
                repo_key = None
                if repo:
                    repo_key = find(load_docs(c, "artifact_registry"), "repository", repo, "repository").get(
                        "kms_key"
                    )
                if repo_key != key:
                    raise api.FailedPrecondition(
                        f"{name}: a CMEK function needs an Artifact Registry repository protected "
                        f"by the same key ({key}); {repo} is under {repo_key} (R42)",
                        resource=name,
                        rule="R42",
                    )
                version = encrypt_version(c, self.kms, key, self.agents, service="Cloud Run functions")
            d.update(
                kms_key=key,
                kms_key_version=version,
                docker_repository=repo,
                deployed=format_time(self.store.now()),  # Function.update_time
            )
            save_docs(c, "functions", docs)
            if repo and version:  # the new image is pushed under the primary of now (R42)
                repos = load_docs(c, "artifact_registry")
                pushed = find(repos, "repository", repo, "repository").setdefault("image_versions", [])
                if version not in pushed:
                    pushed.append(version)
                save_docs(c, "artifact_registry", repos)
            return self._to_function(d)

    @logs_key_failures("Cloud Run functions")
    def invoke(self, name: str) -> None:
        """A new instance needs the version it was deployed under (R41, R42)."""
        with self.store.read() as c:
            d = find(load_docs(c, "functions"), "function", name, "function")
            if d.get("kms_key_version"):
                try:
                    self.kms.check_usable(
                        c,
                        d["kms_key_version"],
                        self.agents[0],
                        service="Cloud Run functions",
                        purpose=f"start {name}",
                    )
                except api.ApiError as e:
                    raise api.FailedPrecondition(
                        f"{name}: {e.message} (R41)", resource=name, rule="R41"
                    ) from None


def connect(backend: FakeWorld) -> FakeFunctions:
    """This service's fake in `backend`'s world (rotator/backends/fake/__init__.py)."""
    fake = FakeFunctions(backend.store, backend.kms, backend.project_number)
    fake.unreachable = backend.unreachable  # one set for every all-locations list (tests)
    return fake
