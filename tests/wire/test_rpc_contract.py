"""The gcp backend against servers that answer as Google's API references say (the
contract in rotator/backends/gcp/CONTRACT.md), for each finding of issue 11. The
fake-side twins are in tests/fake/test_google_contract.py.

Backends: gcp over the wire."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from fake.test_google_contract import (
    AFTER_WINDOW,
    IDLE_IN_AN_OLD_WINDOW,
    IN_WINDOW,
    SERVING_IN_AN_OLD_WINDOW,
    backup_pins,
    check_after_window,
    check_idle_in_an_old_window,
    check_in_window,
    check_serving_in_an_old_window,
    deleted_database_world,
    recreated_database_world,
    redeploy_across_the_window,
    retained_world,
    run_pins,
    tagged_world,
)
from google.api_core import exceptions as gexc
from google.cloud import dataflow_v1beta3 as dataflow
from grpc_server import GrpcServer
from harness import serve_world_file, world_advance
from storage_http import StorageServer
from worlds import APP_KEY, FUNCTION, INGEST, OLD_BACKUP, SERVICE, services_world

from rotator import playbooks
from rotator.backends.gcp import GcpBackend
from rotator.backends.gcp.retry import RetryPolicy
from rotator.engine import apply_plan
from rotator.errors import RotatorError
from rotator.inventory import scan_key
from rotator.model import unreachable_of
from rotator.plan import build_plan, resolve_params
from rotator.services.core import UNLISTED
from rotator.services.dataflow.spec import DATAFLOW_JOB
from rotator.services.functions.spec import REPOSITORY_IMAGES
from rotator.services.run.spec import RUN_SERVING
from rotator.services.run.uses import run_services
from rotator.services.storage.spec import RETAINED_OBJECT


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


# -- Dataflow: lists are summaries; each active job is read with GetJob's full view -----------
def test_dataflow_lists_only_summaries_whatever_view_is_asked(wire: Wire) -> None:
    """ListJobsRequest.view: "Deprecated. ListJobs always returns summaries now. Use
    GetJob for other JobViews.\""""
    client = wire.gcp.dataflow.client
    listed = list(
        client.aggregated_list_jobs(request={"project_id": "demo", "view": dataflow.JobView.JOB_VIEW_ALL})
    )
    assert listed and all(not j.environment.service_kms_key_name for j in listed)
    full = client.get_job(
        request={
            "project_id": "demo",
            "job_id": INGEST,
            "location": "us-east1",
            "view": dataflow.JobView.JOB_VIEW_ALL,
        }
    )
    assert full.environment.service_kms_key_name == APP_KEY
    assert "enable_streaming_engine" in full.environment.experiments
    summary = client.get_job(request={"project_id": "demo", "job_id": INGEST, "location": "us-east1"})
    assert not summary.environment.service_kms_key_name  # GetJob's default view is the summary


def test_a_running_streaming_engine_job_is_seen_with_its_key(wire: Wire) -> None:
    jobs = {j.id: j for j in wire.gcp.dataflow.list_jobs()}
    assert jobs[INGEST].kms_key == APP_KEY and jobs[INGEST].streaming_engine
    full_reads = [r for r in wire.grpc.requests("GetJob") if r.view == dataflow.JobView.JOB_VIEW_ALL]
    assert {r.job_id for r in full_reads} == set(jobs)  # every active job, read in full
    inv = scan_key(wire.gcp, APP_KEY)
    pinned = {g.resource for u in inv.versions.values() for g in u.pins() if g.kind == DATAFLOW_JOB}
    assert any(INGEST in r for r in pinned)


# -- Partial lists ------------------------------------------------------------------------------
def test_unreachable_locations_come_back_and_pin_every_version(wire: Wire) -> None:
    wire.grpc.backend.unreachable.add("europe-west1")
    fns = wire.gcp.functions.list_functions()
    assert unreachable_of(fns) == ("europe-west1",)
    assert unreachable_of(wire.gcp.firestore.list_backups()) == ("europe-west1",)
    assert unreachable_of(wire.gcp.firestore.list_databases()) == ("europe-west1",)
    assert unreachable_of(wire.gcp.dataflow.list_jobs()) == ("europe-west1",)
    inv = scan_key(wire.gcp, APP_KEY)
    for use in inv.versions.values():
        assert {g.resource for g in use.pins() if g.kind == UNLISTED} == {
            "Firestore databases in europe-west1",
            "Firestore backups in europe-west1",
            "Dataflow jobs in europe-west1",
            "Cloud Run functions in europe-west1",
        }
    # Asked alone, the location gives a concrete error (ListBackupsResponse.unreachable).
    with pytest.raises(gexc.ServiceUnavailable):
        list(wire.gcp.functions.client.list_functions(parent="projects/demo/locations/europe-west1"))


# -- Backups carry no key: one whose database is gone or re-created pins every version --------
@pytest.mark.parametrize("world", [deleted_database_world, recreated_database_world])
def test_a_backup_of_a_database_that_is_gone_pins_every_version(
    world: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "world.yaml"
    path.write_text(yaml.safe_dump(world(), sort_keys=False))
    with serve_world_file(path, tmp_path / "cache") as (env, _storage, _grpc):
        for k, val in env.items():
            monkeypatch.setenv(k, val)
        gcp = GcpBackend("demo", retry=RetryPolicy(sleep=lambda _s: None))
        (listed,) = gcp.firestore.list_backups()
        assert listed.kms_key_version is None  # the Backup resource has no key version
        pins = backup_pins(scan_key(gcp, APP_KEY))
    assert all(pins[n] == {OLD_BACKUP} for n in pins), pins  # every version: it could be any


# -- Artifact Registry: images carry no key version ----------------------------------------------
def test_repository_images_pin_what_kms_inventory_lists_else_every_version(wire: Wire) -> None:
    inv = scan_key(wire.gcp, APP_KEY)
    held = {n for n, u in inv.versions.items() for g in u.pins() if g.kind == REPOSITORY_IMAGES}
    assert held == {2}  # the function's deploy, as KMS Inventory's search lists it
    assert [r.parent for r in wire.grpc.requests("ListRepositories")] == ["projects/demo/locations/us-east1"]
    wire.gcp.functions.inventory = None  # no organization: nothing says which versions
    inv = scan_key(wire.gcp, APP_KEY)
    held = {n for n, u in inv.versions.items() for g in u.pins() if g.kind == REPOSITORY_IMAGES}
    assert held == set(inv.versions)


# -- Cloud Run traffic: a revision listed twice, tags -----------------------------------------
@pytest.mark.parametrize("world_doc", [tagged_world()])
def test_a_revision_listed_twice_and_a_tag_at_zero_both_serve(wire: Wire) -> None:
    svc = wire.gcp.run.services.get_service(name=SERVICE)
    listed = [(t.revision, t.percent, t.tag) for t in svc.traffic_statuses]
    assert ("api-00002", 100, "") in listed and ("api-00002", 0, "green") in listed  # listed twice
    assert ("api-00001", 0, "blue") in listed
    pins = run_pins(scan_key(wire.gcp, APP_KEY))
    assert pins[1] == {RUN_SERVING} and pins[2] == {RUN_SERVING}


# -- Cloud Storage: retentionExpirationTime is read, not computed ---------------------------------
@pytest.mark.parametrize("world_doc", [retained_world()])
def test_retention_expiry_is_read_from_retention_expiration_time(wire: Wire) -> None:
    """The policy's clock started late (an event-based hold released on 2026-11-02): Cloud
    Storage says 2026-12-02, creation + 30d would say 2026-10-31 (already free)."""
    wire.storage.retention_expiration[("held", "ledger")] = datetime(2026, 12, 2, tzinfo=timezone.utc)
    inv = scan_key(wire.gcp, APP_KEY)
    (group,) = [g for g in inv.versions[1].pins() if g.resource == "gs://held"]
    assert group.kind == RETAINED_OBJECT
    assert group.frees_on() == datetime(2026, 12, 2, tzinfo=timezone.utc)


# -- Functions: a redeploy is a new build, read back from BuildConfig.build ------------------------
def test_a_labels_only_update_builds_nothing(wire: Wire) -> None:
    client = wire.gcp.functions.client
    fn = client.get_function(name=FUNCTION)
    fn.labels["team"] = "imaging"
    client.update_function(function=fn, update_mask={"paths": ["labels"]}).result()
    after = client.get_function(name=FUNCTION)
    assert after.build_config.build == fn.build_config.build  # metadata only: no new build
    client.update_function(function=after, update_mask={"paths": ["build_config.source"]}).result()
    assert client.get_function(name=FUNCTION).build_config.build != fn.build_config.build


def test_a_redeploy_moves_the_function_only_when_a_new_build_shows(wire: Wire) -> None:
    moved = wire.gcp.functions.redeploy_function(FUNCTION)
    assert moved.kms_key_version == f"{APP_KEY}/cryptoKeyVersions/3"  # rebuilt under the primary
    wire.grpc.rebuild_on_update = False  # a Cloud Functions that does not build again
    wire.grpc.backend.kms.update_crypto_key_primary_version(APP_KEY, f"{APP_KEY}/cryptoKeyVersions/2")
    kept = wire.gcp.functions.redeploy_function(FUNCTION)
    assert kept.kms_key_version == f"{APP_KEY}/cryptoKeyVersions/3"  # not claimed as moved to 2


@pytest.mark.parametrize("world_doc", [services_world(storage=[], firestore=[], dataflow=[], run=[])])
def test_rotate_key_keeps_the_version_of_a_function_that_was_not_rebuilt(wire: Wire, tmp_path: Path) -> None:
    wire.grpc.rebuild_on_update = False
    messages: list[str] = []
    pb = playbooks.load("rotate-key")
    doc = build_plan(wire.gcp, pb, resolve_params(pb, APP_KEY, None, {}))
    try:
        apply_plan(wire.gcp, doc, "sha", str(tmp_path / "plan.json"), emit=messages.append)
    except RotatorError as e:
        messages.append(f"{e.prefix}: {e.message}")
    assert any(FUNCTION in m and "no new build shows" in m for m in messages), messages
    versions = {v.number: v.state for v in wire.gcp.kms.list_crypto_key_versions(APP_KEY)}
    assert versions[2] == "ENABLED"  # the function's image is still under version 2 (R42)
    assert (
        messages[-1].startswith("stale:")
        and "functions/resize is deployed under this version" in messages[-1]
    )


# -- A new primary propagates (up to 3 h): Revision.create_time / Function.update_time ----------
@pytest.mark.parametrize("world_doc", [IN_WINDOW])
def test_a_deploy_within_3_hours_of_a_primary_change_pins_the_older_versions(wire: Wire) -> None:
    check_in_window(scan_key(wire.gcp, APP_KEY))


@pytest.mark.parametrize("world_doc", [AFTER_WINDOW])
def test_a_deploy_long_after_the_primary_change_pins_only_its_own_version(wire: Wire) -> None:
    check_after_window(scan_key(wire.gcp, APP_KEY))


@pytest.mark.parametrize("world_doc", [IDLE_IN_AN_OLD_WINDOW])
def test_an_idle_revision_in_an_older_versions_window_keeps_the_versions_before_it(wire: Wire) -> None:
    check_idle_in_an_old_window(scan_key(wire.gcp, APP_KEY))


@pytest.mark.parametrize("world_doc", [SERVING_IN_AN_OLD_WINDOW])
def test_a_use_in_an_older_versions_window_keeps_the_versions_before_it(wire: Wire) -> None:
    check_serving_in_an_old_window(scan_key(wire.gcp, APP_KEY))


@pytest.mark.parametrize("world_doc", [services_world(storage=[], firestore=[], dataflow=[])])
def test_a_redeploy_after_the_window_frees_the_replaced_primary(wire: Wire) -> None:
    redeploy_across_the_window(wire.gcp, lambda delta: world_advance(wire.world, delta))
