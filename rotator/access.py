"""The plan-time preflight (issue 12): before any change, every service agent the plan
relies on holds Encrypter/Decrypter on the key it will use (R5), and the caller holds
the permission of every change, asked of the APIs that can say (testIamPermissions:
Cloud KMS keys, Cloud Storage buckets, Cloud Run services, functions). Anything
missing is refused (exit 3) naming the member, the role or permission and the
resource, and nothing is changed: a plan never writes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from rotator.agents import agents
from rotator.changes import Change
from rotator.errors import Refused
from rotator.model import ENCRYPTER_DECRYPTER
from rotator.names import key_of
from rotator.services import REGISTRY
from rotator.sidebyside import side_by_side

if TYPE_CHECKING:
    from rotator.steps import PlannedStep
    from rotator.steps.base import PlanContext

# Changes a service carries out with the key (so its agent must hold the role on it),
# as opposed to changes of the key itself (disable, destroy, restore): each service's
# (its spec's key_changes), and two of the key's own.
_SERVICE_USE = {
    Change.CREATE_VERSION,  # Firestore re-encrypts to it; new writes use it (R2, R21)
    Change.GRANT,
    *(action for service in REGISTRY for action in service.key_changes),
}
# testIamPermissions questions in flight at a time (one per resource).
PERMISSION_CHECKS_AT_ONCE = 8
# action -> (the API asked, the change's field naming the resource, the permissions).
_CALLER_NEEDS = {
    action: (service.name, field, list(permissions))
    for service in REGISTRY
    for action, (field, permissions) in service.change_permissions.items()
}


def caller_permissions(change: dict[str, Any]) -> tuple[str, str, list[str]] | None:
    """(api, resource, permissions) a change needs, for the APIs with testIamPermissions."""
    a = change["action"]
    kms = {
        Change.CREATE_VERSION: ["cloudkms.cryptoKeyVersions.create"],
        Change.SET_PRIMARY: ["cloudkms.cryptoKeys.update"],
        Change.DISABLE: ["cloudkms.cryptoKeyVersions.update"],
        Change.ENABLE: ["cloudkms.cryptoKeyVersions.update"],
        Change.DESTROY: ["cloudkms.cryptoKeyVersions.destroy"],
        Change.RESTORE: ["cloudkms.cryptoKeyVersions.restore"],
        Change.GRANT: ["cloudkms.cryptoKeys.getIamPolicy", "cloudkms.cryptoKeys.setIamPolicy"],
    }.get(a)
    if kms is not None:
        return "kms", change.get("key") or key_of(change["version"]), kms
    if a in _CALLER_NEEDS:
        api, field, permissions = _CALLER_NEEDS[a]
        return api, change[field], permissions
    return None


def _agents_needed(ctx: PlanContext, steps: Iterable[PlannedStep]) -> dict[str, list[tuple[str, str]]]:
    """key -> (service, agent) that must hold Encrypter/Decrypter on it. The key the
    playbook acts on: every service that uses it. A replacement key: none here, since
    the plan's own grant step gives them the role (R5), which the caller must be allowed."""
    changes = [c for s in steps for c in s.changes]
    if not any(c["action"] in _SERVICE_USE for c in changes):
        return {}
    key = ctx.params["key"]
    n = ctx.backend.project_number
    needed: dict[str, str] = {}  # member -> the first service that needs it (one check each)
    for service in ctx.inventory(key).services_using():
        for member in agents(service, n):
            needed.setdefault(member, service)
    return {key: [(s, m) for m, s in needed.items()]}


def check_access(ctx: PlanContext, steps: list[PlannedStep]) -> dict[str, Any]:
    """Raise Refused for anything missing; else what was checked (for the plan)."""
    missing: list[str] = []
    agents_checked = 0
    for key, needed in _agents_needed(ctx, steps).items():
        holders = set(ctx.backend.kms.get_iam_policy(key).members(ENCRYPTER_DECRYPTER))
        agents_checked += len(needed)
        for service, member in needed:
            if member not in holders:
                missing.append(f"{member} ({service} agent) lacks {ENCRYPTER_DECRYPTER} on {key} (R5)")
    wanted: dict[tuple[str, str], dict[str, str]] = {}  # (api, resource) -> permission -> step
    for step in steps:
        for change in step.changes:
            need = caller_permissions(change)
            if need is not None:
                api, resource, permissions = need
                for p in permissions:
                    wanted.setdefault((api, resource), {}).setdefault(p, step.id)
    identity = getattr(ctx.backend, "identity", lambda: "the caller")()
    asked = sorted(wanted.items())

    def held(asking: tuple[tuple[str, str], dict[str, str]]) -> set[str]:
        (api, resource), perms = asking
        # Each API is asked of its own resources (a bucket by its name, without gs://).
        tested = getattr(ctx.backend, api).test_iam_permissions
        return set(tested(resource.removeprefix("gs://"), sorted(perms)))

    # One question per resource, a few at a time (a plan over many buckets asked them one
    # round trip after another); the answers are read in the same order as before.
    answers = side_by_side(held, asked, PERMISSION_CHECKS_AT_ONCE)
    for ((_, resource), perms), granted in zip(asked, answers, strict=True):
        for p in sorted(perms):
            if p not in granted:
                missing.append(f"the caller ({identity}) lacks {p} on {resource} (step {perms[p]})")
    if missing:
        more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
        raise Refused(
            "preflight: " + "; ".join(missing[:3]) + more + "; nothing was changed",
            resource=ctx.params["key"],
            rule="R5",
        )
    return {
        "agents_checked": agents_checked,
        "permissions_checked": sum(len(p) for p in wanted.values()),
        "resources_checked": sorted(r for _, r in wanted),
    }
