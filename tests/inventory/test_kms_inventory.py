"""Every product on the key, not only the five rotator manages (issue 12): Cloud KMS
Inventory's per-key summary (no organization needed) and, with an organization, its
search; an unreadable inventory means every version is assumed in use unless the
operator acknowledges it; resources in projects rotator did not inspect pin too.

Run on the fake in process and, through tests/wire (test_suites_over_the_wire), on the
gcp backend over gRPC: ROTATOR_ORGANIZATION and ROTATOR_FAKE_FAULTS reach both.

Backends: fake; gcp over the wire (tests/wire/test_suites_over_the_wire.py runs this file again).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import WorldCli, assert_failed
from worlds import APP_KEY, BUCKET, STORAGE_AGENT, bucket, key, make_world, obj, v

TABLE = "//bigquery.googleapis.com/projects/demo/datasets/sales/tables/orders"
TABLE_TYPE = "bigquery.googleapis.com/Table"
OTHER_SERVICE = "//run.googleapis.com/projects/other/locations/us-east1/services/web"


def _world(*others: dict[str, Any], objects: int = 30) -> dict[str, Any]:
    """APP_KEY with only version 1 (primary), `objects` objects under it, and `others`."""
    doc = make_world(
        kms=[key(APP_KEY, {1: "ENABLED"}, primary=1)],
        storage=[bucket(BUCKET, [obj(f"o/{i:02d}", v(APP_KEY, 1)) for i in range(objects)])],
    )
    if others:
        doc["other_resources"] = list(others)
    return doc


def _table(versions: list[int] | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": TABLE, "type": TABLE_TYPE, "key": APP_KEY}
    if versions is not None:
        entry["versions"] = versions
    return entry


@pytest.fixture
def no_organization(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROTATOR_ORGANIZATION", "")


@pytest.fixture
def organization(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROTATOR_ORGANIZATION", "123456789")


def _rotate(w: WorldCli, *extra: str) -> dict[str, Any]:
    doc = w.plan_json("rotate-key", APP_KEY, *extra)
    r = w.apply()
    assert r.code == 0, r
    return doc


def _states(w: WorldCli) -> dict[int, str]:
    return {int(n): s for n, s in w.key_of(APP_KEY)["versions"].items()}


def _objects_under(w: WorldCli, number: int) -> int:
    return sum(o["kms_key_version"] == v(APP_KEY, number) for o in w.bucket_of(BUCKET)["objects"])


def test_a_bigquery_table_keeps_version_1_enabled_without_an_organization(
    tmp_path: Path, no_organization: None
) -> None:
    w = WorldCli(tmp_path, _world(_table([1])))
    text = w.plan("rotate-key", APP_KEY)
    assert text.code == 0, text
    assert f"{TABLE_TYPE}: 1" in text.stdout
    assert "summary, no organization to search" in text.stdout
    assert "keep version 1" in text.stdout and "moved off the key by hand" in text.stdout
    doc = _rotate(w)
    inv = doc["inventory"]["kms_inventory"]
    assert inv["summary"]["resource_types"][TABLE_TYPE] == 1 and not inv["searched"]
    assert inv["not_covered"] == {TABLE_TYPE: 1}
    # Every object moved to version 2, and version 1 stays ENABLED for the table.
    assert _objects_under(w, 1) == 0 and _objects_under(w, 2) == 30
    assert _states(w) == {1: "ENABLED", 2: "ENABLED"}


def test_the_same_key_with_nothing_else_on_it_disables_version_1(
    tmp_path: Path, no_organization: None
) -> None:
    w = WorldCli(tmp_path, _world())
    doc = _rotate(w)
    assert doc["inventory"]["kms_inventory"]["not_covered"] == {}
    assert _states(w) == {1: "DISABLED", 2: "ENABLED"}


def test_an_unreadable_inventory_disables_nothing_and_names_the_permission(
    tmp_path: Path, no_organization: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROTATOR_FAKE_FAULTS", "deny=inventory")
    w = WorldCli(tmp_path, _world(_table([1])))
    text = w.plan("rotate-key", APP_KEY)
    assert text.code == 0, text
    line = next(x for x in text.stdout.splitlines() if "Cloud KMS Inventory cross-check" in x)
    assert "UNREADABLE" in line and "kmsinventory.googleapis.com" in line
    assert "cloudkms.cryptoKeys.get" in line and "roles/cloudkms.viewer" in line
    doc = _rotate(w)
    disable = next(s for s in doc["steps"] if s["kind"] == "kms.disable_versions")
    assert disable["changes"] == [] and "1" in disable["data"]["keep"]
    assert _objects_under(w, 2) == 30  # the rewrites still happen: nothing is lost by them
    assert _states(w) == {1: "ENABLED", 2: "ENABLED"}
    assert doc["acknowledgements"] == []


def test_an_acknowledged_unreadable_inventory_is_on_the_plan_the_ticket_and_the_audit_record(
    tmp_path: Path, no_organization: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROTATOR_FAKE_FAULTS", "deny=inventory")
    w = WorldCli(tmp_path, _world())
    ack = "--acknowledge-unreadable-inventory"
    text = w("plan", "rotate-key", "--key", APP_KEY, ack)
    assert text.code == 0, text
    assert "ACKNOWLEDGED" in text.stdout
    ticket = w("--output", "markdown", "plan", "rotate-key", "--key", APP_KEY, ack)
    assert "**ACKNOWLEDGED**" in ticket.stdout and "cloudkms.cryptoKeys.get" in ticket.stdout
    doc = _rotate(w, ack)
    assert [a["key"] for a in doc["acknowledgements"]] == [APP_KEY]
    assert _states(w) == {1: "DISABLED", 2: "ENABLED"}
    started = [
        json.loads(line)
        for line in (tmp_path / "plan.json.audit.jsonl").read_text().splitlines()
        if json.loads(line)["event"] == "apply.started"
    ]
    assert started and started[0]["acknowledgements"][0]["what"] == "unreadable_kms_inventory"


def test_destroy_versions_refuses_a_version_another_product_uses(
    tmp_path: Path, no_organization: None
) -> None:
    doc = _world(_table([1]), objects=0)
    doc["kms"] = [key(APP_KEY, {1: "DISABLED", 2: "ENABLED"}, primary=2)]
    w = WorldCli(tmp_path, doc)
    r = w("plan", "destroy-versions", "--key", APP_KEY, "--set", "versions=1")
    assert_failed(r, 3, "refused", TABLE_TYPE, "R13")
    assert _states(w) == {1: "DISABLED", 2: "ENABLED"}


def test_with_an_organization_the_search_names_the_table_and_its_version(
    tmp_path: Path, organization: None
) -> None:
    doc = _world(_table([1]))
    doc["kms"] = [key(APP_KEY, {1: "ENABLED", 2: "ENABLED"}, primary=2)]
    w = WorldCli(tmp_path, doc)
    plan = _rotate(w)
    inv = plan["inventory"]["kms_inventory"]
    assert inv["searched"] and inv["not_covered"] == {TABLE_TYPE: 1}
    disable = next(s for s in plan["steps"] if s["kind"] == "kms.disable_versions")
    assert any(TABLE in reason for reason in disable["data"]["keep"]["1"])
    # Version 2 (no longer primary, nothing under it) is free; version 1 is the table's.
    assert _states(w) == {1: "ENABLED", 2: "DISABLED", 3: "ENABLED"}


def test_resources_in_a_project_rotator_did_not_inspect_pin_every_version(
    tmp_path: Path, no_organization: None
) -> None:
    service = {"name": OTHER_SERVICE, "type": "run.googleapis.com/Service", "key": APP_KEY, "versions": [1]}
    w = WorldCli(tmp_path, _world(service))
    plan = _rotate(w)
    inv = plan["inventory"]["kms_inventory"]
    assert inv["summary"]["project_count"] == 2 and inv["projects_inspected"] == ["demo"]
    assert inv["not_covered"] == {}
    # Cloud KMS Inventory lists a Cloud Run service rotator's listing did not find: said so.
    assert any("run resources" in n and "authority" in n for n in inv["notes"])
    disable = next(s for s in plan["steps"] if s["kind"] == "kms.disable_versions")
    assert any("1 other project(s)" in reason for reason in disable["data"]["keep"]["1"])
    assert _states(w) == {1: "ENABLED", 2: "ENABLED"}


def test_with_an_organization_the_other_project_is_named(tmp_path: Path, organization: None) -> None:
    service = {"name": OTHER_SERVICE, "type": "run.googleapis.com/Service", "key": APP_KEY, "versions": [1]}
    w = WorldCli(tmp_path, _world(service))
    plan = _rotate(w)
    assert plan["inventory"]["kms_inventory"]["projects_not_inspected"] == ["other"]
    disable = next(s for s in plan["steps"] if s["kind"] == "kms.disable_versions")
    assert any(OTHER_SERVICE in r and "project other" in r for r in disable["data"]["keep"]["1"])
    assert _states(w) == {1: "ENABLED", 2: "ENABLED"}


def test_the_inventory_command_shows_what_cloud_kms_inventory_said(
    tmp_path: Path, no_organization: None
) -> None:
    w = WorldCli(tmp_path, _world(_table()))
    r = w("inventory", APP_KEY)
    assert r.code == 0, r
    assert f"{TABLE_TYPE}: 1" in r.stdout and "blocked" in r.stdout


def test_other_resources_are_checked_in_the_world_file(tmp_path: Path) -> None:
    bad = _world({"name": TABLE, "type": TABLE_TYPE, "key": APP_KEY, "versions": [7]})
    r = WorldCli(tmp_path, bad)("inventory", APP_KEY)
    assert_failed(r, 2, "error", "other_resources[0].versions[0]", "version 7")


RUN_AGENT = "serviceAccount:service-111111111111@serverless-robot-prod.iam.gserviceaccount.com"
WEB = "projects/other/locations/us-east1/services/web"


def _world_with_a_service_in_another_project() -> dict[str, Any]:
    """Objects under version 1 in demo, and a Cloud Run service of project `other` whose
    serving revision runs under version 1 of demo's key."""
    doc = _world(objects=3)
    doc["kms"] = [key(APP_KEY, {1: "ENABLED"}, primary=1, members=(STORAGE_AGENT, RUN_AGENT))]
    doc["run"] = [
        {
            "service": WEB,
            "revisions": [
                {
                    "revision": "web-00001",
                    "kms_key": APP_KEY,
                    "kms_key_version": v(APP_KEY, 1),
                    "traffic_percent": 100,
                }
            ],
        }
    ]
    return doc


