"""Fake Cloud KMS Inventory (kmsinventory.googleapis.com), answering as Google's does:

* the per-key summary (KeyTrackingService.GetProtectedResourcesSummary) always: how many
  resources in how many projects, by resource type and product, of every product,
  including the world file's `other_resources` (BigQuery tables and the like, which
  rotator does not manage);
* the search (SearchProtectedResources: names and versions) only for an organization
  scope (`organizations/ORG`), as Google requires;
* the key list of a project (KeyDashboardService.ListCryptoKeys).

The fake's five services live in the world's project; a resource named under another
project (`projects/OTHER/...`, in `other_resources` or a Cloud Run service, function or
database of another project) counts in that project.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from types import SimpleNamespace
from typing import Any

from rotator import apierrors as api
from rotator.backends.fake.documents import load_docs
from rotator.backends.fake.store import Store
from rotator.model import CryptoKey, ProtectedResource, ProtectedResourcesSummary
from rotator.names import is_version, key_of, version_id, version_name, versions_prefix
from rotator.services import REGISTRY

OTHER_RESOURCES = "other_resources"


def project_of(name: str, default: str) -> str:
    """`//bigquery.googleapis.com/projects/P/datasets/...` or `projects/P/...` -> P."""
    parts = name.lstrip("/").split("/")
    for i, part in enumerate(parts[:-1]):
        if part == "projects" and parts[i + 1] != "_":
            return parts[i + 1]
    return default


class FakeInventory:
    def __init__(self, store: Store, backend: Any):
        # The services as they are inside the cloud, taken before any fault layer wraps
        # the backend: Cloud KMS Inventory's own reads are not rotator's calls.
        self.store = store
        self.backend = SimpleNamespace(
            project=backend.project,
            kms=backend.kms,
            **{service.name: getattr(backend, service.name) for service in REGISTRY},
        )

    # -- KeyTrackingService -------------------------------------------------------------
    def get_protected_resources_summary(self, key: str) -> ProtectedResourcesSummary:
        self.backend.kms.get_crypto_key(key)  # NOT_FOUND as the API would
        found = self.protected(key)
        return ProtectedResourcesSummary(
            key=key,
            resource_count=len(found),
            project_count=len({r.project for r in found}),
            resource_types=dict(Counter(r.resource_type for r in found)),
            cloud_products=dict(Counter(r.product.split(".", 1)[0] for r in found)),
        )

    def search_protected_resources(self, organization: str, key: str) -> list[ProtectedResource]:
        if not organization:
            raise api.InvalidArgument(
                "SearchProtectedResources needs an organization scope (organizations/ORG)", resource=key
            )
        key_name = key_of(key)
        self.backend.kms.get_crypto_key(key_name)
        found = self.protected(key_name)
        if is_version(key):
            found = [r for r in found if key in r.versions]
        return found

    # -- KeyDashboardService ------------------------------------------------------------
    def list_crypto_keys(self, project: str) -> list[CryptoKey]:
        """Every key of `project`, across locations and key rings."""
        prefix = f"projects/{project}/"
        with self.store.read() as c:
            names = [
                r[0]
                for r in c.execute(
                    "SELECT name FROM keys WHERE name LIKE ? ORDER BY name",
                    (prefix.replace("_", r"\_") + "%",),
                ).fetchall()
                if r[0].startswith(prefix)
            ]
        return [self.backend.kms.get_crypto_key(n) for n in names]

    # -- what the key protects ----------------------------------------------------------
    def protected(self, key: str) -> list[ProtectedResource]:
        """Every resource whose key, or a version it holds, is `key`."""
        return list(self._protected(key))

    def _protected(self, key: str) -> Iterator[ProtectedResource]:
        b = self.backend
        home = b.project
        under = versions_prefix(key)

        def mine(versions: Iterable[str | None]) -> tuple[str, ...]:
            return tuple(sorted({v for v in versions if v and v.startswith(under)}, key=version_id))

        under_key = self._versions_by_bucket(under)
        for bucket in b.storage.list_buckets():
            versions = mine(under_key.get(bucket.name, ()))
            if versions or bucket.default_kms_key == key:
                yield ProtectedResource(
                    f"//storage.googleapis.com/projects/_/buckets/{bucket.name}",
                    "storage.googleapis.com/Bucket",
                    versions,
                    home,
                )
        for d in b.firestore.list_databases():
            versions = mine(d.active_key_versions)
            if versions or d.kms_key == key:
                name = f"//firestore.googleapis.com/{d.name}"
                yield ProtectedResource(
                    name, "firestore.googleapis.com/Database", versions, project_of(name, home)
                )
        for bk in b.firestore.list_backups():
            versions = mine([bk.kms_key_version])
            if versions:
                name = f"//firestore.googleapis.com/{bk.name}"
                yield ProtectedResource(
                    name, "firestore.googleapis.com/Backup", versions, project_of(name, home)
                )
        for j in b.dataflow.list_jobs():
            versions = mine([j.kms_key_version])
            if versions or j.kms_key == key:
                yield ProtectedResource(
                    f"//dataflow.googleapis.com/projects/{home}/locations/{j.region}/jobs/{j.id}",
                    "dataflow.googleapis.com/Job",
                    versions,
                    home,
                )
        for s in b.run.all_services():
            revisions = [r for r in s.revisions if r.kms_key == key or mine([r.kms_key_version])]
            if revisions:
                name = f"//run.googleapis.com/{s.name}"
                yield ProtectedResource(
                    name,
                    "run.googleapis.com/Service",
                    mine(r.kms_key_version for r in revisions),
                    project_of(name, home),
                )
                for r in revisions:
                    yield ProtectedResource(
                        f"{name}/revisions/{r.name}",
                        "run.googleapis.com/Revision",
                        mine([r.kms_key_version]),
                        project_of(name, home),
                    )
        for f in b.functions.list_functions():
            versions = mine([f.kms_key_version])
            if versions or f.kms_key == key:
                name = f"//cloudfunctions.googleapis.com/{f.name}"
                yield ProtectedResource(
                    name, "cloudfunctions.googleapis.com/CloudFunction", versions, project_of(name, home)
                )
        with self.store.read() as c:
            others = load_docs(c, OTHER_RESOURCES)
            repositories = load_docs(c, "artifact_registry")
        for r in repositories:
            if r.get("kms_key") == key:
                name = f"//artifactregistry.googleapis.com/{r['repository']}"
                yield ProtectedResource(
                    name,
                    "artifactregistry.googleapis.com/Repository",
                    mine(r.get("image_versions", [])),
                    project_of(name, home),
                )
        for o in others:
            if o["key"] != key:
                continue
            versions = tuple(version_name(key, n) for n in o.get("versions", []))
            yield ProtectedResource(
                o["name"], o["type"], versions, o.get("project") or project_of(o["name"], home)
            )

    def _versions_by_bucket(self, under: str) -> dict[str, list[str]]:
        """bucket -> the versions under `under` its generations (live, noncurrent,
        soft-deleted) are encrypted with: one query, not a listing per key."""
        out: dict[str, list[str]] = {}
        with self.store.read() as c:
            rows = c.execute(
                "SELECT DISTINCT bucket, kms_key_version FROM objects "
                "WHERE kms_key_version >= ? AND kms_key_version < ?",
                (under, under + "\uffff"),
            ).fetchall()
        for bucket, version in rows:
            out.setdefault(bucket, []).append(version)
        return out
