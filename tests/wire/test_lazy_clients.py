"""Each service's gcp adapter (rotator/services/<name>/gcp.py) imports its client
library on first use: a plan that looks only at Cloud Storage never loads the other
services' libraries (about 0.3 s of every process start together). Checked over the
wire, in a fresh interpreter, on the demo world where every service has resources.
A scan that does read them has them made on a thread of their own (GcpBackend.prepare)
while it lists Cloud Storage: once each; where the thread fails, made again (and any
error raised) where the adapter is used.

Backends: gcp over the wire."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import serve_world_file

from rotator import apierrors as api
from rotator.backends.gcp import GcpBackend
from rotator.backends.gcp.retry import RetryPolicy
from rotator.inventory import scan_key

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


@pytest.fixture
def gcp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[GcpBackend]:
    world = tmp_path / "world.yaml"
    world.write_text((ROOT / "playbooks/examples/demo-world.yaml").read_text())
    with serve_world_file(world, tmp_path / "cache") as (env, _storage, _grpc):
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        yield GcpBackend("demo", retry=RetryPolicy(sleep=lambda _s: None))


def _connects(gcp: GcpBackend, monkeypatch: pytest.MonkeyPatch, fail: str = "") -> list[tuple[str, str]]:
    """Spy on the backend's adapters being made: (service, thread) each time."""
    made: list[tuple[str, str]] = []
    inner = gcp._connect

    def connect(name: str) -> object:
        made.append((name, threading.current_thread().name))
        if name == fail:
            raise api.Unavailable(f"{name}: connection refused")
        return inner(name)

    monkeypatch.setattr(gcp, "_connect", connect)
    return made


def test_prepared_adapters_are_made_once_each_on_their_own_thread(
    gcp: GcpBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = _connects(gcp, monkeypatch)
    gcp.prepare(["storage", "run", "functions"])  # Cloud Storage's is made with the backend
    gcp.prepare(["run"])  # already coming: not made twice
    run, functions = gcp.run, gcp.functions
    assert gcp.run is run and gcp.functions is functions
    assert made == [("run", "rotator-connect"), ("functions", "rotator-connect")]
    assert run.services.list_services  # a working adapter (its client)


def test_an_adapter_that_fails_on_the_thread_is_made_again_where_it_is_used(
    gcp: GcpBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure on the thread (e.g. an import that clashed with one on the main thread)
    never fails the run by itself: the adapter is made again on the thread that uses it,
    and an error there is raised there (and tried anew on the next use), as without
    prepare."""
    made = _connects(gcp, monkeypatch, fail="run")
    gcp.prepare(["run", "functions"])
    with pytest.raises(api.Unavailable, match="run: connection refused"):
        gcp.run  # noqa: B018
    with pytest.raises(api.Unavailable):
        gcp.run  # noqa: B018
    main = threading.current_thread().name
    assert [thread for name, thread in made if name == "run"] == ["rotator-connect", main, main]
    assert gcp.functions is not None  # made on the thread, unaffected
    assert [thread for name, thread in made if name == "functions"] == ["rotator-connect"]


def test_a_scan_prepares_the_services_it_reads_before_it_lists_buckets(
    gcp: GcpBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = _connects(gcp, monkeypatch)
    scan_key(gcp, KEY, services=["storage", "firestore", "run"])
    assert made == [("firestore", "rotator-connect"), ("run", "rotator-connect")]
