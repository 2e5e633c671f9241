"""Change records: the plan as a markdown ticket, the audit record of each apply, and
shell completion.

Backends: fake."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import run_cli
from worlds import APP_KEY, make_world, write_world


def test_markdown_ticket_has_changes_pins_and_the_rollback(tmp_path: Path) -> None:
    w = write_world(tmp_path / "world.yaml", make_world())
    r = run_cli(
        [
            "--world",
            w,
            "--output",
            "markdown",
            "plan",
            "rotate-key",
            "--key",
            APP_KEY,
            "--out",
            tmp_path / "p.json",
        ]
    )
    assert r.code == 0
    md = r.stdout
    assert md.startswith(f"# Change: `rotate-key` on `{APP_KEY}`")
    for heading in ("## What will change", "## What pins what (kept enabled)", "## Rollback"):
        assert heading in md
    assert f"rotator plan rollback --set plan={tmp_path / 'p.json'}" in md
    assert "| 1 | new-primary-version (R2, R12) |" in md


def test_every_apply_appends_an_audit_record(tmp_path: Path) -> None:
    w = write_world(tmp_path / "world.yaml", make_world())
    plan = tmp_path / "p.json"
    assert run_cli(["--world", w, "plan", "rotate-key", "--key", APP_KEY, "--out", plan]).code == 0
    assert run_cli(["--world", w, "apply", plan, "--yes"]).code == 0
    assert run_cli(["--world", w, "apply", plan, "--yes"]).code == 0  # a second run appends
    records = [json.loads(line) for line in (tmp_path / "p.json.audit.jsonl").read_text().splitlines()]
    events = [r["event"] for r in records]
    # The second run of a done plan re-checks its goal and records that, doing nothing.
    assert events.count("apply.started") == 2 and events.count("apply.complete") == 1
    assert events.count("apply.verified") == 1
    started = records[0]
    assert started["who"] and started["user"] and started["plan_sha256"] and started["key"] == APP_KEY
    done = [r for r in records if r["event"] == "step.done"]
    assert [r["step"] for r in done] == [s["id"] for s in json.loads(plan.read_text())["steps"]]
    disable = next(r for r in done if r["kind"] == "kms.disable_versions")
    assert disable["result"]["disabled"] == [
        c["version"].rsplit("/", 1)[1] and int(c["version"].rsplit("/", 1)[1]) for c in disable["changes"]
    ]


def test_completion_scripts(tmp_path: Path) -> None:
    for shell, marker in (("bash", "_ROTATOR_COMPLETE"), ("zsh", "compdef"), ("fish", "complete")):
        r = run_cli(["completion", shell])
        assert r.code == 0 and marker in r.stdout
