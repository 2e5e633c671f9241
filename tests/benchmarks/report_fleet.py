"""`rotator report` over 500 keys in two projects: wall time, on the fake backend and on
the gcp backend over the wire (tests/wire servers in this process).

    .venv/bin/python tests/benchmarks/report_fleet.py [--keys 500]

Target (issue 12): under 30 s, with Cloud KMS reads never above the quota per project
per minute (300 by default; counted by tests/inventory/test_report.py, not timed here). 500 keys in
two projects are 250 reads per project: under the quota, so no read waits.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from common import ROTATOR, machine, table, write_section

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "wire"))


def fleet(keys: int) -> dict[str, Any]:
    agent = "serviceAccount:service-111111111111@gs-project-accounts.iam.gserviceaccount.com"
    kms = [
        {
            "key": f"projects/{p}/locations/us-east1/keyRings/r{i // 50}/cryptoKeys/k{i}",
            "primary": 2,
            "versions": {1: "ENABLED", 2: "ENABLED"},
            "rotation_period": "90d",
            "iam": {"roles/cloudkms.cryptoKeyEncrypterDecrypter": [agent]},
        }
        for p in ("demo", "other")
        for i in range(keys // 2)
    ]
    first = kms[0]["key"]
    objects = [{"name": f"o{i}", "kms_key_version": f"{first}/cryptoKeyVersions/1"} for i in range(100)]
    return {
        "project": "demo",
        "kms": kms,
        "storage": [{"bucket": "fleet-data", "location": "US-EAST1", "objects": objects}],
    }


def timed(cmd: list[str], env: dict[str, str], cwd: Path, expected: int) -> float:
    start = time.monotonic()
    r = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    took = time.monotonic() - start
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {r.stderr[-2000:]}")
    import json

    keys = json.loads(r.stdout)["summary"]["keys"]
    if keys != expected:
        raise SystemExit(f"the report listed {keys} keys, not {expected}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keys", type=int, default=500)
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp())
    world = folder / "world.yaml"
    world.write_text(yaml.safe_dump(fleet(args.keys)))
    report = ["--output", "json", "report", "--project", "demo", "--project", "other"]
    env = dict(os.environ, ROTATOR_ORGANIZATION="")
    subprocess.run(
        [*ROTATOR, "--world", str(world), "world", "dump"], env=env, capture_output=True, check=True
    )
    fake = timed([*ROTATOR, "--world", str(world), *report], env, folder, args.keys)
    print(f"fake backend: {fake:.1f} s", flush=True)
    from harness import serve_world_file

    with serve_world_file(world, folder / "cache") as (wire_env, _storage, _grpc):
        gcp = timed([*ROTATOR, *report], {**env, **wire_env}, folder, args.keys)
    print(f"gcp backend over the wire: {gcp:.1f} s", flush=True)
    body = table(
        ["backend", "keys", "projects", "seconds", "target"],
        [
            ["fake", args.keys, 2, f"{fake:.1f}", "< 30 s"],
            ["gcp (wire)", args.keys, 2, f"{gcp:.1f}", "< 30 s"],
        ],
    )
    write_section("report_fleet", f"{machine()}\n\n{body}")


if __name__ == "__main__":
    main()
