"""Faults over the wire: what the gcp backend retries (429, 503, UNAVAILABLE), what it
never retries (403, 404, 412), and the message for a missing permission.

Backends: gcp over the wire."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from grpc_server import Fault as GrpcFault
from harness import serve_world_file
from storage_http import Fault

from rotator import playbooks
from rotator.backends.fake import open_world
from rotator.backends.gcp import GcpBackend
from rotator.backends.gcp.retry import RetryPolicy
from rotator.engine import apply_plan
from rotator.errors import Failure
from rotator.plan import build_plan, resolve_params

ROOT = Path(__file__).resolve().parents[2]
KEY = "projects/demo/locations/us-east1/keyRings/ring/cryptoKeys/app"
V = KEY + "/cryptoKeyVersions/"
AGENT = "serviceAccount:service-111111111111@gs-project-accounts.iam.gserviceaccount.com"


def world(objects: int = 5) -> dict[str, Any]:
    return {
        "project": "demo",
        "kms": [
            {
                "key": KEY,
                "primary": 2,
                "versions": {1: "ENABLED", 2: "ENABLED"},
                "iam": {"roles/cloudkms.cryptoKeyEncrypterDecrypter": [AGENT]},
            }
        ],
        "storage": [
            {
                "bucket": "bkt",
                "location": "US-EAST1",
                "default_kms_key": KEY,
                "soft_delete": 0,
                "generate": [{"prefix": "o/", "count": objects, "kms_key_version": V + "1"}],
            }
        ],
    }


class Wire:
    def __init__(self, tmp: Path, monkeypatch: pytest.MonkeyPatch, doc: dict[str, Any]):
        self.path = tmp / "world.yaml"
        self.path.write_text(yaml.safe_dump(copy.deepcopy(doc)))
        self.plan_path = str(tmp / "plan.json")
        self.tmp, self.monkeypatch = tmp, monkeypatch
        self.retries: list[tuple[str, int]] = []

    def start(self) -> Iterator[Wire]:
        with serve_world_file(self.path, self.tmp / "cache") as (env, storage, grpc_server):
            for k, v in env.items():
                self.monkeypatch.setenv(k, v)
            self.storage, self.grpc = storage, grpc_server
            self.gcp = GcpBackend(
                "demo",
                retry=RetryPolicy(
                    sleep=lambda _s: None, on_retry=lambda e, n: self.retries.append((type(e).__name__, n))
                ),
            )
            yield self

    def rotate(self) -> dict[str, Any]:
        pb = playbooks.load("rotate-key")
        doc = build_plan(self.gcp, pb, resolve_params(pb, KEY, None, {}))
        return apply_plan(self.gcp, doc, "sha", self.plan_path, concurrency=2)

    def fake(self) -> Any:
        return open_world(str(self.path))


@pytest.fixture
def wire(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Wire]:
    yield from Wire(tmp_path, monkeypatch, world()).start()


def live_versions(w: Wire) -> set[str | None]:
    return {o.kms_key_version for o in w.fake().storage.list_objects("bkt").items}


@pytest.mark.parametrize("status", [429, 503])
def test_storage_throttling_and_unavailability_are_retried(wire: Wire, status: int) -> None:
    wire.storage.faults.append(Fault(op="objects.rewrite", status=status, times=3))
    wire.storage.faults.append(Fault(op="objects.list", status=status, times=1))
    assert wire.rotate()["complete"]
    assert live_versions(wire) == {V + "3"}
    assert len(wire.retries) == 4
    assert wire.storage.count(op="objects.rewrite") == 5 + 3  # each retried call once more


def test_kms_unavailable_is_retried(wire: Wire) -> None:
    wire.grpc.faults.append(
        GrpcFault(method="UpdateCryptoKeyVersion", code=grpc.StatusCode.UNAVAILABLE, times=2)
    )
    wire.grpc.faults.append(
        GrpcFault(method="GetCryptoKey", code=grpc.StatusCode.RESOURCE_EXHAUSTED, times=1)
    )
    assert wire.rotate()["complete"]
    assert wire.fake().kms.get_crypto_key_version(V + "1").state == "DISABLED"
    assert [n for n, _ in wire.retries].count("ServiceUnavailable") == 2


def test_a_forbidden_rewrite_is_not_retried_and_names_the_permission(wire: Wire) -> None:
    wire.storage.faults.append(Fault(op="objects.rewrite", status=403, object="o/2"))
    with pytest.raises(Failure) as err:
        wire.rotate()
    assert "storage.objects.create" in err.value.message and "gs://bkt/o/2" in err.value.message
    assert wire.storage.count(op="objects.rewrite", object="o/2") == 1
    # The other objects moved; o/2 keeps version 1, and version 1 stays enabled.
    assert live_versions(wire) == {V + "1", V + "3"}
    assert wire.fake().kms.get_crypto_key_version(V + "1").state == "ENABLED"


def test_a_412_is_never_retried_blindly_the_object_is_read_again(wire: Wire) -> None:
    wire.storage.faults.append(Fault(op="objects.rewrite", status=412, object="o/1", times=1))
    assert wire.rotate()["complete"]
    ops = [r.op for r in wire.storage.requests if r.object == "o/1"]
    # 412 -> a GET of the object (the re-check), then one more rewrite with its generation.
    assert ops == ["objects.rewrite", "objects.get", "objects.rewrite"]
    assert wire.retries == []


def test_a_404_is_not_retried(wire: Wire) -> None:
    from rotator import apierrors as api

    with pytest.raises(api.NotFound):
        wire.gcp.storage.get_object("bkt", "no-such-object")
    assert wire.storage.count(op="objects.get", object="no-such-object") == 1
    assert wire.retries == []


def test_a_kms_permission_error_names_the_permission(wire: Wire) -> None:
    from rotator import apierrors as api

    wire.grpc.faults.append(
        GrpcFault(method="DestroyCryptoKeyVersion", code=grpc.StatusCode.PERMISSION_DENIED)
    )
    with pytest.raises(api.PermissionDenied) as err:
        wire.gcp.kms.destroy_crypto_key_version(V + "1")
    assert "cloudkms.cryptoKeyVersions.destroy" in err.value.message and V + "1" in err.value.message


def test_a_resource_rotator_does_not_cover_is_reported_and_keeps_its_version(wire: Wire) -> None:
    from google.cloud import kms_inventory_v1 as inv

    table = "//bigquery.googleapis.com/projects/demo/datasets/sales/tables/orders"
    wire.grpc.extra_protected[KEY] = [
        inv.ProtectedResource(
            name=table,
            project="projects/111111111111",
            project_id="demo",
            resource_type="bigquery.googleapis.com/Table",
            location="us-east1",
            crypto_key_versions=[V + "1"],
        )
    ]
    pb = playbooks.load("rotate-key")
    doc = build_plan(wire.gcp, pb, resolve_params(pb, KEY, None, {}))
    assert doc["inventory"]["kms_inventory_cross_check"].endswith(
        ", 1 not covered by rotator (bigquery.googleapis.com/Table: 1)"
    )
    disable = next(s for s in doc["steps"] if s["kind"] == "kms.disable_versions")
    # Version 2 is free and disabled; version 1 is kept: the table still needs it.
    assert [c["version"] for c in disable["changes"]] == [V + "2"]
    assert any(table in reason and "R13" in reason for reason in disable["data"]["keep"]["1"])
    from rotator.render import plan_text

    assert "1 not covered by rotator" in plan_text(doc)


def test_throttled_writes_tell_the_engine_which_bucket_to_slow_down(wire: Wire) -> None:
    told: list[str] = []
    wire.gcp.storage.on_throttle = told.append
    wire.storage.faults.append(Fault(op="objects.rewrite", status=429, times=2))
    obj = wire.gcp.storage.get_object("bkt", "o/0")
    result = wire.gcp.storage.rewrite_object(
        "bkt", "o/0", destination_kms_key=KEY, if_generation_match=obj.generation
    )
    assert result.done
    assert told == ["bkt", "bkt"]


def test_a_throttled_rewrite_paced_by_its_bucket_backs_off_from_a_tenth_of_a_second(wire: Wire) -> None:
    from rotator.ratelimit import PACED_FIRST_BACKOFF

    slept: list[float] = []
    wire.gcp.storage.retry.policy.sleep = slept.append
    obj = wire.gcp.storage.get_object("bkt", "o/0")
    # Unpaced (no engine listening): the policy's own first backoff.
    wire.storage.faults.append(Fault(op="objects.rewrite", status=503, times=1))
    wire.gcp.storage.rewrite_object("bkt", "o/0", destination_kms_key=KEY, if_generation_match=obj.generation)
    initial = wire.gcp.storage.retry.policy.initial
    assert initial <= slept[0] <= 2 * initial
    # Paced: the bucket's rate eases the load, the backoff starts short and doubles.
    slept.clear()
    wire.gcp.storage.on_throttle = lambda _bucket: None
    obj = wire.gcp.storage.get_object("bkt", "o/1")
    wire.storage.faults.append(Fault(op="objects.rewrite", status=429, times=3))
    result = wire.gcp.storage.rewrite_object(
        "bkt", "o/1", destination_kms_key=KEY, if_generation_match=obj.generation
    )
    assert result.done
    assert len(slept) == 3
    for n, wait in enumerate(slept):
        low = PACED_FIRST_BACKOFF * 2**n
        assert low <= wait <= low + PACED_FIRST_BACKOFF
    assert PACED_FIRST_BACKOFF < initial


def test_the_batch_engine_over_the_wire(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rotator.errors import Waiting

    doc = world(objects=6)
    doc["storage"].append({"bucket": "manifests", "location": "US-EAST1", "default_kms_key": None})
    for w in Wire(tmp_path, monkeypatch, doc).start():
        pb = playbooks.load("rotate-key")
        plan = build_plan(w.gcp, pb, resolve_params(pb, KEY, None, {}))
        kw: dict[str, Any] = {"engine": "batch", "manifest_bucket": "manifests"}
        with pytest.raises(Waiting):
            apply_plan(w.gcp, plan, "sha", w.plan_path, **kw)
        # The manifest went up through the JSON API, the job through the batch gRPC API.
        assert w.storage.count(op="objects.insert", bucket="manifests") == 1
        assert ("google.cloud.storagebatchoperations.v1.StorageBatchOperations", "CreateJob") in {
            (c.service, c.method) for c in w.grpc.calls
        }
        w.fake().advance(timedelta(hours=1))
        assert apply_plan(w.gcp, plan, "sha", w.plan_path, **kw)["complete"]
        assert live_versions(w) == {V + "3"}
        assert w.storage.count(op="objects.rewrite") == 0  # no rewrite left this machine


def test_a_large_object_is_rewritten_through_the_token_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rotator.services.storage.fake import REWRITE_CHUNK_BYTES

    doc = world(objects=1)
    doc["storage"][0]["objects"] = [
        {"name": "big.bin", "kms_key_version": V + "1", "size": 3 * REWRITE_CHUNK_BYTES}
    ]
    for w in Wire(tmp_path, monkeypatch, doc).start():
        assert w.rotate()["complete"]
        big = w.fake().storage.get_object("bkt", "big.bin")
        assert (big.generation, big.kms_key_version) == (2, V + "3")
        calls = [r for r in w.storage.requests if r.op == "objects.rewrite" and r.object == "big.bin"]
        assert len(calls) == 3
        assert "rewriteToken" not in calls[0].query
        assert all(c.query.get("rewriteToken") for c in calls[1:])
        assert all(c.query.get("ifGenerationMatch") == "1" for c in calls)
