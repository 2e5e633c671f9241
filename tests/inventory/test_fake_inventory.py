"""The fake's Cloud KMS Inventory itself (issue 12): the summary always, the search only
with an organization, every product including `other_resources`, and faults through
ROTATOR_FAKE_FAULTS (services=inventory).

Backends: fake."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import WorldCli
from worlds import APP_KEY, BUCKET, NEW_KEY, make_world, v

from rotator import apierrors as api
from rotator.backends.fake import FakeBackend
from rotator.backends.fake.faults import parse

TABLE = "//bigquery.googleapis.com/projects/demo/datasets/sales/tables/orders"
DISK = "//compute.googleapis.com/projects/ops/zones/us-east1-b/disks/d1"


def _backend() -> FakeBackend:
    return FakeBackend.from_dict(
        make_world(
            other_resources=[
                {"name": TABLE, "type": "bigquery.googleapis.com/Table", "key": APP_KEY, "versions": [1]},
                {"name": DISK, "type": "compute.googleapis.com/Disk", "key": APP_KEY},
            ]
        )
    )


def test_the_summary_counts_every_product_and_project() -> None:
    s = _backend().inventory.get_protected_resources_summary(APP_KEY)
    assert s.resource_types == {
        "storage.googleapis.com/Bucket": 1,
        "bigquery.googleapis.com/Table": 1,
        "compute.googleapis.com/Disk": 1,
    }
    assert (s.resource_count, s.project_count) == (3, 2)
    assert s.cloud_products == {"storage": 1, "bigquery": 1, "compute": 1}
    empty = _backend().inventory.get_protected_resources_summary(NEW_KEY)
    assert (empty.resource_count, empty.project_count) == (0, 0)


def test_the_search_needs_an_organization_and_gives_names_projects_and_versions() -> None:
    inventory = _backend().inventory
    with pytest.raises(api.InvalidArgument):
        inventory.search_protected_resources("", APP_KEY)
    found = {r.name: (r.project, r.versions) for r in inventory.search_protected_resources("123", APP_KEY)}
    assert found == {
        f"//storage.googleapis.com/projects/_/buckets/{BUCKET}": ("demo", (v(APP_KEY, 1),)),
        TABLE: ("demo", (v(APP_KEY, 1),)),
        DISK: ("ops", ()),
    }
    only_v2 = inventory.search_protected_resources("123", v(APP_KEY, 2))
    assert only_v2 == []


def test_the_key_list_of_a_project() -> None:
    keys = _backend().inventory.list_crypto_keys("demo")
    assert APP_KEY in [k.name for k in keys] and all(k.name.startswith("projects/demo/") for k in keys)
    assert _backend().inventory.list_crypto_keys("ops") == []


def test_an_unknown_key_is_not_found() -> None:
    with pytest.raises(api.NotFound):
        _backend().inventory.get_protected_resources_summary(APP_KEY + "-missing")


def test_transient_inventory_faults_after_retries_make_it_unreadable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "inventory" not in parse("rate=1").services  # only when named
    monkeypatch.setenv("ROTATOR_ORGANIZATION", "")
    monkeypatch.setenv("ROTATOR_FAKE_FAULTS", "rate=1;services=inventory;codes=UNAVAILABLE;backoff=0")
    w = WorldCli(tmp_path, make_world())
    r = w("plan", "rotate-key", "--key", APP_KEY)
    assert r.code == 0, r
    line = next(x for x in r.stdout.splitlines() if "cross-check" in x)
    assert "UNREADABLE" in line and "UNAVAILABLE (unreachable)" in line and "roles/cloudkms.viewer" in line
    assert "keep version 1" in r.stdout
