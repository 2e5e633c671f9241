"""Cloud Run functions' section of the fake world file (docs/world-file.md): its
functions, each with its key, the version it was deployed under and the Artifact
Registry repository its image is pushed to; and those repositories with their keys
(R42). Kept verbatim in the fake's store (rotator/services/functions/fake.py reads
them), with the defaults filled in."""

from __future__ import annotations

from typing import Any

from rotator.backends.fake.worldschema import KEY, TIME, Checker, obj
from rotator.locations import regional_key_location_ok
from rotator.names import location_of

_FUNCTION = obj(
    {
        "function": {"type": "string"},
        "kms_key": KEY,
        "kms_key_version": KEY,
        "docker_repository": {"type": "string"},
        "deployed": TIME,  # when it was last deployed; omitted: as a revision's
    },
    ["function"],
)
# Extension: Artifact Registry repositories and their keys (R42). Defaults to the
# functions' docker_repository entries, each under its function's key.
# image_versions: the versions its images were pushed under (default: those of the
# functions deployed into it).
_REPOSITORY = obj(
    {
        "repository": {"type": "string"},
        "kms_key": KEY,
        "image_versions": {"type": "array", "items": KEY},
    },
    ["repository"],
)

# The top-level sections this service owns, each a list of these items.
SECTIONS: dict[str, dict[str, Any]] = {"functions": _FUNCTION, "artifact_registry": _REPOSITORY}
# Each item's name field and the shape its name must have.
NAME_PATTERNS = {
    ("functions", "function"): r"projects/[a-z0-9.:-]+/locations/[a-z0-9-]+/functions/[A-Za-z0-9_-]+",
    (
        "artifact_registry",
        "repository",
    ): r"projects/[a-z0-9.:-]+/locations/[a-z0-9-]+/repositories/[a-z0-9_-]+",
}


def check(checker: Checker) -> None:
    """A repository's and a function's key are in their own region (R7); a function's
    repository is listed when the repositories are."""
    repos = checker.doc.get("artifact_registry")
    for i, r in enumerate(repos or []):
        region = location_of(r["repository"])
        if r.get("kms_key") and not regional_key_location_ok(region, location_of(r["kms_key"])):
            raise checker.fail(
                f"artifact_registry[{i}].kms_key",
                f"a repository in {region} needs a key in {region} (R7)",
            )
    listed = {r["repository"] for r in repos or []}
    for i, f in enumerate(checker.doc.get("functions", [])):
        if repos is not None and f.get("docker_repository") and f["docker_repository"] not in listed:
            raise checker.fail(
                f"functions[{i}].docker_repository",
                f"{f['docker_repository']} is not under artifact_registry",
            )
    for i, f in enumerate(checker.doc.get("functions", [])):
        if "deployed" in f:
            checker.time(f"functions[{i}].deployed", f["deployed"])
        region = location_of(f["function"])
        if f.get("kms_key") and not regional_key_location_ok(region, location_of(f["kms_key"])):
            raise checker.fail(
                f"functions[{i}].kms_key", f"a function in {region} needs a key in {region} (R7)"
            )


def check_versions(checker: Checker) -> None:
    for i, f in enumerate(checker.doc.get("functions", [])):
        checker.same_key(f"functions[{i}].kms_key_version", f.get("kms_key"), f.get("kms_key_version"))


def fill_defaults(sections: dict[str, list[dict[str, Any]]], primaries: dict[str, Any]) -> None:
    """Without an artifact_registry section, each function's repository is there under
    the function's key; a repository's images were pushed under the versions of the
    functions deployed into it."""
    if "artifact_registry" not in sections and sections.get("functions"):
        repos: dict[str, str | None] = {}
        for f in sections["functions"]:
            if f.get("docker_repository"):
                repos.setdefault(f["docker_repository"], f.get("kms_key"))
        sections["artifact_registry"] = [{"repository": r, "kms_key": k} for r, k in repos.items()]
    for r in sections.get("artifact_registry", []):
        if "image_versions" not in r:
            pushed = {
                f["kms_key_version"]
                for f in sections.get("functions", [])
                if f.get("docker_repository") == r["repository"] and f.get("kms_key_version")
            }
            r["image_versions"] = sorted(pushed)
