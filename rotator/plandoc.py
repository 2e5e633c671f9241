"""The plan file format: its schema, its digest, reading and writing it.

`rotator plan --out` writes a plan document; apply, status, show, report and a rollback
read it back. Everything about the bytes on disk (or in gs://) is here, and nothing
else: building a plan is rotator.plan, applying it rotator.engine. This module imports
no step: step kinds add their names here when they register (rotator.steps.base), so
that a rollback step can read the plan it undoes without an import cycle.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from rotator.errors import BadInput
from rotator.names import parse_key
from rotator.places import open_place
from rotator.schemacheck import validate
from rotator.services import SERVICES

PLAN_SCHEMA_VERSION = 1

# The step kinds a plan may name; each kind adds itself when it registers.
STEP_KINDS: set[str] = set()


def accept_step_kind(name: str) -> None:
    STEP_KINDS.add(name)


def _step_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "kind": {"enum": sorted(STEP_KINDS)},
            "title": {"type": "string"},
            "rules": {"type": "array"},
            "targets": {"type": "array"},
            "changes": {"type": "array"},
            "blockers": {"type": "array"},
            "notes": {"type": "array"},
            "data": {"type": "object"},
        },
        "required": ["id", "kind", "title", "rules", "targets", "changes", "blockers", "notes", "data"],
        "additionalProperties": False,
    }


def plan_schema() -> dict[str, Any]:
    """The JSON Schema of a plan document (with the step kinds registered now)."""
    return {
        "type": "object",
        "properties": {
            "schema_version": {"const": PLAN_SCHEMA_VERSION},
            "kind": {"const": "rotator.plan"},
            "rotator_version": {"type": "string"},
            "created": {"type": "string"},
            "playbook": {"type": "object", "required": ["name"]},
            "params": {"type": "object", "required": ["key"]},
            "target": {"type": "object", "required": ["backend", "project"]},
            "expect": {"type": "object", "required": ["key", "primary", "versions"]},
            "steps": {"type": "array", "items": _step_schema()},
            "inventory": {"type": "object"},
            "summary": {"type": "object"},
            "services": {"type": "array", "items": {"enum": list(SERVICES)}},
            "projects": {"type": "array", "items": {"type": "string"}},
            "acknowledgements": {"type": "array", "items": {"type": "object"}},
            "digest": {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"},
            "preflight": {"type": "object"},
        },
        "required": ["schema_version", "kind", "playbook", "params", "target", "expect", "steps", "digest"],
        "additionalProperties": False,
    }


def dumps(doc: dict[str, Any]) -> str:
    """The plan as written to its file."""
    return json.dumps(doc, indent=2, sort_keys=False) + "\n"


# -- the digest: a plan is tamper-evident ------------------------------------------------
# The digest covers the canonical body (every field but `digest`, keys sorted, no
# whitespace), so re-indenting the file keeps it valid and any edit of a value breaks it.
def body_digest(doc: dict[str, Any]) -> str:
    body = {k: v for k, v in doc.items() if k != "digest"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def seal(doc: dict[str, Any]) -> dict[str, Any]:
    """The plan with its digest (always the last field, recomputed)."""
    body = {k: v for k, v in doc.items() if k != "digest"}
    return {**body, "digest": body_digest(body)}


def check_digest(doc: dict[str, Any], path: str) -> str:
    """The plan's digest (hex), or BadInput when the body no longer matches it."""
    recorded = doc.get("digest")
    if not isinstance(recorded, str) or not recorded.startswith("sha256:"):
        raise BadInput(
            f"plan file {path} has no digest: it was not written by `rotator plan` or was edited; "
            "nothing was read or changed; plan again",
            resource=path,
        )
    if body_digest(doc) != recorded:
        raise BadInput(
            f"plan file {path} was edited after it was made (its body no longer matches its "
            "digest); nothing was read or changed; plan again",
            resource=path,
        )
    return recorded.split(":", 1)[1]


def parse_plan(raw: bytes, path: str) -> dict[str, Any]:
    """A plan document from its bytes: JSON, sealed, valid; BadInput naming `path` if not."""
    try:
        doc = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BadInput(f"plan file {path} is not JSON ({e})", resource=path) from None
    if not isinstance(doc, dict):
        raise BadInput(f"plan file {path} is not a plan document (a JSON object)", resource=path)
    check_digest(doc, path)
    validate(doc, plan_schema(), source=f"plan file {path}")
    try:
        parse_key(doc["params"]["key"], field="plan params.key")
    except BadInput as e:
        raise BadInput(f"plan file {path}: {e.message}", resource=path) from None
    ids = [s["id"] for s in doc["steps"]]
    if len(set(ids)) != len(ids):
        raise BadInput(f"plan file {path}: duplicate step ids", resource=path)
    return doc


def load_plan(path: str) -> tuple[dict[str, Any], str]:
    """A saved plan (a local path or gs://) and its digest (hex; the plan's identity in its
    journal), or BadInput naming what is wrong with it. Nothing else is read before this
    passes."""
    doc = parse_plan(open_place(path).read_plan(), path)
    return doc, doc["digest"].split(":", 1)[1]


def write_plan(path: str, doc: dict[str, Any]) -> None:
    """Write the plan document to its file (a local path or gs://)."""
    open_place(path).write_plan(dumps(doc).encode("utf-8"))
