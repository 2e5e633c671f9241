"""The JSON documents rotator prints with --output json: one per command, each with a
`kind` and a `schema_version` that changes only when a field changes meaning or goes
away (new fields may appear within a version). Scripts should check both.
tests/docs/test_output_schemas.py validates every command's output against these."""

from __future__ import annotations

from typing import Any

from rotator.journal import LIFE_STATES

SCHEMA_VERSION = 1


def _doc(kind: str, props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {"kind": {"const": kind}, "schema_version": {"const": SCHEMA_VERSION}, **props},
        "required": ["kind", "schema_version", *required],
    }


_STR = {"type": "string"}
_INT = {"type": "integer"}
_USE = {
    "type": "object",
    "required": ["kind", "resource", "rule", "count", "blocks_disable", "blocks_destroy", "frees_at"],
    "properties": {
        "rule": {"type": "string", "pattern": "^R[0-9]+"},
        "frees_at": {"type": ["string", "null"]},
    },
}
_VERSION = {
    "type": "object",
    "required": [
        "version",
        "number",
        "state",
        "primary",
        "blocks_disable",
        "blocks_destroy",
        "frees_up",
        "uses",
    ],
    "properties": {"state": _STR, "uses": {"type": "array", "items": _USE}},
}
_LIFE = {
    "type": "object",
    "required": ["state", "runs"],
    "properties": {"state": {"enum": list(LIFE_STATES)}, "runs": _INT, "pid": {"type": ["integer", "null"]}},
}
_STEP = {
    "type": "object",
    "required": ["id", "kind", "title", "rules", "targets", "changes", "blockers", "notes", "data"],
}

SCHEMAS: dict[str, dict[str, Any]] = {
    "rotator.inventory": _doc(
        "rotator.inventory",
        {
            "key": _STR,
            "primary": {"type": ["integer", "null"]},
            "now": _STR,
            "versions": {"type": "array", "items": _VERSION},
            "bucket_defaults": {"type": "array"},
            "uninspected_services": {"type": "array"},
            "kms_inventory_cross_check": _STR,
        },
        ["key", "versions", "now"],
    ),
    "rotator.plan": _doc(
        "rotator.plan",
        {
            "playbook": {"type": "object", "required": ["name"]},
            "params": {"type": "object", "required": ["key"]},
            "target": {"type": "object", "required": ["backend", "project"]},
            "steps": {"type": "array", "items": _STEP},
            "summary": {
                "type": "object",
                "required": [
                    "objects_to_rewrite",
                    "versions_to_disable",
                    "versions_pinned",
                    "versions_to_destroy",
                ],
            },
        },
        ["playbook", "params", "target", "expect", "steps", "inventory", "summary", "digest"],
    ),
    # A done plan applied again: `already_applied` (when) and `verified` (the steps whose
    # effect was re-checked); `results` is then empty: nothing was done.
    "rotator.apply": _doc(
        "rotator.apply",
        {
            "plan": _STR,
            "complete": {"type": "boolean"},
            "results": {"type": "object"},
            "already_applied": _STR,
            "verified": {"type": "array", "items": _STR},
        },
        ["plan", "complete", "results"],
    ),
    "rotator.status": _doc(
        "rotator.status",
        {
            "plan": _STR,
            "state": {"enum": list(LIFE_STATES)},
            "life": _LIFE,
            "complete": {"type": "boolean"},
            "started": {"type": "boolean"},
            "steps": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "kind", "state"],
                    "properties": {
                        "state": {"enum": ["pending", "running", "stopped", "done", "failed", "waiting"]}
                    },
                },
            },
        },
        ["plan", "state", "life", "complete", "steps"],
    ),
    # `rotator status` without a plan: the unfinished applies in this directory.
    "rotator.applies": _doc(
        "rotator.applies",
        {
            "unfinished": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["plan", "key", "playbook", "life"],
                    "properties": {"life": _LIFE},
                },
            }
        },
        ["unfinished"],
    ),
    "rotator.playbooks": _doc(
        "rotator.playbooks",
        {
            "playbooks": {
                "type": "array",
                "items": {"type": "object", "required": ["name", "summary", "parameters", "steps"]},
            },
        },
        ["playbooks"],
    ),
    "rotator.rules": _doc(
        "rotator.rules",
        {
            "rules": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["id", "topic", "summary", "detail", "honoured", "sources", "enforced_in"],
                    "properties": {
                        "id": {"type": "string", "pattern": "^R[0-9]+$"},
                        "sources": {"type": "array", "minItems": 1},
                        "enforced_in": {"type": "array", "minItems": 1},
                        "cited_by": {"type": "object"},
                    },
                },
            },
        },
        ["rules"],
    ),
    "rotator.report": _doc(
        "rotator.report",
        {
            "now": _STR,
            "projects": {"type": "array", "items": _STR},
            "kms_reads_per_minute": _INT,
            "keys": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": [
                        "key",
                        "project",
                        "rotation_period",
                        "next_rotation_time",
                        "primary",
                        "primary_age_days",
                        "too_old",
                        "kms_inventory",
                        "versions",
                    ],
                    "properties": {
                        "versions": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": [
                                    "number",
                                    "state",
                                    "created",
                                    "age_days",
                                    "protects",
                                    "other_products",
                                    "safe_to_disable",
                                    "safe_to_destroy",
                                ],
                            },
                        }
                    },
                },
            },
            "summary": {
                "type": "object",
                "required": ["keys", "too_old", "safe_to_disable", "safe_to_destroy"],
            },
        },
        ["now", "projects", "keys", "summary"],
    ),
    "rotator.clock": _doc("rotator.clock", {"now": _STR}, ["now"]),
    "rotator.error": _doc(
        "rotator.error",
        {"error": {"type": "object", "required": ["kind", "exit_code", "message", "resource", "rule"]}},
        ["error"],
    ),
}


def stamp(kind: str, document: dict[str, Any]) -> dict[str, Any]:
    """`document` with its kind and schema version first."""
    return {
        "kind": kind,
        "schema_version": SCHEMA_VERSION,
        **{k: v for k, v in document.items() if k not in ("kind", "schema_version")},
    }
