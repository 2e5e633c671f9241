"""README.md's two commands work as written, and CI runs exactly its test command.

Backends: fake (the demo, on its world file)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def _block(tag: str) -> str:
    m = re.search(rf"<!-- readme-test: {tag} -->\n```sh\n(.*?)```", README, re.S)
    assert m, f"README has no `readme-test: {tag}` block"
    return m.group(1).strip()


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert _block("tests") in ci


def test_setup_installs_the_project_as_ci_does() -> None:
    setup = _block("setup")
    install, _, demo = setup.rpartition(" && ")
    assert install == "python3 -m venv .venv && .venv/bin/pip install -e '.[dev]'"
    assert demo == "playbooks/examples/demo.sh"


def test_the_demo_runs_as_written_and_shows_what_the_readme_shows(tmp_path: Path) -> None:
    # The install half of the setup command is what .ci/run did already; run the rest
    # exactly as written, with this interpreter's rotator.
    demo = _block("setup").rpartition(" && ")[2]
    env = dict(os.environ, ROTATOR=str(Path(sys.executable).parent / "rotator"), TMPDIR=str(tmp_path))
    out = subprocess.run(["bash", "-c", demo], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    text = out.stdout + out.stderr
    assert "Plan: 204 objects to rewrite (1.8 MiB), 1 version to disable, 2 pinned." in text
    # Firestore re-encryption holds the first apply (R21); after the clock moves it resumes.
    assert "expected by 2026-11-22T06:00:00Z); the old versions stay enabled (R21)" in text
    assert "(exit 75)" in text
    assert "cryptoKeyVersions/1: DISABLED" in text
    assert "version 1 pinned (frees up 2026-12-05T00:00:00Z)" in text
    assert "[R24; frees 2026-12-05T00:00:00Z]" in text
    assert "DESTROY_SCHEDULED until 2027-01-05T06:00:00Z" in text
    # The README's own copy of the session is the session the demo prints.
    for line in (
        "Plan: 204 objects to rewrite (1.8 MiB), 1 version to disable, 2 pinned.",
        "    ! keep version 2: pinned",
        "(exit 75)",
        "cryptoKeyVersions/1 (DESTROYED after 2027-01-05T06:00:00Z)",
    ):
        assert line in README
        assert line in text
