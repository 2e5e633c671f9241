"""Each service's gcp adapter (rotator/services/<name>/gcp.py) imports its client
library on first use: a plan that looks only at Cloud Storage never loads the other
services' libraries (about 0.3 s of every process start together). Checked over the
wire, in a fresh interpreter, on the demo world where every service has resources.

Backends: gcp over the wire."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from harness import serve_world_file

ROOT = Path(__file__).resolve().parents[2]
KEY = "projects/demo/locations/us-east1/keyRings/ring/cryptoKeys/app"
OTHER_CLIENTS = (
    "google.cloud.firestore_admin_v1",
    "google.cloud.dataflow_v1beta3",
    "google.cloud.run_v2",
    "google.cloud.functions_v2",
    "google.cloud.artifactregistry_v1",
)

# Plan in this interpreter, then write down which google.cloud packages it imported.
SCRIPT = """
import sys
from rotator.cli import main
try:
    main(sys.argv[2:])
except SystemExit as e:
    code = e.code
else:
    code = 0
loaded = sorted(m for m in sys.modules if m.startswith("google.cloud."))
open(sys.argv[1], "w").write(f"exit {code}\\n" + "\\n".join(loaded))
"""


def test_a_storage_only_plan_loads_no_other_services_client_library(tmp_path: Path) -> None:
    world = tmp_path / "world.yaml"
    world.write_text((ROOT / "playbooks/examples/demo-world.yaml").read_text())
    report = tmp_path / "modules.txt"
    with serve_world_file(world, tmp_path / "cache") as (env, _storage, _grpc):
        argv = ["plan", "rotate-key", "--key", KEY, "--services", "storage", "--out", "plan.json"]
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT, str(report), *argv],
            env={**os.environ, **env},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr
    first, *loaded = report.read_text().splitlines()
    assert first == "exit 0", done.stderr
    # not vacuous: the plan did talk to Cloud Storage and Cloud KMS through their clients
    assert "google.cloud.storage" in loaded and "google.cloud.kms_v1" in loaded
    assert [m for m in loaded if m.startswith(OTHER_CLIENTS)] == []
