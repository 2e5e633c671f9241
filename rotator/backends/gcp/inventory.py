"""Cloud KMS Inventory through google-cloud-kms-inventory (kms_inventory_v1): the
per-key summary, the search for the resources a key protects and the versions each
uses, and a project's keys. The service adapters ask it for the versions their own
APIs do not say (rotator/services/<name>/gcp.py)."""

from __future__ import annotations

from typing import Any

from rotator import apierrors as api
from rotator.backends.gcp.errors import translated
from rotator.backends.gcp.retry import RetryPolicy
from rotator.model import CryptoKey, ProtectedResource, ProtectedResourcesSummary


class GcpKeyInventory:
    """Cloud KMS Inventory: the per-key summary (no organization needed), the search
    (names and versions; only with ROTATOR_ORGANIZATION) and the key list of a project."""

    def __init__(self, tracking: Any, dashboard: Any, organization: str | None, retry: RetryPolicy):
        self.tracking, self.dashboard = tracking, dashboard
        self.retry = retry.for_calls_of("inventory")  # retries as each call's declaration says
        self.organization = organization
        self._cache: dict[str, list[ProtectedResource]] = {}

    def get_protected_resources_summary(self, key: str) -> ProtectedResourcesSummary:
        name = f"{key}/protectedResourcesSummary"
        with translated("get_protected_resources_summary", key):
            s = self.retry.request(
                "get_protected_resources_summary",
                self.tracking.get_protected_resources_summary,
                name=name,
                retry=None,
            )
        return ProtectedResourcesSummary(
            key=key,
            resource_count=int(s.resource_count),
            project_count=int(s.project_count),
            resource_types={k: int(v) for k, v in s.resource_types.items()},
            cloud_products={k: int(v) for k, v in s.cloud_products.items()},
        )

    def search_protected_resources(self, organization: str, key: str) -> list[ProtectedResource]:
        with translated("search_protected_resources", key):
            pager = self.retry.request(
                "search_protected_resources",
                self.tracking.search_protected_resources,
                request={"scope": f"organizations/{organization}", "crypto_key": key},
                retry=None,
            )
            return [
                ProtectedResource(
                    r.name,
                    r.resource_type,
                    tuple(r.crypto_key_versions) or ((r.crypto_key_version,) if r.crypto_key_version else ()),
                    r.project_id,
                )
                for r in pager
            ]

    def list_crypto_keys(self, project: str) -> list[CryptoKey]:
        from rotator.backends.gcp.kms import crypto_key

        with translated("list_crypto_keys", f"projects/{project}"):
            pager = self.retry.request(
                "list_crypto_keys",
                self.dashboard.list_crypto_keys,
                parent=f"projects/{project}",
                retry=None,
            )
            return [crypto_key(k) for k in pager]

    def listed_versions(self, key: str, resource: str) -> tuple[str, ...] | None:
        """Every version the search lists for `resource`, or None if it is not listed (or
        there is no organization to search)."""
        if not self.organization:
            return None
        if key not in self._cache:
            self._cache[key] = self.search_protected_resources(self.organization, key)
        found = [r.versions for r in self._cache[key] if r.name == resource]
        return tuple(found[0]) if found and found[0] else None

    def versions_of(self, key: str | None, resource: str) -> str | None:
        """The one version the search says protects `resource`, or None if unknown (no
        organization, or the search lists none or several)."""
        if not key or not self.organization:
            return None
        if key not in self._cache:
            try:
                self._cache[key] = self.search_protected_resources(self.organization, key)
            except api.ApiError:
                # Unknown, so any version (the safe side); the plan's inventory line says why.
                self._cache[key] = []
        found = [r.versions for r in self._cache[key] if r.name == resource]
        return found[0][0] if found and len(found[0]) == 1 else None
