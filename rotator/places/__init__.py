"""Where a plan and its apply state live: a local path, or Cloud Storage objects beside a
`gs://BUCKET/PATH.json` plan, so an apply started on one machine can be resumed on
another (docs/state.md).

A place holds four things: the plan, its journal, its audit record and the apply lock.
Locally they are files (PLAN.json, PLAN.json.journal, PLAN.json.audit.jsonl; the lock is
the backend's per-machine file lock). In a bucket they are objects:

    PLAN.json                        the plan
    PLAN.json.journal/00000001.jsonl journal events, one object per synced batch, each
                                     created with ifGenerationMatch=0: two writers can
                                     never both add the same batch
    PLAN.json.audit/<time>-<id>.json one audit record each
    PLAN.json.lock                   the apply lock: owner, host, pid, expiry; created with
                                     ifGenerationMatch=0, renewed by a running apply,
                                     taken over when expired or its process is gone
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rotator import apierrors as api
from rotator.errors import BadInput
from rotator.names import key_of
from rotator.places.gcs import GcsPlace
from rotator.places.kinds import JournalWriter, Place, is_gcs
from rotator.places.local import LocalPlace
from rotator.services.storage.spec import SPEC as STORAGE

if TYPE_CHECKING:
    from rotator.backends.base import Backend

__all__ = [
    "GcsPlace",
    "JournalWriter",
    "LocalPlace",
    "Place",
    "is_gcs",
    "keys_put_at_risk",
    "open_place",
    "refuse_state_under_plan_key",
    "use_backend",
]


def keys_put_at_risk(plan: dict[str, Any]) -> set[str]:
    """The keys a plan acts on and whose versions it disables or destroys."""
    keys = {str(plan["params"]["key"])}
    for step in plan.get("steps", []):
        for change in step.get("changes", []):
            if change.get("action") in ("disable", "destroy") and change.get("version"):
                keys.add(key_of(str(change["version"])))
    return keys


def refuse_state_under_plan_key(place: Place, plan: dict[str, Any]) -> None:
    """R14: a plan's state must not live in a bucket protected by the key the plan
    disables or destroys: the version would be disabled, then the journal write fail and
    status and rollback could no longer read the plan. Checked before anything changes."""
    if not isinstance(place, GcsPlace):
        return
    try:
        default = place.storage.get_bucket(place.bucket).default_kms_key
    except api.NotFound:
        raise BadInput(f"{place.name}: bucket {place.bucket} not found", resource=place.name) from None
    if not default:
        return
    default_key = key_of(default)
    if default_key in keys_put_at_risk(plan):
        raise BadInput(
            f"{place.name}: bucket gs://{place.bucket} is protected by {default_key} (its default "
            "key), the key this plan acts on: once its versions are disabled the plan, its journal "
            "and its lock there become unreadable; keep plans in a bucket no key you rotate "
            "protects (docs/state.md); nothing was changed",
            resource=f"gs://{place.bucket}",
            rule="R14",
        )


# -- opening a place -----------------------------------------------------------------------------
# The command line sets how a gs:// place reaches Cloud Storage: through the backend it
# uses (the real one, or the fake world's buckets), made only when a gs:// path needs it.
_backend: list[Callable[[], Backend]] = []


def use_backend(provider: Callable[[], Backend]) -> None:
    _backend[:] = [provider]


def open_place(path: str, backend: Callable[[], Backend] | None = None) -> Place:
    """A local path, or a gs:// URL (whose objects are reached through the backend's
    Cloud Storage)."""
    if not is_gcs(path):
        return LocalPlace(path)
    provider = backend or (_backend[0] if _backend else None)
    if provider is None:
        raise BadInput(f"{path}: a plan in Cloud Storage needs a backend", resource=path)
    return GcsPlace(path, STORAGE.api(provider()))
