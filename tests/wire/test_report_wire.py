"""`report` over the wire lists each bucket and each service once per project, however
many keys it reports (counted on the servers, not timed): the gcp backend's side of
tests/inventory/test_report.py::test_report_lists_each_bucket_and_service_once_whatever_the_number_of_keys.

Backends: gcp over the wire."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from grpc_server import KMS, KMS_DASHBOARD, KMS_INVENTORY, GrpcServer
from harness import serve_world_file
from storage_http import StorageServer
from worlds import APP_KEY, fleet_on_shared_buckets

from rotator.backends.gcp import GcpBackend
from rotator.backends.gcp.retry import RetryPolicy
from rotator.inventory import scan_key
from rotator.report import build_report

NOT_LISTINGS = {KMS, KMS_INVENTORY, KMS_DASHBOARD}  # per key by nature (versions, summary)


@pytest.fixture
def served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[GcpBackend, StorageServer, GrpcServer]]:
    path = tmp_path / "world.yaml"
    path.write_text(yaml.safe_dump(fleet_on_shared_buckets(), sort_keys=False))
    monkeypatch.setenv("ROTATOR_ORGANIZATION", "")
    with serve_world_file(path, tmp_path / "cache") as (env, storage, grpc_server):
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        yield GcpBackend("demo", retry=RetryPolicy(sleep=lambda _s: None)), storage, grpc_server


def _listings(storage: StorageServer, grpc_server: GrpcServer) -> Counter[str]:
    counted = Counter(grpc_server.methods_called())
    for service in NOT_LISTINGS:
        counted.subtract(grpc_server.methods_called(service))
    counted = +counted  # drop the zeros
    counted["objects.list"] = storage.count("objects.list")
    counted["buckets.list"] = storage.count("buckets.list")
    return counted


def test_report_over_the_wire_lists_as_much_as_one_key_does(
    served: tuple[GcpBackend, StorageServer, GrpcServer],
) -> None:
    gcp, storage, grpc_server = served
    scan_key(gcp, APP_KEY)  # one key: every bucket, database, backup, job, function, repository
    one = _listings(storage, grpc_server)
    assert one["objects.list"] >= 4 and one["buckets.list"] == 1
    storage.clear_log()
    grpc_server.clear()
    report = build_report(gcp, ["demo"])
    assert len(report["keys"]) >= 9
    every = _listings(storage, grpc_server)
    # Cloud Run and Artifact Registry list a region at a time: once for each region a
    # key is in (R7), never twice.
    for method in ("ListServices", "ListRepositories"):
        parents = [r.parent for r in grpc_server.requests(method)]
        assert len(parents) == len(set(parents)), (method, parents)
        every.pop(method, None), one.pop(method, None)
    assert every == one
