"""What Cloud KMS Inventory says of a key, beside rotator's own listing: the products
rotator does not cover pin the versions they use, and so do resources in projects
rotator did not inspect; when it cannot be read, every version is assumed in use (R14).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from rotator import apierrors as api
from rotator.backends.base import ReadOnlyBackend
from rotator.model import ProtectedResource, ProtectedResourcesSummary
from rotator.pins import VersionUse, services_found, version_use
from rotator.services import COVERED_PRODUCTS, SERVICES
from rotator.services.core import INVENTORY_UNREADABLE, OTHER_PROJECT, UNCOVERED

ORGANIZATION_ENV = "ROTATOR_ORGANIZATION"

INVENTORY_API = "Cloud KMS Inventory API (kmsinventory.googleapis.com)"

SUMMARY_NEEDS = "cloudkms.cryptoKeys.get on the key (roles/cloudkms.viewer)"

SEARCH_NEEDS = (
    "cloudkms.protectedResources.search on the organization (roles/cloudkms.protectedResourcesViewer)"
)


@dataclass
class KmsInventoryView:
    """What Cloud KMS Inventory said of one key, and what rotator made of it."""

    key: str
    summary: ProtectedResourcesSummary | None = None
    resources: list[ProtectedResource] | None = None  # the search: only with an organization
    errors: list[str] = field(default_factory=list)  # one line per API that could not be read
    notes: list[str] = field(default_factory=list)  # where it and rotator's listing disagree
    uncovered: dict[str, int] = field(default_factory=dict)  # resource type -> count
    other_projects: list[str] = field(default_factory=list)  # projects rotator did not inspect
    projects: tuple[str, ...] = ()
    acknowledged: bool = False

    @property
    def readable(self) -> bool:
        return self.summary is not None or self.resources is not None

    def line(self) -> str:
        """One line for the plan and the inventory table."""
        if not self.readable:
            head = f"UNREADABLE: {'; '.join(self.errors)}"
            if self.acknowledged:
                return head + "; ACKNOWLEDGED by the operator: versions may be disabled and destroyed"
            return head + "; every version is assumed in use (R14)"
        total = len(self.resources) if self.resources is not None else self.summary.resource_count  # type: ignore[union-attr]
        source = (
            "summary and search"
            if self.resources is not None and self.summary
            else ("search" if self.resources is not None else "summary, no organization to search")
        )
        uncovered = sum(self.uncovered.values())
        text = f"{total} resource(s) listed ({source}), {uncovered} not covered by rotator"
        if self.uncovered:
            text += " (" + ", ".join(f"{t}: {n}" for t, n in sorted(self.uncovered.items())) + ")"
        if self.other_projects:
            text += f"; in projects not inspected: {', '.join(self.other_projects)}"
        return text

    def to_json(self) -> dict[str, Any]:
        return {
            "readable": self.readable,
            "summary": None
            if self.summary is None
            else {
                "resource_count": self.summary.resource_count,
                "project_count": self.summary.project_count,
                "resource_types": self.summary.resource_types,
                "cloud_products": self.summary.cloud_products,
            },
            "searched": self.resources is not None,
            "errors": self.errors,
            "notes": self.notes,
            "not_covered": self.uncovered,
            "projects_inspected": list(self.projects),
            "projects_not_inspected": self.other_projects,
            "acknowledged_unreadable": self.acknowledged,
        }


def _service_of(resource_type: str) -> str | None:
    """The service of rotator's five that lists a resource type (`PRODUCT/Type`), if any."""
    return COVERED_PRODUCTS.get(resource_type.split("/", 1)[0])


def _covered(resource_type: str) -> bool:
    return _service_of(resource_type) is not None


def _unreadable(api_name: str, needs: str, error: api.ApiError) -> str:
    why = {"PERMISSION_DENIED": "permission denied", "NOT_FOUND": "not found"}.get(
        error.code, f"{error.code} (unreachable)"
    )
    return f"{INVENTORY_API} {api_name}: {why}; it needs the API enabled and {needs}"


def read_kms_inventory(
    backend: ReadOnlyBackend,
    key: str,
    uses: dict[int, VersionUse],
    *,
    projects: tuple[str, ...],
    acknowledged: bool = False,
    found: set[str] | None = None,
    services: Iterable[str] = SERVICES,
) -> KmsInventoryView:
    """Read the per-key summary (always) and the search (with an organization). A
    resource of a product rotator does not cover pins the versions it lists (every
    version when its versions are not listed, as in the summary); resources in projects
    rotator did not inspect pin the same way; and when neither can be read, every
    version is assumed in use (R14) unless the operator acknowledged it. `found`: the
    inspected projects where rotator's listing found a use naming this key."""
    view = KmsInventoryView(key, projects=projects, acknowledged=acknowledged)
    try:
        view.summary = backend.inventory.get_protected_resources_summary(key)
    except api.ApiError as e:
        view.errors.append(_unreadable("GetProtectedResourcesSummary", SUMMARY_NEEDS, e))
    if backend.organization:
        try:
            view.resources = backend.inventory.search_protected_resources(backend.organization, key)
        except api.ApiError as e:
            view.errors.append(_unreadable("SearchProtectedResources", SEARCH_NEEDS, e))
    elif view.summary is None:
        view.errors.append(f"no organization to search ({ORGANIZATION_ENV} is not set)")
    every = list(uses.values())
    if not view.readable:
        if not acknowledged:
            for use in every:
                use.group(INVENTORY_UNREADABLE, INVENTORY_API).add(key)
        return view
    if view.resources is not None:
        _pin_from_search(view, key, uses, projects)
    else:
        _pin_from_summary(view, key, uses, projects, found if found is not None else set(projects[:1]))
    _compare_products(view, uses, projects, list(services))
    return view


