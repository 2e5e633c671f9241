"""The same scenarios on both backends: the fake in process, and the gcp backend
through the official clients over the wire (tests/wire servers over the same kind of
world). Each scenario runs twice from identical worlds and must end in the same world,
with the same exit codes and the same refusal dates.

Backends: fake; gcp over the wire (the same scenarios on both, side by side)."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import serve_world_file
from helpers import run_cli

ROOT = Path(__file__).resolve().parents[2]
DEMO = yaml.safe_load((ROOT / "playbooks/examples/demo-world.yaml").read_text())
KEY = "projects/demo/locations/us-east1/keyRings/ring/cryptoKeys/app"
NEW = "projects/demo/locations/us-east1/keyRings/ring/cryptoKeys/app-2026"
OTHER_SERVICES = ("firestore", "dataflow", "run", "functions")


def storage_only() -> dict[str, Any]:
    world = copy.deepcopy(DEMO)
    for s in OTHER_SERVICES:
        world.pop(s, None)
    return world


class Rotator:
    """rotator on one backend, over its own copy of a world."""

    def __init__(
        self,
        backend: str,
        world: dict[str, Any],
        folder: Path,
        stack: ExitStack,
        monkeypatch: pytest.MonkeyPatch,
    ):
        folder.mkdir()
        self.backend, self.folder = backend, folder
        self.world = folder / "world.yaml"
        self.world.write_text(yaml.safe_dump(world, sort_keys=False))
        self.servers: Any = None
        if backend == "gcp":
            env, storage, grpc_server = stack.enter_context(serve_world_file(self.world, folder / "cache"))
            self.servers = (storage, grpc_server)
            for k, v in env.items():
                monkeypatch.setenv(k, v)
        self.codes: list[int] = []
        self.last_lines: list[str] = []

    def __call__(self, *args: str) -> Any:
        argv = list(args) if self.backend == "gcp" else ["--world", str(self.world), *args]
        r = run_cli(argv, cwd=self.folder)
        self.codes.append(r.code)
        self.last_lines.append(r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "")
        return r

    def world_cmd(self, *args: str) -> Any:
        return run_cli(["--world", str(self.world), "world", *args], cwd=self.folder)

    def dump(self) -> dict[str, Any]:
        r = self.world_cmd("dump")
        assert r.code == 0, r.stderr
        return yaml.safe_load(r.stdout)


def both(
    world: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scenario: Any
) -> tuple[Rotator, Rotator]:
    """Run `scenario` on the fake, then over the wire; return both runs."""
    runs = []
    for backend in ("fake", "gcp"):
        with ExitStack() as stack, monkeypatch.context() as mp:
            r = Rotator(backend, world, tmp_path / backend, stack, mp)
            scenario(r)
            r.final = r.dump()  # type: ignore[attr-defined]
            runs.append(r)
    fake, gcp = runs
    assert gcp.codes == fake.codes, (fake.last_lines, gcp.last_lines)
    assert gcp.final == fake.final  # type: ignore[attr-defined]
    return fake, gcp


def _rotate_then_destroy(r: Rotator) -> None:
    r("plan", "rotate-key", "--key", KEY, "--out", "rotate.json")
    r("apply", "rotate.json", "--yes")
    r.world_cmd("advance", "6h")
    r("apply", "rotate.json", "--yes")
    r("plan", "destroy-versions", "--key", KEY, "--set", "versions=1")
    r.world_cmd("advance", "14d")
    r("plan", "destroy-versions", "--key", KEY, "--set", "versions=1", "--out", "destroy.json")
    r("apply", "destroy.json", "--yes")


def test_storage_rotate_then_destroy_is_the_same_on_both_backends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, gcp = both(storage_only(), tmp_path, monkeypatch, _rotate_then_destroy)
    assert fake.codes == [0, 0, 0, 3, 0, 0]
    versions = {k["key"]: k["versions"] for k in gcp.final["kms"]}[KEY]  # type: ignore[attr-defined]
    assert versions == {1: "DESTROY_SCHEDULED", 2: "ENABLED", 3: "ENABLED", 4: "ENABLED"}
    assert "frees up 2026-11-29T00:00:00Z" in gcp.last_lines[3]


def test_five_services_rotate_waits_then_finishes_the_same_on_both_backends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, gcp = both(copy.deepcopy(DEMO), tmp_path, monkeypatch, _rotate_then_destroy)
    assert fake.codes == [0, 75, 0, 3, 0, 0]
    assert gcp.last_lines[1].startswith("waiting:") and "R21" in gcp.last_lines[1]
    assert "frees up 2026-12-05T00:00:00Z" in gcp.last_lines[3]  # the backup's expiry (R24)


def test_replace_key_is_the_same_on_both_backends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def scenario(r: Rotator) -> None:
        r(
            "plan",
            "replace-key",
            "--key",
            KEY,
            "--new-key",
            NEW,
            "--set",
            "firestore=restore",
            "--out",
            "p.json",
        )
        r("apply", "p.json", "--yes")
        r(
            "plan",
            "replace-key",
            "--key",
            KEY,
            "--new-key",
            "projects/demo/locations/europe-west1/keyRings/ring/cryptoKeys/app-eu",
        )

    fake, gcp = both(copy.deepcopy(DEMO), tmp_path, monkeypatch, scenario)
    assert fake.codes == [0, 0, 3]
    assert "R7" in gcp.last_lines[2]
    databases = [d["database"] for d in gcp.final["firestore"]]  # type: ignore[attr-defined]
    assert any(d != "projects/demo/databases/(default)" for d in databases)


def test_disable_key_is_the_same_on_both_backends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def scenario(r: Rotator) -> None:
        r("plan", "disable-key", "--key", KEY, "--out", "p.json")
        r("apply", "p.json", "--yes")

    fake, gcp = both(copy.deepcopy(DEMO), tmp_path, monkeypatch, scenario)
    assert fake.codes == [0, 0]
    jobs = {j["name"]: j for j in gcp.final["dataflow"]}  # type: ignore[attr-defined]
    assert [s["state"] for s in jobs["ingest"]["snapshots"]] == ["READY"]
    assert set({k["key"]: k["versions"] for k in gcp.final["kms"]}[KEY].values()) == {"DISABLED"}  # type: ignore[attr-defined]


def test_plans_match_step_for_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plans: dict[str, Any] = {}

    def scenario(r: Rotator) -> None:
        out = r("--output", "json", "plan", "rotate-key", "--key", KEY)
        plans[r.backend] = json.loads(out.stdout)

    both(copy.deepcopy(DEMO), tmp_path, monkeypatch, scenario)
    strip = lambda p: [(s["id"], s["changes"], s["data"].get("keep")) for s in p["steps"]]  # noqa: E731
    assert strip(plans["gcp"]) == strip(plans["fake"])
    assert plans["gcp"]["summary"] == plans["fake"]["summary"]
    assert plans["gcp"]["inventory"]["kms_inventory_cross_check"].endswith("0 not covered by rotator")


@pytest.fixture
def gcp_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rotator]:
    with ExitStack() as stack:
        yield Rotator("gcp", storage_only(), tmp_path / "gcp", stack, monkeypatch)