def test_a_project_given_with_project_is_inspected_and_its_use_moves_with_the_rotation(
    tmp_path: Path, no_organization: None
) -> None:
    w = WorldCli(tmp_path, _world_with_a_service_in_another_project())
    # Only demo inspected: the summary counts 2 projects, rotator found the key in 1.
    alone = w.plan_json("rotate-key", APP_KEY, out="alone.json")
    assert alone["inventory"]["kms_inventory"]["projects_not_inspected"]
    disable = next(s for s in alone["steps"] if s["kind"] == "kms.disable_versions")
    assert any("other project(s)" in r for r in disable["data"]["keep"]["1"])
    assert not [c for s in alone["steps"] for c in s["changes"] if c["action"] == "deploy_revision"]
    # With --project other too, rotator lists that project's services itself: the service
    # is redeployed under the new primary and no other project pins version 1 any more.
    both = w.plan_json("rotate-key", APP_KEY, "--project", "demo", "--project", "other")
    assert both["projects"] == ["demo", "other"]
    assert both["inventory"]["kms_inventory"]["projects_not_inspected"] == []
    assert [
        c["service"] for s in both["steps"] for c in s["changes"] if c["action"] == "deploy_revision"
    ] == [WEB]
    r = w.apply()
    assert r.code == 0, r
    # Version 1 is the primary this rotation replaced, and the service was redeployed right
    # after: the new revision may still be under it while the new primary propagates (Cloud
    # KMS consistency, up to 3 h), so that, and nothing else, keeps it enabled (R43 with R2).
    assert _states(w) == {1: "ENABLED", 2: "ENABLED"}
    assert _only_the_propagation_window_keeps_version_1(both)
    web = next(s for s in w.dump()["run"] if s["service"] == WEB)
    assert web["revisions"][-1]["kms_key_version"] == v(APP_KEY, 2)


