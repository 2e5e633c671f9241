"""The bad input catalogue (issue 6.5): one table of malformed inputs, each through the
CLI, each giving exit 2, one `error:` line naming the field or the value, nothing on
stdout, and no change: the same `world dump`, no journal, no plan, no new state.

It adds to tests/cli/test_cli_bad_input.py (81 cases) what that file does not cover:
names, option values, custom playbook files (unknown step kind, bad `with:`, duplicate
ids, ...), world files, plan files, a plan for another project or backend, and a world
edited under its state. len(CASES) is the figure in README "Safety".

Backends: fake; gcp over the wire (tests/wire/test_suites_over_the_wire.py runs this file again).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import WorldCli, assert_failed, resealed
from worlds import APP_KEY, EU_KEY, NEW_KEY, make_world, v, write_world

RING = "projects/demo/locations/us-east1/keyRings/ring"

# A custom playbook that loads, edited by each playbook case.
GOOD_PLAYBOOK: dict[str, Any] = {
    "name": "custom",
    "summary": "a custom rotation",
    "parameters": {"key": {"type": "key", "required": True, "help": "the key"}},
    "steps": [
        {"id": "new-primary", "kind": "kms.create_primary_version", "with": {"key": "key"}},
        {
            "id": "disable-old",
            "kind": "kms.disable_versions",
            "with": {"key": "key", "scope": "old_versions"},
        },
    ],
}


@dataclass(frozen=True)
class Case:
    """`setup(dir)` prepares what the case needs (beside world.yaml and plan.json, both
    valid) and returns the command line after `--world world.yaml`; `needles` must all
    be in the error line."""

    setup: Callable[[Path], list[str]]
    needles: tuple[str, ...]
    world_flag: bool = True


def args(*a: str) -> Callable[[Path], list[str]]:
    return lambda _d: list(a)


def plan(*a: str) -> list[str]:
    return ["plan", *a, "--out", "new-plan.json"]


def playbook_file(
    edit: Callable[[dict[str, Any]], Any], name: str = "custom.yaml"
) -> Callable[[Path], list[str]]:
    def setup(d: Path) -> list[str]:
        doc = json.loads(json.dumps(GOOD_PLAYBOOK))
        edit(doc)
        (d / name).write_text(yaml.safe_dump(doc, sort_keys=False))
        return plan(f"./{name}", "--key", APP_KEY)

    return setup


def raw_playbook(text: str) -> Callable[[Path], list[str]]:
    def setup(d: Path) -> list[str]:
        (d / "custom.yaml").write_text(text)
        return plan("./custom.yaml", "--key", APP_KEY)

    return setup


def world_file(edit: Callable[[dict[str, Any]], Any]) -> Callable[[Path], list[str]]:
    """Another world file, edited; the command runs on it (`--world other.yaml`)."""

    def setup(d: Path) -> list[str]:
        doc = make_world()
        edit(doc)
        write_world(d / "other.yaml", doc)
        return ["--world", "other.yaml", "inventory", APP_KEY]

    return setup


def plan_file(edit: Callable[[dict[str, Any]], Any]) -> Callable[[Path], list[str]]:
    def setup(d: Path) -> list[str]:
        doc = json.loads((d / "plan.json").read_text())
        edit(doc)
        (d / "edited.json").write_text(json.dumps(resealed(doc)))
        return ["apply", "edited.json", "--yes"]

    return setup


def raw_plan(data: bytes) -> Callable[[Path], list[str]]:
    def setup(d: Path) -> list[str]:
        (d / "edited.json").write_bytes(data)
        return ["apply", "edited.json", "--yes"]

    return setup


def step(doc: dict[str, Any], sid: str) -> dict[str, Any]:
    return next(s for s in doc["steps"] if s["id"] == sid)


def plan_for_another_project(d: Path) -> list[str]:
    other = d / "other"
    other.mkdir()
    write_world(other / "world.yaml", make_world(project="other-project"))
    w = WorldCli(other)
    assert w.plan("rotate-key", APP_KEY).code == 0
    (d / "edited.json").write_bytes((other / "plan.json").read_bytes())
    return ["apply", "edited.json", "--yes"]


def world_edited_under_its_state(then: list[str]) -> Callable[[Path], list[str]]:
    def setup(d: Path) -> list[str]:
        world = d / "world.yaml"
        doc = yaml.safe_load(world.read_text())
        doc["storage"][0]["objects"].append({"name": "added-by-hand.txt", "kms_key_version": v(APP_KEY, 1)})
        (d / "world.yaml.orig").write_bytes(world.read_bytes())
        world.write_text(yaml.safe_dump(doc, sort_keys=False))
        return then

    return setup


def world_file_removed(d: Path) -> list[str]:
    (d / "world.yaml").rename(d / "world.yaml.orig")
    return ["apply", "plan.json", "--yes"]


CASES: dict[str, Case] = {
    # -- names (R1) --
    "key/extra-segment": Case(args(*plan("rotate-key", "--key", f"{APP_KEY}/extra")), ("--key", "extra")),
    "key/leading-slash": Case(args(*plan("rotate-key", "--key", "/" + APP_KEY)), ("--key", "/" + APP_KEY)),
    "key/bad-ring-char": Case(
        args(*plan("rotate-key", "--key", f"{RING}!/cryptoKeys/app")), ("--key", "ring!")
    ),
    "key/wildcard": Case(args(*plan("rotate-key", "--key", f"{RING}/cryptoKeys/*")), ("--key", "*")),
    "key/resource-url": Case(
        args(*plan("rotate-key", "--key", "//cloudkms.googleapis.com/" + APP_KEY)), ("--key", "//cloudkms")
    ),
    "new-key/a-version": Case(
        args(*plan("replace-key", "--key", APP_KEY, "--new-key", v(NEW_KEY, 1))),
        ("--new-key", "cryptoKeyVersions"),
    ),
    "inventory/key-ring-only": Case(args("inventory", RING), ("KEY", RING)),
    # -- parameters and options --
    "versions/negative": Case(
        args(*plan("destroy-versions", "--key", APP_KEY, "--set", "versions=-1")), ("versions", "-1")
    ),
    "versions/range": Case(
        args(*plan("destroy-versions", "--key", APP_KEY, "--set", "versions=1..2")), ("versions", "1..2")
    ),
    "versions/semicolon": Case(
        args(*plan("destroy-versions", "--key", APP_KEY, "--set", "versions=1;2")), ("versions", "1;2")
    ),
    "choice/not-a-choice": Case(
        args(*plan("replace-key", "--key", APP_KEY, "--new-key", NEW_KEY, "--set", "firestore=maybe")),
        ("firestore", "maybe"),
    ),
    "choice/not-this-playbook": Case(
        args(*plan("rotate-key", "--key", APP_KEY, "--set", "firestore=restore")), ("firestore",)
    ),
    "services/upper-case": Case(
        args("inventory", APP_KEY, "--services", "STORAGE"), ("--services", "STORAGE")
    ),
    "output/yaml": Case(args("--output", "yaml", "inventory", APP_KEY), ("--output", "yaml")),
    "concurrency/negative": Case(
        args("apply", "plan.json", "--yes", "--concurrency", "-1"), ("--concurrency", "-1")
    ),
    "concurrency/too-many": Case(
        args("apply", "plan.json", "--yes", "--concurrency", "99999"), ("--concurrency", "99999")
    ),
    "max-rps/fraction": Case(args("apply", "plan.json", "--yes", "--max-rps", "0.5"), ("--max-rps", "0.5")),
    "wait/negative": Case(args("apply", "plan.json", "--yes", "--wait=-1h"), ("--wait", "-1h")),
    "advance/space": Case(args("world", "advance", "7 d"), ("DURATION", "7 d")),
    "project/mismatch": Case(args("--project", "demo-2", "inventory", APP_KEY), ("--project", "demo-2")),
    # -- custom playbook files --
    "playbook/unknown-step-kind": Case(
        playbook_file(lambda d: d["steps"][0].update(kind="kms.rotate_everything")),
        ("step:new-primary", "kms.rotate_everything"),
    ),
    "playbook/bad-with": Case(
        playbook_file(lambda d: d["steps"][0]["with"].update(colour="blue")), ("step:new-primary", "colour")
    ),
    "playbook/with-names-undeclared-parameter": Case(
        playbook_file(lambda d: d["steps"][0]["with"].update(key="old_key")), ("step:new-primary", "old_key")
    ),
    "playbook/with-bad-enum": Case(
        playbook_file(lambda d: d["steps"][1]["with"].update(scope="everything")),
        ("step:disable-old", "everything"),
    ),
    "playbook/duplicate-step-id": Case(
        playbook_file(lambda d: d["steps"][1].update(id="new-primary")), ("new-primary", "duplicate")
    ),
    "playbook/name-not-file-name": Case(playbook_file(lambda d: d.update(name="other")), ("custom", "other")),
    "playbook/no-key-parameter": Case(
        playbook_file(lambda d: d.update(parameters={"k": {"type": "key", "help": "x"}})), ("key",)
    ),
    "playbook/unknown-field": Case(playbook_file(lambda d: d.update(author="me")), ("author",)),
    "playbook/when-undeclared": Case(
        playbook_file(lambda d: d["steps"][1].update(when="mode=fast")), ("step:disable-old", "mode")
    ),
    "playbook/choice-without-choices": Case(
        playbook_file(lambda d: d["parameters"].update(mode={"type": "choice", "help": "x"})),
        ("mode", "choice"),
    ),
    "playbook/not-yaml": Case(raw_playbook("name: custom\nsteps: [\n"), ("custom.yaml", "YAML")),
    "playbook/duplicate-yaml-key": Case(
        raw_playbook(yaml.safe_dump(GOOD_PLAYBOOK, sort_keys=False) + "name: custom\n"), ("duplicate", "name")
    ),
    "playbook/missing-file": Case(args(*plan("./nosuch.yaml", "--key", APP_KEY)), ("nosuch.yaml",)),
    # -- world files --
    "world/generation-0": Case(
        world_file(lambda d: d["storage"][0]["objects"][0].update(generation=0)),
        ("storage[0].objects[0].generation",),
    ),
    "world/noncurrent-newer-than-live": Case(
        world_file(
            lambda d: d["storage"][0]["objects"][0].update(
                noncurrent=[{"generation": 5, "kms_key_version": v(APP_KEY, 1)}]
            )
        ),
        ("storage[0].objects[0].noncurrent[0].generation", "5"),
    ),
    "world/unknown-location": Case(world_file(lambda d: d["storage"][0].update(location="MARS")), ("MARS",)),
    "world/default-key-wrong-region": Case(
        world_file(lambda d: d["storage"][0].update(default_kms_key=EU_KEY)),
        ("storage[0].default_kms_key", "R7"),
    ),
    "world/version-state": Case(
        world_file(lambda d: d["kms"][0]["versions"].update({1: "ACTIVE"})), ("kms[0].versions", "ACTIVE")
    ),
    "world/primary-missing": Case(
        world_file(lambda d: d["kms"][0].update(primary=9)), ("kms[0].primary", "9")
    ),
    "world/now-not-a-time": Case(world_file(lambda d: d.update(now="yesterday")), ("now", "yesterday")),
    "world/soft-delete-forever": Case(
        world_file(lambda d: d["storage"][0].update(soft_delete="forever")),
        ("storage[0].soft_delete", "forever"),
    ),
    "world/csek-with-kms-version": Case(
        world_file(lambda d: d["storage"][0]["objects"][0].update(customer_supplied_key=True)),
        ("storage[0].objects[0]", "R19"),
    ),
    "world/deleted-without-generations": Case(
        world_file(lambda d: d["storage"][0]["objects"][0].update(deleted=True)),
        ("storage[0].objects[0].deleted",),
    ),
    "world/backup-without-expiry": Case(
        world_file(
            lambda d: d.update(
                firestore=[
                    {
                        "database": "projects/demo/databases/(default)",
                        "location": "us-east1",
                        "kms_key": APP_KEY,
                        "backups": [{"backup": "projects/demo/locations/us-east1/backups/b"}],
                    }
                ]
            )
        ),
        ("firestore[0].backups[0]", "expire_time"),
    ),
    # -- plan files --
    "plan/empty-file": Case(raw_plan(b""), ("edited.json", "not JSON")),
    "plan/not-utf8": Case(raw_plan(b"\xff\xfe{}"), ("edited.json",)),
    "plan/step-without-data": Case(plan_file(lambda d: d["steps"][0].pop("data")), ("edited.json", "data")),
    "plan/unknown-service": Case(
        plan_file(lambda d: d.update(services=["bigquery"])), ("edited.json", "bigquery")
    ),
    "plan/another-backend": Case(plan_file(lambda d: d["target"].update(backend="gcp")), ("backend", "gcp")),
    "plan/another-project": Case(plan_for_another_project, ("project", "other-project", "demo")),
    "plan/is-a-directory": Case(lambda d: (d / "plans").mkdir() or ["apply", "plans", "--yes"], ("plans",)),
    "plan/expect-missing": Case(plan_file(lambda d: d.pop("expect")), ("edited.json", "expect")),
    # -- a world edited under its state --
    "world-edited/apply": Case(
        world_edited_under_its_state(["apply", "plan.json", "--yes"]), ("world.yaml", "reset")
    ),
    "world-edited/advance": Case(
        world_edited_under_its_state(["world", "advance", "1h"]), ("world.yaml", "reset")
    ),
    "world-removed/apply": Case(world_file_removed, ("world.yaml", "not found")),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_exits_2_names_it_and_changes_nothing(tmp_path: Path, name: str) -> None:
    case = CASES[name]
    w = WorldCli(tmp_path, make_world())
    assert w.plan("rotate-key", APP_KEY).code == 0
    before = w.dump()
    argv = case.setup(tmp_path)
    files = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    if "--world" in argv:
        from helpers import run_cli

        r = run_cli(argv, cwd=tmp_path)
    else:
        r = w(*argv)
    line = assert_failed(r, 2, "error", *case.needles)
    assert r.stdout == "", r
    assert "Traceback" not in r.stderr and "internal error" not in line, r
    # No change: no new file (no journal, plan or state), none rewritten...
    after = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    new = sorted(f for f in set(after) - set(files) if not f.startswith("world.yaml.state"))
    assert new == [], f"new files: {new}"
    changed = [
        f for f in files if f in after and after[f] != files[f] and not f.startswith("world.yaml.state")
    ]
    assert changed == [], f"changed files: {changed}"
    # ... and the world is as it was (the world file put back where a case moved it).
    orig = tmp_path / "world.yaml.orig"
    if orig.exists():
        orig.replace(tmp_path / "world.yaml")
    assert w.dump() == before
    assert not (tmp_path / "plan.json.journal").exists()


def test_the_catalogue_has_at_least_30_inputs() -> None:
    assert len(CASES) >= 30
