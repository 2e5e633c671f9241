"""Cloud Run functions' uses of a key: functions deployed with it or under its versions
(R42, in their propagation windows too: R43), and the Artifact Registry repositories
their images live in (R42)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from rotator.backends.base import ReadOnlyBackend
from rotator.locations import LocationTarget, key_region
from rotator.names import is_version_of
from rotator.pins import VersionUse, pin_primary, pin_unlisted, version_use, versions_used
from rotator.scan import Scan, elsewhere
from rotator.services.functions.spec import FUNCTION, FUNCTION_KEY, REPOSITORY_IMAGES, REPOSITORY_KEY
from rotator.services.functions.spec import SPEC as FUNCTIONS
from rotator.windows import pin_window

if TYPE_CHECKING:
    from rotator.inventory import KeyInventory


def location_targets(
    backend: ReadOnlyBackend, inventory: KeyInventory, params: Mapping[str, Any]
) -> list[LocationTarget]:
    """The functions a move to a new key redeploys: each in its region, so the new key
    must be in that region too (R7; rotator/steps/preflight.py)."""
    key = inventory.key.name
    if "functions" in inventory.uninspected:  # left out by --services
        return []
    return [
        (fn.name, fn.region, fn.region)
        for fn in FUNCTIONS.reads(backend).list_functions()
        if fn.kms_key == key or is_version_of(fn.kms_key_version, key)
    ]


def scan(s: Scan) -> None:
    backend, key, uses, primary, windows = s.backend, s.key, s.uses, s.primary, s.windows
    repositories: set[str] = set()
    functions = FUNCTIONS.reads(backend).list_functions()
    pin_unlisted(uses, FUNCTIONS.title, functions)
    for fn in functions:
        if elsewhere(fn.name, backend):
            continue
        if fn.kms_key == key:
            pin_primary(uses, primary, FUNCTION_KEY, fn.name)
        if fn.docker_repository:
            repositories.add(fn.docker_repository)
        for use in versions_used(uses, key, fn.kms_key_version, fn.kms_key):
            use.group(FUNCTION, fn.name).add(fn.name)
        pin_window(windows, uses, FUNCTION, fn.kms_key_version, fn.deployed, fn.name, fn.name)
    for repo in sorted(repositories):
        if FUNCTIONS.reads(backend).get_repository_key(repo) == key:
            pin_primary(uses, primary, REPOSITORY_KEY, repo)
    _scan_repository_images(backend, key, uses)


def _scan_repository_images(backend: ReadOnlyBackend, key: str, uses: dict[int, VersionUse]) -> None:
    """Every Artifact Registry repository under the key (of its region, R7) holds images
    pushed under each version that was primary meanwhile; unknown versions: all of them."""
    region = key_region(key)
    for repo, repo_key in FUNCTIONS.reads(backend).list_repositories(region) if region else []:
        if repo_key != key:
            continue
        versions = FUNCTIONS.reads(backend).repository_image_versions(repo, key)
        held = (
            list(uses.values())
            if versions is None
            else [u for v in versions if (u := version_use(uses, key, v)) is not None]
        )
        for use in held:
            use.group(REPOSITORY_IMAGES, repo).add(repo)
