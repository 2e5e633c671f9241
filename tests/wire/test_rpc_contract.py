"""The gcp backend against servers that answer as Google's API references say (the
contract in rotator/backends/gcp/CONTRACT.md), for each finding of issue 11. The
fake-side twins are in tests/test_google_contract.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from grpc_server import GrpcServer
from harness import serve_world_file
from services_world import APP_KEY, SERVICE, services_world
from storage_http import StorageServer

from rotator.backends.gcp import GcpBackend
from rotator.backends.gcp.retry import RetryPolicy
from rotator.inventory import run_services


class Wire:
    def __init__(self, gcp: GcpBackend, grpc: GrpcServer, storage: StorageServer, world: Path):
        self.gcp, self.grpc, self.storage, self.world = gcp, grpc, storage, world


@pytest.fixture
def world_doc() -> dict[str, Any]:
    return services_world()


@pytest.fixture
def wire(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, world_doc: dict[str, Any]) -> Iterator[Wire]:
    path = tmp_path / "world.yaml"
    path.write_text(yaml.safe_dump(world_doc, sort_keys=False))
    with serve_world_file(path, tmp_path / "cache") as (env, storage, grpc_server):
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        gcp = GcpBackend("demo", retry=RetryPolicy(sleep=lambda _s: None))
        yield Wire(gcp, grpc_server, storage, path)


# -- Cloud Run: ListServices per region ---------------------------------------------------------
def test_cloud_run_is_listed_in_the_keys_region_never_with_the_wildcard(wire: Wire) -> None:
    assert [s.name for s in run_services(wire.gcp, APP_KEY)] == [SERVICE]
    parents = [r.parent for r in wire.grpc.requests("ListServices")]
    assert parents == ["projects/demo/locations/us-east1"]
