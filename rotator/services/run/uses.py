"""Cloud Run's uses of a key: services deploying new revisions with it (R41), and the
revisions, serving or idle, under its versions (R43), in their propagation windows too."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from rotator.backends.base import ReadOnlyBackend
from rotator.locations import LocationTarget, key_region
from rotator.model import RunService
from rotator.names import is_version_of
from rotator.pins import pin_primary, versions_used
from rotator.scan import Scan, elsewhere
from rotator.services.run.spec import RUN_IDLE, RUN_KEY, RUN_SERVING
from rotator.services.run.spec import SPEC as RUN
from rotator.windows import pin_window

if TYPE_CHECKING:
    from rotator.inventory import KeyInventory


def run_services(backend: ReadOnlyBackend, key: str) -> list[RunService]:
    """The Cloud Run services that can use `key`: those of its region (R7). Cloud Run
    lists one region at a time; a multi-region or global key serves none."""
    region = key_region(key)
    return RUN.reads(backend).list_services(region) if region else []


def inspected_run_services(backend: ReadOnlyBackend, key: str, projects: Iterable[str]) -> list[RunService]:
    """The Cloud Run services of every inspected project (--project) that can use `key`."""
    out: list[RunService] = []
    for project in dict.fromkeys(projects or (backend.project,)):
        view = backend.for_project(project)
        out += [s for s in run_services(view, key) if not elsewhere(s.name, view)]
    return out


def location_targets(
    backend: ReadOnlyBackend, inventory: KeyInventory, params: Mapping[str, Any]
) -> list[LocationTarget]:
    """The services a move to a new key redeploys: each in its region, so the new key
    must be in that region too (R7; rotator/steps/preflight.py)."""
    key = inventory.key.name
    if "run" in inventory.uninspected:  # left out by --services
        return []
    return [
        (svc.name, svc.region, svc.region)
        for svc in run_services(backend, key)
        if any(r.kms_key == key or is_version_of(r.kms_key_version, key) for r in svc.revisions)
    ]


def scan(s: Scan) -> None:
    backend, key, uses, primary, windows = s.backend, s.key, s.uses, s.primary, s.windows
    for service in run_services(backend, key):
        if elsewhere(service.name, backend):
            continue
        latest = service.latest
        if latest is not None and latest.kms_key == key:
            pin_primary(uses, primary, RUN_KEY, service.name)
        for rev in service.revisions:
            kind = RUN_SERVING if rev.serving else RUN_IDLE  # a tag's URL serves too
            for use in versions_used(uses, key, rev.kms_key_version, rev.kms_key):
                use.group(kind, service.name).add(rev.name)
            pin_window(windows, uses, kind, rev.kms_key_version, rev.deployed, service.name, rev.name)
