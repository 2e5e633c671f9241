"""The scenario suites of the fake backend, run again through the gcp backend over the
wire: every CLI scenario and exit-code test, unchanged, with `--world W` replaced by
the official clients talking to tests/wire servers that serve W (helpers.run_cli with
ROTATOR_TEST_BACKEND=gcp).

Backends: gcp over the wire (the suites it lists); fake (one plan, made on it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SUITES = [
    "tests/cli/test_cli_scenarios.py",
    "tests/cli/test_playbook_scenarios.py",
    "tests/cli/test_cli_exit_codes.py",
    "tests/safety/test_safety_bad_input.py",
    "tests/inventory/test_kms_inventory.py",
    "tests/plan/test_plan_contract.py",
    "tests/engine/test_interrupts.py::test_ctrl_c_mid_rewrite_exits_130_and_the_same_apply_finishes_exactly_once",
    "tests/engine/test_interrupts.py::test_sigterm_between_steps_exits_143",
    "tests/inventory/test_preflight.py",
    "tests/inventory/test_report.py",
    # the gs:// state tests that run through the CLI in this process
    "tests/state/test_state_in_bucket.py::test_plan_apply_status_show_with_the_plan_in_a_bucket",
    "tests/state/test_state_in_bucket.py::test_an_edited_plan_in_a_bucket_is_refused",
    "tests/state/test_state_in_bucket.py::test_a_waiting_apply_resumes_from_another_directory_and_home",
    "tests/state/test_state_in_bucket.py::test_out_over_a_waiting_apply_in_a_bucket_is_refused",
    "tests/state/test_state_in_bucket.py::"
    "test_a_live_lock_refuses_naming_its_owner_and_an_expired_one_is_taken_over",
    "tests/state/test_state_in_bucket.py::test_rollback_of_a_plan_in_a_bucket",
    "tests/state/test_state_in_bucket.py::test_rollback_takes_the_rolled_back_plans_lock",
    "tests/state/test_state_in_bucket.py::test_out_force_over_a_bucket_plan_with_a_live_lock_is_refused",
    "tests/state/test_state_in_bucket.py::test_state_in_a_bucket_protected_by_the_plans_key_is_refused_at_plan_time",
    "tests/state/test_state_in_bucket.py::test_state_in_a_bucket_protected_by_the_plans_key_is_refused_at_apply_time",
    "tests/state/test_state_in_bucket.py::test_a_plan_in_a_bucket_that_does_not_exist_is_bad_input",
    "tests/state/test_state_in_bucket.py::"
    "test_status_of_an_apply_on_another_host_is_running_while_its_lock_is_live",
]
# Two rows of the bad-input table are about the fake's own world, not an input the gcp
# backend can be given: `--project` against the world's project (over the wire Google
# answers for the project asked, a 403 naming it) and a plan edited to say "gcp" (every
# plan here is a gcp plan). Their gcp counterpart is the test below this one.
FAKE_ONLY = [
    "tests/safety/test_safety_bad_input.py::test_bad_input_exits_2_names_it_and_changes_nothing[project/mismatch]",
    "tests/safety/test_safety_bad_input.py::test_bad_input_exits_2_names_it_and_changes_nothing[plan/another-backend]",
]


def test_the_scenario_suites_pass_through_the_gcp_backend() -> None:
    env = dict(os.environ, ROTATOR_TEST_BACKEND="gcp")
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            *SUITES,
            *(f"--deselect={t}" for t in FAKE_ONLY),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    summary = [line for line in run.stdout.splitlines() if " passed" in line or " failed" in line]
    assert run.returncode == 0, run.stdout[-4000:]
    assert summary and "failed" not in summary[-1]


def test_a_plan_made_on_the_fake_is_refused_by_the_gcp_backend(tmp_path: Path, monkeypatch: Any) -> None:
    """The gcp side of the rows left out above: a plan from `--world` applied to Google
    is exit 2 naming the backend, and nothing changes; so is another project's plan."""
    from harness import serve_world_file
    from helpers import assert_failed, run_cli
    from worlds import APP_KEY, make_world, write_world

    from rotator.backends.fake import open_world

    monkeypatch.delenv("ROTATOR_TEST_BACKEND", raising=False)
    world = write_world(tmp_path / "world.yaml", make_world())
    r = run_cli(
        ["--world", str(world), "plan", "rotate-key", "--key", APP_KEY, "--out", "plan.json"], cwd=tmp_path
    )
    assert r.code == 0, r
    before = open_world(str(world)).dump()
    with serve_world_file(world, tmp_path / "cache") as (env, storage, _grpc):
        for k, val in env.items():
            monkeypatch.setenv(k, val)
        r = run_cli(["apply", "plan.json", "--yes"], cwd=tmp_path)
        assert_failed(r, 2, "error", "backend", "fake")
        r = run_cli(["--project", "demo-2", "plan", "rotate-key", "--key", APP_KEY], cwd=tmp_path)
        assert_failed(r, 1, "error", "projects/demo-2", "resourcemanager.projects.get")
        assert storage.count(method="POST") == 0
    assert open_world(str(world)).dump() == before
