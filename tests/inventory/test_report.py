"""`rotator report`, the fleet view (issue 12): every key of one or more projects, its
rotation, the age of its primary, each version's state, age and what it protects, which
versions are safe to disable or destroy; text, json and csv; Cloud KMS reads under a
per-project quota (counted on an injected clock, never timed). The CLI cases run on
both backends (test_suites_over_the_wire).

Backends: fake; gcp over the wire (tests/wire/test_suites_over_the_wire.py runs this file again)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from helpers import WorldCli, assert_failed
from worlds import APP_KEY, BUCKET, NEW_KEY, bucket, fleet_on_shared_buckets, key, make_world, obj, v

from rotator.backends.fake import FakeBackend
from rotator.inventory import scan_key
from rotator.ratelimit import PerMinuteQuota
from rotator.report import build_report
from rotator.scan import ScanCache

OTHER_KEY = "projects/other/locations/us-east1/keyRings/ring/cryptoKeys/shared"
TABLE_TYPE = "bigquery.googleapis.com/Table"


def _fleet() -> dict[str, Any]:
    doc = make_world(
        kms=[
            key(
                APP_KEY,
                {1: "ENABLED", 2: "ENABLED"},
                primary=2,
                rotation_period="90d",
                next_rotation_time="2026-12-01T00:00:00Z",
                created={1: "2026-01-01T00:00:00Z", 2: "2026-06-01T00:00:00Z"},
            ),
            key(
                NEW_KEY,
                {1: "DISABLED", 2: "ENABLED", 3: "ENABLED"},
                primary=3,
                created={3: "2026-11-01T00:00:00Z"},
            ),
            key(OTHER_KEY, {1: "ENABLED"}, primary=1),
        ],
        storage=[bucket(BUCKET, [obj("a", v(APP_KEY, 1), size=100), obj("b", v(APP_KEY, 1), size=50)])],
        other_resources=[
            {
                "name": "//bigquery.googleapis.com/projects/other/datasets/d/tables/t",
                "type": TABLE_TYPE,
                "key": OTHER_KEY,
            }
        ],
    )
    return doc


@pytest.fixture(autouse=True)
def no_organization(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROTATOR_ORGANIZATION", "")


def _versions(doc: dict[str, Any], name: str) -> dict[int, dict[str, Any]]:
    k = next(k for k in doc["keys"] if k["key"] == name)
    return {x["number"]: x for x in k["versions"]}


def test_report_json_says_age_rotation_use_and_what_is_safe(tmp_path: Path) -> None:
    w = WorldCli(tmp_path, _fleet())
    r = w.json("report", "--project", "demo", "--project", "other", "--max-age", "90d")
    assert r.code == 0, r
    doc = r.json()
    assert doc["kind"] == "rotator.report" and doc["projects"] == ["demo", "other"]
    assert [k["key"] for k in doc["keys"]] == [APP_KEY, NEW_KEY, OTHER_KEY]
    app = doc["keys"][0]
    assert (app["rotation_period"], app["next_rotation_time"]) == ("90d", "2026-12-01T00:00:00Z")
    assert app["primary"] == 2 and app["primary_age_days"] == 174.0 and app["too_old"] is True
    assert doc["keys"][1]["too_old"] is False and doc["summary"]["too_old"] == 1
    app_v = _versions(doc, APP_KEY)
    assert app_v[1]["protects"]["storage"] == {"count": 2, "bytes": 150}
    assert app_v[1]["age_days"] == 325.0 and not app_v[1]["safe_to_disable"]
    new_v = _versions(doc, NEW_KEY)
    assert new_v[1]["safe_to_destroy"] and not new_v[1]["safe_to_disable"]
    assert new_v[2]["safe_to_disable"] and new_v[2]["protects"] == {}
    assert not new_v[3]["safe_to_disable"]  # the primary
    other_v = _versions(doc, OTHER_KEY)
    assert other_v[1]["other_products"] == {TABLE_TYPE: 1}
    assert doc["summary"]["safe_to_disable"] == 1 and doc["summary"]["safe_to_destroy"] == 1


def test_report_text_and_csv(tmp_path: Path) -> None:
    w = WorldCli(tmp_path, _fleet())
    text = w("report", "--max-age", "90d")
    assert text.code == 0, text
    assert f"{APP_KEY}  OLDER THAN --max-age" in text.stdout
    assert "safe to disable" in text.stdout and "storage 2 (150 B)" in text.stdout
    assert OTHER_KEY not in text.stdout  # only the project asked for (the world's, by default)
    r = w("--output", "csv", "report", "--project", "demo", "--project", "other")
    assert r.code == 0, r
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert len(rows) == 2 + 3 + 1
    shared = next(row for row in rows if row["key"] == OTHER_KEY)
    assert shared["project"] == "other" and f"{TABLE_TYPE}: 1" in shared["protects"]


def test_report_counts_the_keys_as_it_goes_on_stderr(tmp_path: Path) -> None:
    w = WorldCli(tmp_path, _fleet())
    r = w("report", "--project", "demo", "--project", "other")
    assert r.code == 0, r
    assert "keys: 3/3 keys (100%)" in r.stderr and "keys:" not in r.stdout
    assert "keys:" not in w("-q", "report").stderr


def test_report_bad_max_age_is_exit_2(tmp_path: Path) -> None:
    w = WorldCli(tmp_path, _fleet())
    assert_failed(w("report", "--max-age", "soon"), 2, "error", "--max-age")


def _many_keys(count: int) -> dict[str, Any]:
    keys = [
        key(
            f"projects/{p}/locations/us-east1/keyRings/r{i // 50}/cryptoKeys/k{i}",
            {1: "ENABLED", 2: "ENABLED"},
        )
        for p in ("demo", "other")
        for i in range(count // 2)
    ]
    return make_world(
        kms=keys, storage=[bucket(BUCKET, [obj("a", v(keys[0]["key"], 1))], default_kms_key=None)]
    )


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


def test_500_keys_in_two_projects_never_exceed_the_kms_read_quota() -> None:
    backend = FakeBackend.from_dict(_many_keys(500))
    clock = Clock()
    quota = PerMinuteQuota(100, clock=clock.now, sleep=clock.sleep)
    reads: list[tuple[str, float]] = []
    take = quota.acquire

    def counted(project: str) -> float:
        waited = take(project)
        reads.append((project, clock.now()))
        return waited

    quota.acquire = counted  # type: ignore[method-assign]
    doc = build_report(backend, ["demo", "other"], quota=quota)
    assert doc["summary"]["keys"] == 500
    assert len(reads) == 500  # one Cloud KMS read per key: the key list comes from KMS Inventory
    for project in ("demo", "other"):
        times = sorted(t for p, t in reads if p == project)
        assert len(times) == 250
        worst = max(sum(1 for t in times if start <= t < start + 60) for start in times)
        assert worst <= 100, (project, worst)
    assert quota.waited > 0  # 250 reads at 100 a minute had to wait


def test_under_the_default_quota_500_keys_in_two_projects_do_not_wait() -> None:
    backend = FakeBackend.from_dict(_many_keys(500))
    clock = Clock()
    quota = PerMinuteQuota(clock=clock.now, sleep=clock.sleep)
    doc = build_report(backend, ["demo", "other"], quota=quota)
    assert doc["summary"]["keys"] == 500 and doc["kms_reads_per_minute"] == 300
    assert quota.waited == 0 and clock.t == 0


def test_without_cloud_kms_inventory_the_keys_come_through_cloud_kms(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROTATOR_FAKE_FAULTS", "deny=inventory")
    w = WorldCli(tmp_path, _fleet())
    r = w.json("report", "--project", "demo", "--project", "other")
    assert r.code == 0, r
    doc = r.json()
    assert [k["key"] for k in doc["keys"]] == [APP_KEY, NEW_KEY, OTHER_KEY]
    assert all(
        s.startswith("Cloud KMS (Cloud KMS Inventory could not be read")
        for s in doc["key_list_source"].values()
    )
    # No inventory: every version is assumed in use, none is called safe.
    assert doc["summary"]["safe_to_disable"] == 0 and doc["summary"]["safe_to_destroy"] == 0


def test_the_cloud_kms_key_list_counts_against_the_quota_too(monkeypatch: pytest.MonkeyPatch) -> None:
    from rotator.backends.fake.faults import parse, wrap

    backend = FakeBackend.from_dict(_many_keys(40))
    wrap(backend, parse("deny=inventory"))
    clock = Clock()
    quota = PerMinuteQuota(10, clock=clock.now, sleep=clock.sleep)
    doc = build_report(backend, ["demo", "other"], quota=quota)
    assert doc["summary"]["keys"] == 40
    # Per project: 1 location list + 1 key ring list + 1 key list per ring + 20 version lists.
    assert quota.waited > 0 and clock.t >= 60


@pytest.mark.parametrize(
    "args",
    [
        ("report", "--project", "nope"),
        ("report", "--project", "demo", "--project", "nope"),
        ("--project", "demo", "--project", "nope", "report"),
    ],
    ids=["report-option", "report-option-second", "global-second"],
)
def test_report_of_a_project_that_does_not_exist_is_bad_input(tmp_path: Path, args: tuple[str, ...]) -> None:
    """Not a report of a project with no keys: exit 2, one line naming the project."""
    w = WorldCli(tmp_path, _fleet())
    r = w(*args)
    assert_failed(r, 2, "error", "--project nope", "project nope not found")
    assert r.stdout == ""


class _Counting:
    """A service whose list calls (and Artifact Registry's repository reads) are counted
    by method and arguments."""

    def __init__(self, inner: Any, name: str, calls: dict[tuple[Any, ...], int]):
        self._inner, self._name, self._calls = inner, name, calls

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self._inner, attr)
        if not callable(value) or not (attr.startswith("list_") or attr == "get_repository_key"):
            return value

        def counted(*args: Any, **kwargs: Any) -> Any:
            call = (f"{self._name}.{attr}", *args, *sorted(kwargs.items()))
            self._calls[call] = self._calls.get(call, 0) + 1
            return value(*args, **kwargs)

        return counted


def _counted(doc: dict[str, Any]) -> tuple[FakeBackend, dict[tuple[Any, ...], int]]:
    backend = FakeBackend.from_dict(doc)
    calls: dict[tuple[Any, ...], int] = {}
    for name in ("storage", "firestore", "dataflow", "run", "functions"):
        setattr(backend, name, _Counting(getattr(backend, name), name, calls))
    return backend, calls


def test_report_lists_each_bucket_and_service_once_whatever_the_number_of_keys() -> None:
    """Counted, not timed: every list call (a bucket's objects, its buckets, databases,
    backups, jobs, a region's services, functions, repositories) is made once per
    project, not once per key; and the report is the one built key by key."""
    from rotator.report import key_entry

    doc = fleet_on_shared_buckets()
    backend, calls = _counted(doc)
    report = build_report(backend, ["demo"])
    assert len(report["keys"]) >= 9
    repeated = {call: n for call, n in calls.items() if n > 1}
    assert repeated == {}, repeated
    assert sum(n for call, n in calls.items() if call[0] == "storage.list_objects") >= 4
    assert sum(n for call, n in calls.items() if call[0] == "storage.list_buckets") == 1
    # The same rows as each key inventoried on its own (the output is unchanged).
    alone = FakeBackend.from_dict(doc)
    now = alone.clock.now()
    expected = [
        key_entry(alone, k, "demo", now, None, ("demo",)) for k in alone.inventory.list_crypto_keys("demo")
    ]
    assert report["keys"] == expected
    # And every pin, examples, details and dates included, as a plan sees it (no cache).
    cache, shared = ScanCache(), FakeBackend.from_dict(doc)
    for k in alone.inventory.list_crypto_keys("demo"):
        plain = scan_key(alone, k.name)
        cached = scan_key(shared, k.name, cache=cache)
        for n, use in plain.versions.items():
            assert [g.to_json() for g in cached.versions[n].pins()] == [g.to_json() for g in use.pins()]
