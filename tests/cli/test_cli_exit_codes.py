"""Exit codes (SPEC "Exit codes") and the stdout/stderr contract, through the CLI.

0 done, 1 failure while running, 2 bad input, 3 refused by a guard, 4 stale plan.
Every non-zero exit prints one final stderr line starting with error:/refused:/
stale:/waiting: naming the resource and the rule; `--output json` puts exactly one
JSON document on stdout.

Backends: fake; gcp over the wire (tests/wire/test_suites_over_the_wire.py runs this file again).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import WorldCli, assert_failed, run_cli
from worlds import (
    APP_KEY,
    BUCKET,
    ENCRYPTER_DECRYPTER,
    EU_KEY,
    NEW_KEY,
    OBJECT,
    STORAGE_AGENT,
    bucket,
    key,
    make_world,
    obj,
    v,
)

from rotator.model import IamPolicy


def versions_of(w: WorldCli, key_name: str = APP_KEY) -> dict[int, str]:
    return {int(n): s for n, s in w.key_of(key_name)["versions"].items()}


@pytest.fixture
def w(tmp_path: Path) -> WorldCli:
    return WorldCli(tmp_path, make_world())


# -- 0 --------------------------------------------------------------------------------------


def test_plan_with_work_exits_0_and_writes_nothing_to_the_world(w: WorldCli) -> None:
    before = w.dump()
    r = w.plan("rotate-key", APP_KEY)
    assert r.code == 0, r
    assert "Plan: rotate-key" in r.stdout
    assert "plan written to plan.json" in r.stderr
    assert (w.dir / "plan.json").exists()
    assert not (w.dir / "plan.json.journal").exists()
    assert w.dump() == before  # plan is read-only


def test_plan_and_apply_with_nothing_to_do_exit_0(tmp_path: Path) -> None:
    w = WorldCli(tmp_path, make_world(kms=[key(APP_KEY, {1: "DISABLED", 2: "DISABLED"}, primary=2)]))
    before = w.dump()
    plan = w.plan_json("disable-key", APP_KEY)
    assert plan["summary"]["versions_to_disable"] == 0
    assert all(s["changes"] == [] for s in plan["steps"])
    r = w.apply()
    assert r.code == 0, r
    assert w.dump() == before


def test_apply_complete_exits_0(w: WorldCli) -> None:
    assert w.plan("rotate-key", APP_KEY).code == 0
    r = w.apply()
    assert r.code == 0, r
    assert r.stdout.strip() == "Apply of plan.json: complete"
    assert not any(
        line.startswith(("error:", "refused:", "stale:", "waiting:")) for line in r.stderr.splitlines()
    )


# -- 1 --------------------------------------------------------------------------------------


def test_failure_while_running_exits_1_and_a_rerun_after_the_fix_resumes(tmp_path: Path) -> None:
    """The Storage agent loses Encrypter/Decrypter on the key after the plan (whose
    preflight saw it, R5): the rewrite fails, the journal says which step, a re-run
    resumes."""
    doc = make_world(kms=[key(APP_KEY, {1: "ENABLED", 2: "ENABLED"}, primary=2)])
    w = WorldCli(tmp_path, doc)
    assert w.plan("rotate-key", APP_KEY).code == 0

    def revoke(backend: Any) -> None:
        policy = backend.kms.get_iam_policy(APP_KEY)
        backend.kms.set_iam_policy(APP_KEY, IamPolicy(bindings={}, etag=policy.etag))

    w.change(revoke)
    r = w.json("apply", "plan.json", "--yes")
    assert_failed(r, 1, "error", f"gs://{BUCKET}/{OBJECT}", "R5")
    err = json.loads(r.stdout)["error"]
    assert (err["kind"], err["exit_code"]) == ("error", 1)

    s = w.status()
    assert s["complete"] is False and s["started"] is True
    states = {x["id"]: x for x in s["steps"]}
    assert states["new-primary-version"]["state"] == "done"
    assert states["rewrite-objects"]["state"] == "failed"
    assert "R5" in states["rewrite-objects"]["error"]
    assert states["disable-old-versions"]["state"] == "pending"
    # Nothing was disabled while an object still needs its version.
    assert versions_of(w) == {1: "ENABLED", 2: "ENABLED", 3: "ENABLED"}
    text = w("status", "plan.json")
    assert "not complete" in text.stdout and "failed" in text.stdout

    def grant(backend: Any) -> None:
        policy = backend.kms.get_iam_policy(APP_KEY)
        backend.kms.set_iam_policy(
            APP_KEY, IamPolicy(bindings={ENCRYPTER_DECRYPTER: [STORAGE_AGENT]}, etag=policy.etag)
        )

    w.change(grant)
    r = w.apply()
    assert r.code == 0, r
    assert "step new-primary-version" not in r.stderr  # done before: not run again
    assert versions_of(w) == {1: "DISABLED", 2: "DISABLED", 3: "ENABLED"}  # no version 4
    assert w.object_of(BUCKET, OBJECT)["kms_key_version"] == v(APP_KEY, 3)
    assert w.status()["complete"] is True


# -- 2 --------------------------------------------------------------------------------------


def test_bad_input_exits_2(w: WorldCli) -> None:
    r = w("plan", "rotate-key", "--key", "projects/demo/keyRings/ring")
    assert_failed(r, 2, "error", "--key", "projects/demo/keyRings/ring", "R1")


def test_apply_without_yes_in_a_non_interactive_run_exits_2_and_changes_nothing(w: WorldCli) -> None:
    assert w.plan("rotate-key", APP_KEY).code == 0
    before = w.dump()
    r = w("apply", "plan.json")
    assert_failed(r, 2, "error", "--yes")
    assert w.dump() == before
    assert not (w.dir / "plan.json.journal").exists()


# -- 3 --------------------------------------------------------------------------------------


def test_guard_refusal_exits_3(tmp_path: Path) -> None:
    w = WorldCli(tmp_path, make_world(kms=[key(APP_KEY, {1: "DISABLED", 2: "ENABLED"}, primary=2)]))
    r = w("plan", "destroy-versions", "--key", APP_KEY, "--set", "versions=1")
    assert_failed(r, 3, "refused", APP_KEY, "R14")


def test_location_guard_exits_3(w: WorldCli) -> None:
    r = w.plan("replace-key", APP_KEY, "--new-key", EU_KEY)
    assert_failed(r, 3, "refused", f"gs://{BUCKET}", "R7")


def test_destroy_guard_rechecks_at_apply_and_exits_3(tmp_path: Path) -> None:
    """A pin that appears between plan and apply is caught right before the destroy (R14)."""
    w = WorldCli(
        tmp_path,
        make_world(
            kms=[key(APP_KEY, {1: "DISABLED", 2: "ENABLED"}, primary=2)],
            storage=[bucket(objects=[obj(OBJECT, None)])],
        ),
    )
    r = w("plan", "destroy-versions", "--key", APP_KEY, "--set", "versions=1", "--out", "plan.json")
    assert r.code == 0, r

    def pin(backend: Any) -> None:
        # Someone writes an object under version 1 and puts the key back as planned:
        # the versions' states and the primary match the plan, but version 1 is pinned.
        kms = backend.kms
        kms.update_crypto_key_version(v(APP_KEY, 1), "ENABLED")
        kms.update_crypto_key_primary_version(APP_KEY, v(APP_KEY, 1))
        backend.storage.upload(BUCKET, "late.bin", 10, kms_key=APP_KEY)
        kms.update_crypto_key_primary_version(APP_KEY, v(APP_KEY, 2))
        kms.update_crypto_key_version(v(APP_KEY, 1), "DISABLED")

    w.change(pin)
    before = w.dump()
    r = w.apply()
    assert_failed(r, 3, "refused", APP_KEY, "version 1", "R14", "late.bin")
    assert w.dump() == before


# -- 4 --------------------------------------------------------------------------------------


def _set_primary_1(backend: Any) -> None:
    backend.kms.update_crypto_key_primary_version(APP_KEY, v(APP_KEY, 1))


def _new_primary(backend: Any) -> None:
    created = backend.kms.create_crypto_key_version(APP_KEY)
    backend.kms.update_crypto_key_primary_version(APP_KEY, created.name)


def _disable_1(backend: Any) -> None:
    backend.kms.update_crypto_key_version(v(APP_KEY, 1), "DISABLED")


@pytest.mark.parametrize(
    ("change", "needles"),
    [
        (_set_primary_1, [APP_KEY, "primary", "R2"]),
        (_new_primary, [APP_KEY, "primary", "R2"]),
        (_disable_1, [v(APP_KEY, 1), "DISABLED"]),
    ],
    ids=["primary-changed", "new-primary-version", "version-disabled"],
)
def test_stale_plan_exits_4_and_changes_nothing(w: WorldCli, change: Any, needles: list[str]) -> None:
    assert w.plan("rotate-key", APP_KEY).code == 0
    w.change(change)
    before = w.dump()
    r = w.apply()
    assert_failed(r, 4, "stale", *needles)
    assert w.dump() == before
    assert w.status()["complete"] is False


def test_stale_when_a_disabled_version_is_re_enabled(tmp_path: Path) -> None:
    w = WorldCli(
        tmp_path,
        make_world(
            kms=[key(APP_KEY, {1: "DISABLED", 2: "ENABLED"}, primary=2)],
            storage=[bucket(objects=[obj(OBJECT, v(APP_KEY, 2))], soft_delete=0)],
        ),
    )
    assert w.plan("rotate-key", APP_KEY).code == 0
    w.change(lambda b: b.kms.update_crypto_key_version(v(APP_KEY, 1), "ENABLED"))
    before = w.dump()
    r = w.apply()
    assert_failed(r, 4, "stale", v(APP_KEY, 1), "ENABLED")
    assert w.dump() == before


def test_stale_when_a_version_to_destroy_was_re_enabled(tmp_path: Path) -> None:
    w = WorldCli(
        tmp_path, make_world(kms=[key(APP_KEY, {1: "DISABLED", 2: "ENABLED"}, primary=2)], storage=[])
    )
    r = w("plan", "destroy-versions", "--key", APP_KEY, "--set", "versions=1", "--out", "plan.json")
    assert r.code == 0, r
    w.change(lambda b: b.kms.update_crypto_key_version(v(APP_KEY, 1), "ENABLED"))
    before = w.dump()
    r = w.apply()
    assert_failed(r, 4, "stale", v(APP_KEY, 1), "ENABLED")
    assert w.dump() == before


def test_a_hold_placed_after_the_plan_stops_apply_before_the_disable(w: WorldCli) -> None:
    """The world moved so that the disable step is no longer right: stop before it (4)."""
    assert w.plan("rotate-key", APP_KEY).code == 0
    w.change(lambda b: b.storage.set_holds(BUCKET, OBJECT, temporary=True, event_based=False))
    r = w.apply()
    assert_failed(r, 4, "stale", v(APP_KEY, 1), "R16")
    assert versions_of(w)[1] == "ENABLED"
    o = w.object_of(BUCKET, OBJECT)
    assert o["kms_key_version"] == v(APP_KEY, 1) and o["temporary_hold"] is True
    states = {x["id"]: x["state"] for x in w.status()["steps"]}
    assert states["disable-old-versions"] != "done"


# -- one JSON document on stdout ----------------------------------------------------------------


def test_output_json_is_one_document_for_every_command(w: WorldCli) -> None:
    docs: dict[str, Any] = {}
    runs = {
        "playbooks": ["playbooks"],
        "playbook": ["playbooks", "replace-key"],
        "inventory": ["inventory", APP_KEY],
        "plan": ["plan", "rotate-key", "--key", APP_KEY, "--out", "plan.json"],
        "status-before": ["status", "plan.json"],
        "apply": ["apply", "plan.json", "--yes"],
        "status": ["status", "plan.json"],
        "dump": ["world", "dump"],
        "advance": ["world", "advance", "1h"],
    }
    for name, args in runs.items():
        r = w.json(*args)
        assert r.code == 0, (name, r)
        docs[name] = json.loads(r.stdout)  # exactly one document, nothing else
    assert [p["name"] for p in docs["playbooks"]["playbooks"]] == [
        "destroy-versions",
        "disable-key",
        "replace-key",
        "rollback",
        "rotate-key",
    ]
    assert docs["inventory"]["key"] == APP_KEY
    assert docs["plan"]["kind"] == "rotator.plan"
    assert json.loads((w.dir / "plan.json").read_text())["steps"] == docs["plan"]["steps"]
    assert docs["apply"]["complete"] is True
    assert docs["status"]["complete"] is True
    assert docs["dump"]["project"] == "demo"
    assert docs["advance"]["now"] == "2026-11-22T01:00:00Z" and docs["advance"]["kind"] == "rotator.clock"


def test_output_json_equals_form_and_errors_are_one_document(w: WorldCli) -> None:
    r = run_cli(["--world", w.path.name, "--output=json", "inventory", APP_KEY], cwd=w.dir)
    assert r.code == 0 and json.loads(r.stdout)["key"] == APP_KEY
    for args, code in [
        (["plan", "nosuch", "--key", APP_KEY], 2),
        (["plan", "replace-key", "--key", APP_KEY, "--new-key", EU_KEY], 3),
        (["world", "advance", "soon"], 2),
    ]:
        r = w.json(*args)
        assert r.code == code, r
        err = json.loads(r.stdout)["error"]
        assert err["exit_code"] == code
        assert r.last_err.startswith(err["kind"] + ":")


def test_new_key_wrong_location_refusal_names_resource_and_rule_in_json(w: WorldCli) -> None:
    r = w.json("plan", "replace-key", "--key", APP_KEY, "--new-key", EU_KEY)
    err = json.loads(r.stdout)["error"]
    assert (err["kind"], err["rule"], err["resource"]) == ("refused", "R7", f"gs://{BUCKET}")


def test_new_key_must_exist(w: WorldCli) -> None:
    missing = NEW_KEY + "-missing"
    r = w.plan("replace-key", APP_KEY, "--new-key", missing)
    assert_failed(r, 2, "error", "--new-key", missing)
