"""Fake Cloud KMS Inventory (kmsinventory.googleapis.com), answering as Google's does:

* the per-key summary (KeyTrackingService.GetProtectedResourcesSummary) always: how many
  resources in how many projects, by resource type and product, of every product,
  including the world file's `other_resources` (BigQuery tables and the like, which
  rotator does not manage);
* the search (SearchProtectedResources: names and versions) only for an organization
  scope (`organizations/ORG`), as Google requires;
* the key list of a project (KeyDashboardService.ListCryptoKeys).

Each service's fake says what it protects (`protected_resources`, in its package).
The fake's services live in the world's project; a resource named under another
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

OTHER_RESOURCES = "other_resources"


def versions_of(key: str, versions: Iterable[str | None]) -> tuple[str, ...]:
    """The versions of `key` among `versions` (names, or None where unknown), each once,
    in version order: what a protected resource lists."""
    under = versions_prefix(key)
    return tuple(sorted({v for v in versions if v and v.startswith(under)}, key=version_id))


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
        self.backend = SimpleNamespace(project=backend.project, kms=backend.kms)
        self.fakes = list(backend.fakes().values())

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
        home = self.backend.project
        # Each service's resources, from its fake (rotator/services/<name>/fake.py), in
        # registry order; a fake without `protected_resources` has none to report.
        for fake in self.fakes:
            if hasattr(fake, "protected_resources"):
                yield from fake.protected_resources(key, home)
        with self.store.read() as c:
            others = load_docs(c, OTHER_RESOURCES)
        for o in others:
            if o["key"] != key:
                continue
            versions = tuple(version_name(key, n) for n in o.get("versions", []))
            yield ProtectedResource(
                o["name"], o["type"], versions, o.get("project") or project_of(o["name"], home)
            )