def _pin_from_search(
    view: KmsInventoryView, key: str, uses: dict[int, VersionUse], projects: tuple[str, ...]
) -> None:
    assert view.resources is not None
    for r in view.resources:
        other_project = bool(r.project) and r.project not in projects
        if _covered(r.resource_type) and not other_project:
            continue  # rotator's own listing is the authority here
        targets = [u for v in r.versions if (u := version_use(uses, key, v)) is not None] or list(
            uses.values()
        )
        if not _covered(r.resource_type):
            view.uncovered[r.resource_type] = view.uncovered.get(r.resource_type, 0) + 1
            kind = UNCOVERED
        else:
            kind = OTHER_PROJECT
        if other_project and r.project not in view.other_projects:
            view.other_projects.append(r.project)
        for use in targets:
            g = use.group(kind, r.resource_type if kind == UNCOVERED else r.project)
            g.add(r.name)
            if other_project and not g.detail:
                g.detail = f"in project {r.project}, not inspected"


def _pin_from_summary(
    view: KmsInventoryView,
    key: str,
    uses: dict[int, VersionUse],
    projects: tuple[str, ...],
    found: set[str],
) -> None:
    """The summary names no resource and no version: each uncovered type pins them all."""
    s = view.summary
    assert s is not None
    for rtype, count in sorted(s.resource_types.items()):
        if _covered(rtype) or count <= 0:
            continue
        view.uncovered[rtype] = count
        for use in uses.values():
            g = use.group(UNCOVERED, rtype)
            g.count += count
            g.dateless = True
    # Where rotator's listing found a use naming the key, it knows every use; the
    # uncovered resources (pinned above) may account for one project each; the summary
    # counting more projects than those means uses in a project rotator did not inspect.
    explained = sum(view.uncovered.values())
    missing = s.project_count - len(found) - explained
    if missing > 0:
        view.other_projects.append(f"{missing} project(s) the summary counts")
        for use in uses.values():
            g = use.group(OTHER_PROJECT, f"{missing} other project(s)")
            g.count += sum(s.resource_types.values())
            g.dateless = True
            g.detail = (
                f"Cloud KMS Inventory counts resources in {s.project_count} project(s); rotator found "
                f"the key in use in {len(found)} of those it inspected ({', '.join(projects)})"
            )
            if explained:
                g.detail += f", and {explained} resource(s) of products it does not cover may be in others"


def _compare_products(
    view: KmsInventoryView,
    uses: dict[int, VersionUse],
    projects: tuple[str, ...],
    services: list[str],
) -> None:
    """Say where Cloud KMS Inventory and rotator's listing disagree on the five products.
    The listing is the authority for what it can see (the inventory is built from
    snapshots and can lag); but a resource the inventory counts that the listing cannot
    place may be in a project rotator did not inspect. With the search, its project is
    named (pinned by _pin_from_search when not inspected); with only the summary, nothing
    says, so it pins every version (the safe side) until its project is inspected or an
    organization lets the search place it."""
    found = services_found(uses)
    listed: dict[str, dict[str, int]] = {}  # service -> resource type -> count (inspected)
    elsewhere: dict[str, set[str]] = {}  # service -> projects not inspected (the search)
    if view.resources is not None:
        for r in view.resources:
            service = _service_of(r.resource_type)
            if service is None:
                continue
            if r.project and r.project not in projects:
                elsewhere.setdefault(service, set()).add(r.project)
            else:
                types = listed.setdefault(service, {})
                types[r.resource_type] = types.get(r.resource_type, 0) + 1
    elif view.summary is not None:
        for rtype, count in view.summary.resource_types.items():
            service = _service_of(rtype)
            if service is not None and count > 0:
                listed.setdefault(service, {})[rtype] = count
    inspected = ", ".join(projects)
    for service in SERVICES:
        if service in elsewhere:
            view.notes.append(
                f"Cloud KMS Inventory lists {service} resources on the key in project(s) rotator did "
                f"not inspect ({', '.join(sorted(elsewhere[service]))}): they pin the versions they "
                "use until that project is inspected too (--project)"
            )
        if service in found:
            if service not in listed and service not in elsewhere:
                view.notes.append(
                    f"rotator found {service} resources on the key that Cloud KMS Inventory does not "
                    "list yet (it can lag); rotator's listing is the authority"
                )
            continue
        if service not in listed:
            continue
        if service not in services:
            view.notes.append(
                f"Cloud KMS Inventory lists {service} resources on the key; rotator did not inspect "
                f"{service} (--services)"
            )
        elif view.resources is not None:
            view.notes.append(
                f"Cloud KMS Inventory lists {service} resources on the key in the inspected project(s) "
                f"({inspected}) that rotator's listing did not find; rotator's listing is the "
                "authority there (the inventory can lag)"
            )
        else:
            view.notes.append(
                f"Cloud KMS Inventory lists {service} resources on the key that rotator's listing did "
                f"not find in the inspected project(s) ({inspected}): rotator's listing is the "
                "authority there (the inventory can lag), but the summary does not say which project "
                "they are in and they may be in one rotator did not inspect, so every version stays "
                f"pinned (inspect it with --project, or set {ORGANIZATION_ENV} to search)"
            )
            for rtype, count in sorted(listed[service].items()):
                for use in uses.values():
                    g = use.group(OTHER_PROJECT, rtype)
                    g.count += count
                    g.dateless = True
                    g.detail = (
                        f"Cloud KMS Inventory counts {count} on the key; rotator's listing found none in "
                        f"the inspected project(s) ({inspected}): it may be in a project rotator did "
                        "not inspect"
                    )
