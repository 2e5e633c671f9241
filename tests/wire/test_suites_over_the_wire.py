"""The scenario suites of the fake backend, run again through the gcp backend over the
wire: every CLI scenario and exit-code test, unchanged, with `--world W` replaced by
the official clients talking to tests/wire servers that serve W (helpers.run_cli with
ROTATOR_TEST_BACKEND=gcp)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SUITES = ["tests/test_cli_scenarios.py", "tests/test_playbook_scenarios.py", "tests/test_cli_exit_codes.py"]


def test_the_scenario_suites_pass_through_the_gcp_backend() -> None:
    env = dict(os.environ, ROTATOR_TEST_BACKEND="gcp")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *SUITES],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    summary = [line for line in run.stdout.splitlines() if " passed" in line or " failed" in line]
    assert run.returncode == 0, run.stdout[-4000:]
    assert summary and "failed" not in summary[-1]
