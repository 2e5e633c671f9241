"""Cloud Run functions step: redeploy every function under a retiring version, or
(replace-key) under the old key, with a repository protected by the same key (R42)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from rotator import apierrors as api
from rotator.changes import Change
from rotator.names import is_version_of, key_id, version_name
from rotator.services.functions.spec import FUNCTION, FUNCTION_KEY, FUNCTION_WINDOW
from rotator.services.functions.spec import SPEC as FUNCTIONS
from rotator.steps.base import PARAM_REF, PlannedStep, StepKind, register, strict
from rotator.windows import redeploy_window_pin

if TYPE_CHECKING:
    from rotator.steps.base import ApplyContext, PlanContext


def repository_for(repo: str | None, region: str, project: str, dest: str) -> str:
    """A repository for the new key, beside the old one (R42: same key, same region)."""
    base = repo.rsplit("/", 1)[1] if repo else "functions"
    suffix = re.sub(r"[^a-z0-9-]", "-", key_id(dest).lower())
    return f"projects/{project}/locations/{region}/repositories/{base}-{suffix}"[:200]


@register
class RedeployFunctions(StepKind):
    name = "functions.redeploy"
    summary = (
        "Redeploy every function under a retiring version (or the old key); a move to a new "
        "key also gets an Artifact Registry repository under that key"
    )
    rules = ["R42", "R5", "R7"]
    with_schema = strict({"key": PARAM_REF, "to": PARAM_REF}, ["key", "to"])
    param_fields = ("key", "to")

    def plan(self, ctx: PlanContext, step_id: str, params: dict[str, Any]) -> PlannedStep:
        key, dest = ctx.key(params["key"]), ctx.key(params["to"])
        inv = ctx.inventory(key)
        if "functions" in inv.uninspected:
            return PlannedStep(step_id, self.name, "functions not inspected (--services)", self.rules)
        moves: list[dict[str, Any]] = []
        changes: list[dict[str, Any]] = []
        for fn in FUNCTIONS.reads(ctx.backend).list_functions():
            if fn.kms_key != key and not is_version_of(fn.kms_key_version, key):
                continue
            repo = fn.docker_repository
            if dest != key:
                repo = repository_for(fn.docker_repository, fn.region, ctx.backend.project, dest)
                changes.append({"action": Change.CREATE_REPOSITORY, "repository": repo, "kms_key": dest})
            changes.append(
                {"action": Change.REDEPLOY_FUNCTION, "function": fn.name, "to_key": dest, "repository": repo}
            )
            moves.append({"function": fn.name, "repository": repo})
            ctx.resolved_uses.update(
                {(FUNCTION, fn.name), (FUNCTION_KEY, fn.name), (FUNCTION_WINDOW, fn.name)}
            )
            replaced = ctx.replaced_primary.get(key)
            if dest == key and replaced is not None:
                # Redeployed right after this plan's rotation: it may still be built under
                # the primary that rotation replaces (Cloud KMS propagation, R43).
                pin = redeploy_window_pin(FUNCTION_WINDOW, fn.name, fn.name)
                ctx.added_pins.setdefault((key, replaced), []).append(pin)
        old_repos = sorted(
            {
                fn.docker_repository
                for fn in FUNCTIONS.reads(ctx.backend).list_functions()
                if fn.docker_repository and (fn.kms_key == key)
            }
            if dest != key
            else set()
        )
        repo_notes = [
            f"{r} stays under {key} and pins its primary (R42): delete it once nothing pulls "
            "from it, then plan again to disable that version"
            for r in old_repos
        ]
        notes = (
            [
                "the function's source is built again and redeployed under the key's primary "
                "(R42); a function that shows no new build (BuildConfig.build) keeps its old "
                "version, and the disable step stops for it"
            ]
            if moves
            else []
        )
        return PlannedStep(
            id=step_id,
            kind=self.name,
            title=f"redeploy {len(moves)} function(s) under {dest}",
            rules=self.rules,
            targets=[m["function"] for m in moves],
            changes=changes,
            notes=notes + repo_notes,
            data={"key": key, "to": dest, "retiring": sorted(inv.versions), "moves": moves},
        )

    def apply(self, ctx: ApplyContext, step: PlannedStep) -> dict[str, Any]:
        key, dest = step.data["key"], step.data["to"]
        retiring = {version_name(key, n) for n in step.data["retiring"]}
        done = 0
        not_rebuilt: list[str] = []
        for move in step.data["moves"]:
            fn = FUNCTIONS.api(ctx.backend).get_function(move["function"])
            # Done only if provably under the destination's new version (unknown: redeploy).
            if fn.kms_key == dest and fn.kms_key_version is not None and fn.kms_key_version not in retiring:
                continue
            repo = move["repository"]
            if dest != key:
                try:
                    FUNCTIONS.api(ctx.backend).get_repository_key(repo)
                except api.NotFound:
                    FUNCTIONS.api(ctx.backend).create_repository(repo, kms_key=dest)
                    ctx.emit(f"{repo}: created under {dest}")
                moved = FUNCTIONS.api(ctx.backend).redeploy_function(
                    fn.name, kms_key=dest, docker_repository=repo
                )
            else:
                moved = FUNCTIONS.api(ctx.backend).redeploy_function(fn.name)
            if moved.kms_key_version is None or moved.kms_key_version in retiring:
                # No new build shows: the image is still under its old version, which it
                # keeps pinning (the disable step will find it) (R42).
                not_rebuilt.append(fn.name)
                ctx.emit(
                    f"{fn.name}: updated, but no new build shows, so it stays under "
                    f"{moved.kms_key_version or 'an unknown version'}; redeploy its source "
                    "(gcloud functions deploy) to move it (R42)"
                )
                continue
            done += 1
            ctx.emit(f"{fn.name}: redeployed under {dest}")
        return {"functions_redeployed": done, "functions_not_rebuilt": not_rebuilt}