def test_an_inspected_project_where_rotator_finds_nothing_still_pins(
    tmp_path: Path, no_organization: None
) -> None:
    """The inventory says a resource of `other` uses the key, rotator's listing of `other`
    finds none (it lags, or it is a resource rotator cannot list): the safe side."""
    service = {"name": OTHER_SERVICE, "type": "run.googleapis.com/Service", "key": APP_KEY, "versions": [1]}
    w = WorldCli(tmp_path, _world(service))
    plan = w.plan_json("rotate-key", APP_KEY, "--project", "demo", "--project", "other")
    disable = next(s for s in plan["steps"] if s["kind"] == "kms.disable_versions")
    assert "1" in disable["data"]["keep"]


def test_with_an_organization_an_inspected_project_is_not_pinned_twice(
    tmp_path: Path, organization: None
) -> None:
    w = WorldCli(tmp_path, _world_with_a_service_in_another_project())
    alone = w.plan_json("rotate-key", APP_KEY, out="alone.json")
    assert alone["inventory"]["kms_inventory"]["projects_not_inspected"] == ["other"]
    both = w.plan_json("rotate-key", APP_KEY, "--project", "demo", "--project", "other")
    assert both["inventory"]["kms_inventory"]["projects_not_inspected"] == []
    assert w.apply().code == 0
    # Kept only for the propagation window of the new primary (see the test above).
    assert _states(w) == {1: "ENABLED", 2: "ENABLED"}
    assert _only_the_propagation_window_keeps_version_1(both)


