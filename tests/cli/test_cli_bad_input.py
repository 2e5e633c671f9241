"""Bad input through the CLI: exit 2, one `error:` line naming the field or value, and
no change to the world (same `world dump`, no journal, no plan file).

Backends: fake."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import WorldCli, assert_failed, resealed, run_cli
from worlds import APP_KEY, NEW_KEY, key, make_world, v, write_world

RING = "projects/demo/locations/us-east1/keyRings/ring"


@pytest.fixture
def w(tmp_path: Path) -> WorldCli:
    return WorldCli(tmp_path, make_world())


def assert_bad_input(w: WorldCli, args: list[str], *needles: str) -> str:
    """Exit 2 with an error: line containing every needle, and nothing changed."""
    before = w.dump()
    files = sorted(p.name for p in w.dir.iterdir())
    r = w(*args)
    line = assert_failed(r, 2, "error", *needles)
    assert r.stdout == "", r
    assert w.dump() == before
    # No journal, plan or other file appeared (the world's own state files aside).
    after = sorted(p.name for p in w.dir.iterdir())
    assert [f for f in after if f not in files and ".state" not in f] == []
    return line


# -- key names (R1) ---------------------------------------------------------------------------

MALFORMED_KEYS = {
    "key-ring-only": RING,
    "bare-name": "app",
    "empty": "",
    "version-not-key": v(APP_KEY, 1),
    "wrong-segment": "projects/demo/locations/us-east1/keyRing/ring/cryptoKeys/app",
    "upper-case-project": "projects/Demo/locations/us-east1/keyRings/ring/cryptoKeys/app",
    "empty-key-id": f"{RING}/cryptoKeys/",
    "space-in-id": f"{RING}/cryptoKeys/my key",
    "trailing-slash": f"{APP_KEY}/",
    "too-long-id": f"{RING}/cryptoKeys/{'k' * 64}",
}


@pytest.mark.parametrize("name", list(MALFORMED_KEYS.values()), ids=list(MALFORMED_KEYS))
def test_malformed_key_for_plan(w: WorldCli, name: str) -> None:
    line = assert_bad_input(w, ["plan", "rotate-key", "--key", name, "--out", "p.json"], "--key", repr(name))
    assert "R1" in line


@pytest.mark.parametrize(
    "name", [RING, v(APP_KEY, 2), "projects//locations/x"], ids=["ring", "version", "empty"]
)
def test_malformed_key_for_inventory(w: WorldCli, name: str) -> None:
    assert_bad_input(w, ["inventory", name], "KEY", repr(name), "R1")


@pytest.mark.parametrize("name", [RING, "new"], ids=["ring", "bare"])
def test_malformed_new_key(w: WorldCli, name: str) -> None:
    assert_bad_input(
        w,
        ["plan", "replace-key", "--key", APP_KEY, "--new-key", name, "--out", "p.json"],
        "--new-key",
        repr(name),
    )


# -- playbooks and parameters -------------------------------------------------------------------


def test_unknown_playbook(w: WorldCli) -> None:
    assert_bad_input(
        w, ["plan", "rotate-keys", "--key", APP_KEY, "--out", "p.json"], "rotate-keys", "rotate-key"
    )


def test_unknown_playbook_for_playbooks_command(w: WorldCli) -> None:
    assert_bad_input(w, ["playbooks", "nosuch"], "nosuch")


@pytest.mark.parametrize(
    ("sets", "needles"),
    [
        (["colour=blue"], ["colour"]),
        (["versions=1"], ["versions"]),  # rotate-key takes no versions
        (["colour"], ["colour", "NAME=VALUE"]),
        (["=1"], ["'=1'", "NAME=VALUE"]),
        (["key=x", "key=y"], ["key"]),
    ],
    ids=["unknown", "not-this-playbook", "no-equals", "no-name", "twice"],
)
def test_bad_set(w: WorldCli, sets: list[str], needles: list[str]) -> None:
    args = ["plan", "rotate-key", "--key", APP_KEY, "--out", "p.json"]
    for s in sets:
        args += ["--set", s]
    assert_bad_input(w, args, "--set", *needles)


@pytest.mark.parametrize(
    ("playbook", "args", "name"),
    [
        ("rotate-key", ["--set", f"key={NEW_KEY}"], "key"),
        ("replace-key", ["--new-key", NEW_KEY, "--set", f"new_key={RING}/cryptoKeys/eu"], "new_key"),
    ],
    ids=["key", "new_key"],
)
def test_set_may_not_repeat_a_key_flag(w: WorldCli, playbook: str, args: list[str], name: str) -> None:
    """`--key A --set key=B` is two answers to one question: refuse, never pick one."""
    assert_bad_input(w, ["plan", playbook, "--key", APP_KEY, *args, "--out", "p.json"], name)


def test_replace_key_needs_new_key(w: WorldCli) -> None:
    assert_bad_input(w, ["plan", "replace-key", "--key", APP_KEY, "--out", "p.json"], "--new-key")


def test_new_key_equal_to_key(w: WorldCli) -> None:
    assert_bad_input(
        w,
        ["plan", "replace-key", "--key", APP_KEY, "--new-key", APP_KEY, "--out", "p.json"],
        "--new-key",
        "--key",
    )


def test_rotate_key_takes_no_new_key(w: WorldCli) -> None:
    assert_bad_input(
        w, ["plan", "rotate-key", "--key", APP_KEY, "--new-key", NEW_KEY, "--out", "p.json"], "--new-key"
    )


@pytest.mark.parametrize("flag", ["--key", "--new-key"])
def test_key_that_does_not_exist(w: WorldCli, flag: str) -> None:
    missing = f"{RING}/cryptoKeys/nosuch"
    keys = {"--key": APP_KEY, "--new-key": NEW_KEY, flag: missing}
    args = ["plan", "replace-key", "--key", keys["--key"], "--new-key", keys["--new-key"], "--out", "p.json"]
    assert_bad_input(w, args, flag, missing, "not found")


def test_inventory_of_a_key_that_does_not_exist(w: WorldCli) -> None:
    missing = f"{RING}/cryptoKeys/nosuch"
    assert_bad_input(w, ["inventory", missing], missing, "not found")


@pytest.mark.parametrize(
    ("value", "needles"),
    [
        ("abc", ["versions", "'abc'"]),
        ("1,x", ["versions", "'x'"]),
        ("0", ["versions", "'0'"]),
        ("", ["versions"]),
        ("9", ["versions", "9", APP_KEY]),
        ("1,7", ["versions", "7"]),
    ],
    ids=["letters", "one-bad", "zero", "empty", "no-such-version", "one-missing"],
)
def test_bad_versions(tmp_path: Path, value: str, needles: list[str]) -> None:
    w = WorldCli(
        tmp_path, make_world(kms=[key(APP_KEY, {1: "DISABLED", 2: "ENABLED"}, primary=2)], storage=[])
    )
    args = ["plan", "destroy-versions", "--key", APP_KEY, "--set", f"versions={value}", "--out", "p.json"]
    assert_bad_input(w, args, *needles)


def test_destroy_versions_needs_versions(w: WorldCli) -> None:
    assert_bad_input(w, ["plan", "destroy-versions", "--key", APP_KEY, "--out", "p.json"], "versions")


@pytest.mark.parametrize("command", ["plan", "inventory"])
def test_unknown_service(w: WorldCli, command: str) -> None:
    args = (
        ["plan", "rotate-key", "--key", APP_KEY, "--out", "p.json"]
        if command == "plan"
        else ["inventory", APP_KEY]
    )
    assert_bad_input(w, [*args, "--services", "storage,nosuch"], "--services", "nosuch")


def test_empty_services(w: WorldCli) -> None:
    assert_bad_input(w, ["inventory", APP_KEY, "--services", ","], "--services")


def test_unknown_output_format(w: WorldCli) -> None:
    r = run_cli(["--world", w.path.name, "--output", "xml", "world", "dump"], cwd=w.dir)
    assert_failed(r, 2, "error", "--output", "xml")


def test_unknown_command(w: WorldCli) -> None:
    assert_bad_input(w, ["rotate"], "rotate")


def test_plan_needs_key(w: WorldCli) -> None:
    assert_bad_input(w, ["plan", "rotate-key", "--out", "p.json"], "--key")


def test_out_is_a_directory(w: WorldCli) -> None:
    (w.dir / "plans").mkdir()
    assert_bad_input(w, ["plan", "rotate-key", "--key", APP_KEY, "--out", "plans"], "--out", "plans")


# -- apply options ----------------------------------------------------------------------------


@pytest.fixture
def planned(w: WorldCli) -> WorldCli:
    r = w.plan("rotate-key", APP_KEY)
    assert r.code == 0, r
    return w


@pytest.mark.parametrize(
    ("extra", "needles"),
    [
        (["--concurrency", "0"], ["--concurrency", "0"]),
        (["--concurrency", "many"], ["--concurrency", "many"]),
        (["--max-rps", "0"], ["--max-rps", "0"]),
        (["--wait=soon"], ["--wait", "soon"]),
    ],
    ids=["concurrency-0", "concurrency-text", "max-rps-0", "wait-duration"],
)
def test_bad_apply_options(planned: WorldCli, extra: list[str], needles: list[str]) -> None:
    assert_bad_input(planned, ["apply", "plan.json", "--yes", *extra], *needles)


def test_apply_without_yes(planned: WorldCli) -> None:
    assert_bad_input(planned, ["apply", "plan.json"], "--yes")


# -- world files ------------------------------------------------------------------------------


def _assert_bad_world(tmp_path: Path, name: str, *needles: str) -> None:
    for args in (["world", "dump"], ["inventory", APP_KEY], ["plan", "rotate-key", "--key", APP_KEY]):
        r = run_cli(["--world", name, *args], cwd=tmp_path)
        assert_failed(r, 2, "error", *needles)
        assert r.stdout == ""
    assert not list(tmp_path.glob("*.state*")), "an invalid world must leave no state behind"


def test_world_with_unknown_field(tmp_path: Path) -> None:
    doc = make_world()
    doc["storage"][0]["objects"][0]["colour"] = "blue"
    write_world(tmp_path / "w.yaml", doc)
    _assert_bad_world(tmp_path, "w.yaml", "w.yaml", "storage[0].objects[0].colour", "unknown field")


def test_world_with_a_dangling_version(tmp_path: Path) -> None:
    doc = make_world()
    doc["storage"][0]["objects"][0]["kms_key_version"] = v(APP_KEY, 7)
    write_world(tmp_path / "w.yaml", doc)
    _assert_bad_world(tmp_path, "w.yaml", "storage[0].objects[0].kms_key_version", "7")


def test_world_with_a_dangling_default_key(tmp_path: Path) -> None:
    doc = make_world()
    doc["storage"][0]["default_kms_key"] = f"{RING}/cryptoKeys/nosuch"
    write_world(tmp_path / "w.yaml", doc)
    _assert_bad_world(tmp_path, "w.yaml", "storage[0].default_kms_key", "nosuch")


def test_world_with_a_duplicate_yaml_key(tmp_path: Path) -> None:
    (tmp_path / "w.yaml").write_text("project: demo\nnow: '2026-11-22T00:00:00Z'\nproject: other\n")
    _assert_bad_world(tmp_path, "w.yaml", "w.yaml", "duplicate", "project")


def test_world_with_a_key_declared_twice(tmp_path: Path) -> None:
    doc = make_world()
    doc["kms"].append(dict(doc["kms"][0]))
    write_world(tmp_path / "w.yaml", doc)
    _assert_bad_world(tmp_path, "w.yaml", "kms[3]", APP_KEY)


def test_world_that_is_not_yaml(tmp_path: Path) -> None:
    (tmp_path / "w.yaml").write_text("kms: [\n  {key: : :\n")
    _assert_bad_world(tmp_path, "w.yaml", "w.yaml", "YAML")


def test_world_that_is_not_a_mapping(tmp_path: Path) -> None:
    (tmp_path / "w.yaml").write_text("- project\n")
    _assert_bad_world(tmp_path, "w.yaml", "w.yaml")


def test_world_file_missing(tmp_path: Path) -> None:
    _assert_bad_world(tmp_path, "nosuch.yaml", "nosuch.yaml", "not found")


def test_world_with_a_malformed_key_name(tmp_path: Path) -> None:
    doc = make_world()
    doc["kms"][0]["key"] = RING
    write_world(tmp_path / "w.yaml", doc)
    _assert_bad_world(tmp_path, "w.yaml", "kms[0].key")


def test_world_edited_after_its_state_exists(w: WorldCli) -> None:
    assert w.plan("rotate-key", APP_KEY).code == 0
    assert w.apply().code == 0
    applied = w.dump()
    original = w.path.read_bytes()
    w.path.write_text(w.path.read_text() + "\n# an edit\n")
    for args in (["world", "dump"], ["inventory", APP_KEY], ["apply", "plan.json", "--yes"]):
        r = w(*args)
        assert_failed(r, 2, "error", "world.yaml", "world reset")
    # Nothing was silently dropped: restoring the file brings the applied state back.
    w.path.write_bytes(original)
    assert w.dump() == applied
    # `world reset` (after an edit) discards the state and reloads the file.
    w.path.write_text(w.path.read_text() + "\n# an edit\n")
    r = w("world", "reset")
    assert r.code == 0, r
    assert w.key_of(APP_KEY)["primary"] == 2


# -- plan files --------------------------------------------------------------------------------


def test_plan_file_missing(w: WorldCli) -> None:
    for command in (["apply", "nosuch.json", "--yes"], ["status", "nosuch.json"]):
        assert_bad_input(w, command, "nosuch.json", "not found")


def test_plan_file_not_json(w: WorldCli) -> None:
    (w.dir / "p.json").write_text("Plan: rotate-key on ...\n")
    for command in (["apply", "p.json", "--yes"], ["status", "p.json"]):
        assert_bad_input(w, command, "p.json", "not JSON")


def _plan_doc(w: WorldCli) -> dict[str, Any]:
    r = w.plan("rotate-key", APP_KEY, out="good.json")
    assert r.code == 0, r
    doc: dict[str, Any] = json.loads((w.dir / "good.json").read_text())
    return doc


@pytest.mark.parametrize(
    ("edit", "needles"),
    [
        (lambda d: d.pop("steps"), ["steps"]),
        (lambda d: d.update(kind="terraform.plan"), ["kind"]),
        (lambda d: d.update(schema_version=99), ["schema_version"]),
        (lambda d: d.update(extra=1), ["extra"]),
        (lambda d: d["steps"][0].update(kind="kms.explode"), ["steps[0].kind"]),
        (lambda d: d["params"].update(key="app"), ["params.key", "'app'"]),
        (lambda d: d["steps"].append(dict(d["steps"][0])), ["duplicate step"]),
    ],
    ids=[
        "no-steps",
        "wrong-kind",
        "schema-version",
        "unknown-field",
        "unknown-step-kind",
        "bad-key",
        "dup-step",
    ],
)
def test_plan_file_with_the_wrong_schema(w: WorldCli, edit: Any, needles: list[str]) -> None:
    doc = _plan_doc(w)
    edit(doc)
    (w.dir / "p.json").write_text(json.dumps(resealed(doc)))
    assert_bad_input(w, ["apply", "p.json", "--yes"], "p.json", *needles)


def test_plan_file_that_is_a_json_list(w: WorldCli) -> None:
    (w.dir / "p.json").write_text("[]")
    assert_bad_input(w, ["apply", "p.json", "--yes"], "p.json")


def test_plan_made_for_another_world(tmp_path: Path) -> None:
    a = WorldCli(tmp_path, make_world(), name="a.yaml")
    assert a.plan("rotate-key", APP_KEY).code == 0
    b = WorldCli(tmp_path, make_world(), name="b.yaml")
    assert_bad_input(b, ["apply", "plan.json", "--yes"], "world", "a.yaml", "b.yaml")
    assert a.key_of(APP_KEY)["primary"] == 2  # the plan's own world is untouched too


def test_plan_made_for_another_project(tmp_path: Path) -> None:
    a = WorldCli(tmp_path / "a", None)
    a.dir.mkdir()
    write_world(a.path, make_world())
    assert a.plan("rotate-key", APP_KEY).code == 0
    other = make_world(project="other")
    b = WorldCli(tmp_path / "b", None)
    b.dir.mkdir()
    write_world(b.path, other)
    (b.dir / "plan.json").write_bytes((a.dir / "plan.json").read_bytes())
    assert_bad_input(b, ["apply", "plan.json", "--yes"], "project", "demo", "other")


def test_project_flag_that_does_not_match_the_world(w: WorldCli) -> None:
    assert_bad_input(w, ["--project", "other", "inventory", APP_KEY], "--project", "other")


def test_world_commands_need_world(tmp_path: Path) -> None:
    r = run_cli(["world", "dump"], cwd=tmp_path)
    assert_failed(r, 2, "error", "--world")


# -- world advance ------------------------------------------------------------------------------


@pytest.mark.parametrize("duration", ["2x", "soon", "1y", "", "d", "1.5h", "h2"])
def test_world_advance_with_a_bad_duration(w: WorldCli, duration: str) -> None:
    assert_bad_input(w, ["world", "advance", duration], "DURATION", repr(duration))


def test_world_advance_backwards_is_refused(w: WorldCli) -> None:
    assert_bad_input(w, ["world", "advance", "--", "-1d"], "-1d")
