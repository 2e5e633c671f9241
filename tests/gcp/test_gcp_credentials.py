"""Without credentials and without local endpoints, the real backend stops at once
with one `error:` line about credentials: no traceback, no hang.

Backends: gcp (without credentials or endpoints: it must stop at once)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_no_credentials_and_no_endpoints_is_one_error_line(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ROTATOR_", "GOOGLE_", "CLOUDSDK_", "STORAGE_EMULATOR"))
    }
    env.update(HOME=str(tmp_path), CLOUDSDK_CONFIG=str(tmp_path / "gcloud"), NO_GCE_CHECK="False")
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "rotator",
            "--project",
            "demo",
            "plan",
            "rotate-key",
            "--key",
            "projects/demo/locations/us-east1/keyRings/ring/cryptoKeys/app",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,  # a hang fails the test; how fast it is belongs to no assertion
    )
    assert run.returncode == 2
    assert run.stdout == ""
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("error: no Google Cloud credentials")
    assert "gcloud auth application-default login" in lines[0]