def _only_the_propagation_window_keeps_version_1(plan: dict[str, Any]) -> bool:
    keep = next(s for s in plan["steps"] if s["kind"] == "kms.disable_versions")["data"]["keep"]
    return list(keep) == ["1"] and keep["1"] == [
        f"{WEB}: its new revision will be deployed right after this plan makes a new primary, so it "
        "may be under this version (Cloud KMS propagation, up to 3 h) [R43; frees when the service "
        "is redeployed after the new primary's propagation window (3 h from its creation)]"
    ]


def test_an_unreadable_inventory_refuses_destroy_naming_the_api(
    tmp_path: Path, no_organization: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROTATOR_FAKE_FAULTS", "deny=inventory")
    doc = _world(objects=0)
    doc["kms"] = [key(APP_KEY, {1: "DISABLED", 2: "ENABLED"}, primary=2)]
    w = WorldCli(tmp_path, doc)
    r = w("plan", "destroy-versions", "--key", APP_KEY, "--set", "versions=1")
    assert_failed(r, 3, "refused", "version 1 pinned", "kmsinventory.googleapis.com", "R14")
    assert _states(w) == {1: "DISABLED", 2: "ENABLED"}
    ack = w(
        "plan",
        "destroy-versions",
        "--key",
        APP_KEY,
        "--set",
        "versions=1",
        "--acknowledge-unreadable-inventory",
    )
    assert ack.code == 0, ack
    assert "ACKNOWLEDGED" in ack.stdout and "destroy " in ack.stdout


LEGACY_KEY = APP_KEY.replace("/app", "/legacy")
FIRESTORE_AGENT = "serviceAccount:service-111111111111@gcp-sa-firestore.iam.gserviceaccount.com"
API = "projects/other/locations/us-east1/services/api"


def _world_with_a_backup_that_names_no_key() -> dict[str, Any]:
    """Review repro: version 1 of APP_KEY is primary; demo has a deleted database (under
    another key) whose backup names no key version, so it may be under any key; project
    `other`, not inspected, has a Cloud Run service serving 100% on version 1."""
    doc = make_world(
        kms=[
            key(APP_KEY, {1: "ENABLED"}, primary=1, members=(STORAGE_AGENT, FIRESTORE_AGENT)),
            key(LEGACY_KEY, {1: "ENABLED"}, primary=1, members=()),
        ],
        storage=[],
    )
    doc["firestore"] = [
        {
            "database": "projects/demo/databases/gone",
            "location": "us-east1",
            "kms_key": LEGACY_KEY,
            "active_key_versions": [v(LEGACY_KEY, 1)],
            "deleted": True,
            "backups": [
                {
                    "backup": "projects/demo/locations/us-east1/backups/b1",
                    "snapshot_time": "2026-11-01T00:00:00Z",
                    "expire_time": "2027-11-01T00:00:00Z",
                }
            ],
        }
    ]
    doc["run"] = [
        {
            "service": API,
            "revisions": [
                {
                    "revision": "api-00001",
                    "kms_key": APP_KEY,
                    "kms_key_version": v(APP_KEY, 1),
                    "traffic_percent": 100,
                }
            ],
        }
    ]
    return doc


def test_a_backup_that_may_be_under_any_key_does_not_hide_a_use_in_another_project(
    tmp_path: Path, no_organization: None
) -> None:
    """The backup pins every version (it may be under the key) but is no evidence that
    rotator found the key in use in demo: the summary's one project is then one rotator
    did not inspect, and version 1 stays enabled for the other project's service."""
    w = WorldCli(tmp_path, _world_with_a_backup_that_names_no_key())
    plan = _rotate(w)
    inv = plan["inventory"]["kms_inventory"]
    assert inv["summary"]["project_count"] == 1 and inv["projects_not_inspected"]
    disable = next(s for s in plan["steps"] if s["kind"] == "kms.disable_versions")
    keep = disable["data"]["keep"]["1"]
    assert any("other project(s)" in r and "R13" in r for r in keep), keep
    # The Cloud Run service is not dismissed as the inventory lagging: the note says why it pins.
    assert any("run resources" in n and "not inspect" in n and "--project" in n for n in inv["notes"])
    assert _states(w) == {1: "ENABLED", 2: "ENABLED"}


def _world_with_a_run_service_rotator_cannot_list() -> dict[str, Any]:
    """Objects of demo under version 1 (rotator finds the key in use in demo), and a
    Cloud Run service the inventory counts in demo that rotator's listing does not see
    (the inventory lagging, or, for all the summary says, a service of another project)."""
    ghost = {
        "name": "//run.googleapis.com/projects/demo/locations/us-east1/services/ghost",
        "type": "run.googleapis.com/Service",
        "key": APP_KEY,
        "versions": [1],
    }
    return _world(ghost, objects=3)


def test_a_covered_type_the_summary_counts_but_rotator_cannot_place_pins_every_version(
    tmp_path: Path, no_organization: None
) -> None:
    w = WorldCli(tmp_path, _world_with_a_run_service_rotator_cannot_list())
    text = w.plan("rotate-key", APP_KEY)
    assert text.code == 0, text
    assert "run.googleapis.com/Service may use any version" in text.stdout
    assert "--project" in text.stdout and "ROTATOR_ORGANIZATION" in text.stdout
    plan = _rotate(w)
    inv = plan["inventory"]["kms_inventory"]
    assert inv["summary"]["project_count"] == 1
    assert any("run resources" in n and "may be in one rotator did not inspect" in n for n in inv["notes"])
    disable = next(s for s in plan["steps"] if s["kind"] == "kms.disable_versions")
    assert any("run.googleapis.com/Service" in r for r in disable["data"]["keep"]["1"])
    assert _objects_under(w, 1) == 0 and _states(w) == {1: "ENABLED", 2: "ENABLED"}


def test_with_an_organization_a_covered_type_in_an_inspected_project_is_the_inventory_lagging(
    tmp_path: Path, organization: None
) -> None:
    """The search names the service's project, demo, which rotator inspected: its listing
    is the authority there (the inventory lags), and version 1 is disabled."""
    w = WorldCli(tmp_path, _world_with_a_run_service_rotator_cannot_list())
    plan = _rotate(w)
    inv = plan["inventory"]["kms_inventory"]
    assert any("run resources" in n and "inspected project(s) (demo)" in n for n in inv["notes"])
    assert _states(w) == {1: "DISABLED", 2: "ENABLED"}


def test_one_table_says_which_products_rotator_covers_and_which_of_its_services_lists_each() -> None:
    """COVERED_PRODUCTS alone decides both whether Cloud KMS Inventory's resource type is
    one rotator lists itself and which of its services lists it (no second table)."""
    from rotator import kms_inventory
    from rotator.services import COVERED_PRODUCTS, SERVICES

    assert not hasattr(kms_inventory, "_OWN_TYPES")
    assert set(COVERED_PRODUCTS.values()) == set(SERVICES)
    for product, service in COVERED_PRODUCTS.items():
        assert kms_inventory._service_of(f"{product}/Anything") == service
        assert kms_inventory._covered(f"{product}/Anything")
    assert kms_inventory._service_of(TABLE_TYPE) is None and not kms_inventory._covered(TABLE_TYPE)
