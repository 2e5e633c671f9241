"""Playbooks: YAML files in playbooks/, loaded by name and validated in layers.

1. strict YAML (duplicate keys refused), 2. a structural JSON Schema with plain
messages, 3. each step's `with:` against its kind's schema (no extra properties),
4. each kind's semantic validate(). Errors name `playbook:X step:Y`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rotator.errors import BadInput
from rotator.schemacheck import validate
from rotator.steps import REGISTRY
from rotator.yamlload import load_yaml

PARAM_TYPES = ("key", "versions", "choice", "string")

PLAYBOOK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z][a-z0-9-]*$"},
        "summary": {"type": "string", "minLength": 1},
        "description": {"type": "string"},
        "parameters": {
            "type": "object",
            "propertyNames": {"pattern": "^[a-z_][a-z0-9_]*$"},
            "additionalProperties": {
                "type": "object",
                "properties": {
                    "type": {"enum": list(PARAM_TYPES)},
                    "required": {"type": "boolean"},
                    "help": {"type": "string"},
                    "choices": {"type": "array", "items": {"type": "string"}},
                    "default": {"type": ["string", "null"]},
                },
                "required": ["type", "help"],
                "additionalProperties": False,
            },
        },
        "steps": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "string", "pattern": "^[a-z][a-z0-9-]*$"},
                    "kind": {"type": "string"},
                    "with": {"type": "object"},
                    "when": {"type": "string"},
                },
                "required": ["id", "kind"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["name", "summary", "parameters", "steps"],
    "additionalProperties": False,
}


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str
    required: bool
    help: str
    choices: tuple[str, ...] = ()
    default: str | None = None


@dataclass(frozen=True)
class StepSpec:
    id: str
    kind: str
    params: dict[str, Any]
    when: str | None = None  # "NAME=VALUE": the step runs only when that parameter has that value


@dataclass(frozen=True)
class Playbook:
    name: str
    summary: str
    description: str
    parameters: dict[str, Parameter]
    steps: tuple[StepSpec, ...]
    path: str
    sha256: str


def playbook_dir() -> Path:
    env = os.environ.get("ROTATOR_PLAYBOOKS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "playbooks"


def available() -> list[str]:
    return sorted(p.stem for p in playbook_dir().glob("*.yaml"))


def load(name_or_path: str) -> Playbook:
    """A playbook by name (from playbooks/) or by path to a .yaml file."""
    if name_or_path.endswith((".yaml", ".yml")) or os.sep in name_or_path:
        path = Path(name_or_path)
    else:
        path = playbook_dir() / f"{name_or_path}.yaml"
        if not path.exists():
            names = ", ".join(available()) or "(none)"
            raise BadInput(f"unknown playbook {name_or_path!r}; available: {names}", resource=name_or_path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise BadInput(f"playbook {path}: {e.strerror}", resource=str(path)) from None
    return parse(
        raw.decode("utf-8", errors="replace"),
        source=str(path),
        sha256=hashlib.sha256(raw).hexdigest(),
        expected_name=path.stem,
    )


def parse(text: str, *, source: str, sha256: str = "", expected_name: str | None = None) -> Playbook:
    doc = load_yaml(text, source=source)
    validate(doc, PLAYBOOK_SCHEMA, source=f"playbook {source}")
    name = doc["name"]
    where = f"playbook:{name}"
    if expected_name and name != expected_name:
        raise BadInput(f"{where}: name must match the file name ({expected_name})")
    params = {}
    for pname, p in doc["parameters"].items():
        if p["type"] == "choice" and not p.get("choices"):
            raise BadInput(f"{where}: parameter {pname}: a choice needs choices")
        params[pname] = Parameter(
            pname,
            p["type"],
            p.get("required", False),
            p["help"],
            tuple(p.get("choices", ())),
            p.get("default"),
        )
    if "key" not in params:
        raise BadInput(f"{where}: every playbook takes the parameter 'key'")
    steps, seen = [], set()
    for raw_step in doc["steps"]:
        sid = raw_step["id"]
        swhere = f"{where} step:{sid}"
        if sid in seen:
            raise BadInput(f"{swhere}: duplicate step id")
        seen.add(sid)
        kind = REGISTRY.get(raw_step["kind"])
        if kind is None:
            raise BadInput(
                f"{swhere}: unknown step kind {raw_step['kind']!r}; known: {', '.join(sorted(REGISTRY))}"
            )
        with_ = raw_step.get("with", {})
        validate(with_, kind.with_schema, source=f"{swhere} with")
        kind.validate(with_, set(params), swhere)
        when = raw_step.get("when")
        if when is not None:
            pname, _, _ = when.partition("=")
            if pname not in params:
                raise BadInput(f"{swhere}: when: names parameter {pname!r}, which is not declared")
        steps.append(StepSpec(sid, raw_step["kind"], with_, when))
    return Playbook(name, doc["summary"], doc.get("description", ""), params, tuple(steps), source, sha256)


# -- what `rotator playbooks` and `rotator rules` show -------------------------------------
def describe(name: str) -> dict[str, Any]:
    """A playbook as `rotator playbooks` shows it: its parameters and its steps, each
    step with its kind's summary and the rules it cites."""
    pb = load(name)
    return {
        "name": pb.name,
        "summary": pb.summary,
        "description": pb.description,
        "parameters": {
            p.name: {"type": p.type, "required": p.required, "help": p.help} for p in pb.parameters.values()
        },
        "steps": [
            {
                "id": s.id,
                "kind": s.kind,
                "summary": REGISTRY[s.kind].summary,
                "rules": REGISTRY[s.kind].rules,
                "when": s.when,
            }
            for s in pb.steps
        ],
    }


def citing(rule_ids: Iterable[str]) -> dict[str, dict[str, list[str]]]:
    """For each rule: the step kinds that cite it -> the playbooks that run them."""
    kinds_of = {n: {s.kind for s in load(n).steps} for n in available()}
    return {
        rule_id: {
            kind: [n for n, kinds in kinds_of.items() if kind in kinds]
            for kind, step in REGISTRY.items()
            if rule_id in step.rules
        }
        for rule_id in rule_ids
    }
