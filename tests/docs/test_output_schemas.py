"""Every command's --output json document validates against its documented schema
(rotator/output_schemas.py), carries its kind and schema_version, and is alone on
stdout.

Backends: fake."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
from helpers import run_cli
from worlds import APP_KEY, make_world, write_world

from rotator.output_schemas import SCHEMA_VERSION, SCHEMAS


def test_every_command_prints_a_document_that_matches_its_schema(tmp_path: Path) -> None:
    w = write_world(tmp_path / "world.yaml", make_world())
    plan = tmp_path / "plan.json"
    runs = {
        "rotator.playbooks": ["playbooks"],
        "rotator.inventory": ["inventory", APP_KEY],
        "rotator.plan": ["plan", "rotate-key", "--key", APP_KEY, "--out", plan],
        "rotator.apply": ["apply", plan, "--yes"],
        "rotator.status": ["status", plan],
        "rotator.applies": ["status"],
        "rotator.clock": ["world", "advance", "1h"],
        "rotator.rules": ["rules", "R16"],
        "rotator.report": ["report", "--max-age", "90d"],
        "rotator.error": ["plan", "rotate-key", "--key", "projects/x"],
    }
    for kind, args in runs.items():
        r = run_cli(["--world", w, "--output", "json", *args], cwd=tmp_path)
        doc = json.loads(r.stdout)  # one document and nothing else
        assert doc["kind"] == kind and doc["schema_version"] == SCHEMA_VERSION, (kind, r)
        jsonschema.validate(doc, SCHEMAS[kind])
    assert set(runs) == set(SCHEMAS)  # every documented schema is exercised


def test_a_document_missing_a_field_fails_its_schema() -> None:
    # The schemas are not vacuous: a status without steps is rejected.
    bad = {
        "kind": "rotator.status",
        "schema_version": SCHEMA_VERSION,
        "plan": "p",
        "state": "done",
        "life": {"state": "done", "runs": 1},
        "complete": True,
    }
    try:
        jsonschema.validate(bad, SCHEMAS["rotator.status"])
    except jsonschema.ValidationError as e:
        assert "steps" in e.message
    else:
        raise AssertionError("a status without steps validated")
