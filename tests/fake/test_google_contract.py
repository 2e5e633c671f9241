"""The fake answers as Google's APIs do where rotator once misread them (issue 11): the
same findings are shown over the wire in tests/wire/test_rpc_contract.py.

Backends: fake; gcp over the wire (the CLI cases, through `backend_kind`)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import assert_failed, run_cli
from worlds import APP_2026_KEY as NEW_KEY
from worlds import APP_EU_KEY as EUROPE_WEST1_KEY
from worlds import (
    APP_KEY,
    ARTIFACT_AGENT,
    DB,
    ENCRYPTER_DECRYPTER,
    EU_KEY,
    EVENTARC_AGENT,
    FUNCTION,
    FUNCTIONS_AGENT,
    GLOBAL_KEY,
    INGEST,
    OLD_BACKUP,
    OLD_BACKUP_EXPIRES,
    REPOSITORY,
    RUN_AGENT,
    SERVICE,
    STORAGE_AGENT,
    backup,
    bucket,
    database,
    function,
    key,
    kms_key,
    make_world,
    obj,
    revision,
    service,
    services_world,
    v,
    write_world,
)
from worlds import job as services_job

from rotator import apierrors as api
from rotator.backends.fake import FakeBackend
from rotator.inventory import scan_key
from rotator.locations import key_location_for_bucket
from rotator.services import PIN_KINDS, WINDOW_OF
from rotator.services.core import UNLISTED
from rotator.services.firestore.spec import FIRESTORE_BACKUP
from rotator.services.functions.spec import FUNCTION as FUNCTION_PIN
from rotator.services.functions.spec import FUNCTION_WINDOW, REPOSITORY_IMAGES
from rotator.services.run.spec import RUN_IDLE, RUN_IDLE_WINDOW, RUN_SERVING, RUN_WINDOW
from rotator.services.run.uses import run_services
from rotator.storage_rules import retention_expiry


def make(**overrides: Any) -> FakeBackend:
    return FakeBackend.from_dict(services_world(**overrides))


# -- Cloud Run lists one region at a time ------------------------------------------------------
def test_cloud_run_refuses_the_all_regions_wildcard() -> None:
    """run_v2 ListServicesRequest.parent: "Location must be a valid Google Cloud region,
    and cannot be the "-" wildcard"."""
    b = make()
    with pytest.raises(api.InvalidArgument, match='cannot be the "-" wildcard'):
        b.run.list_services("-")
    with pytest.raises(api.InvalidArgument):
        b.run.list_services("us")  # a multi-region is no Cloud Run region either
    assert [s.name for s in b.run.list_services("us-east1")] == [SERVICE]
    assert b.run.list_services("europe-west1") == []


def test_the_services_a_key_can_serve_are_those_of_its_region() -> None:
    """R7: a regional key serves its own region; a multi-region or global key none."""
    b = make()
    assert [s.name for s in run_services(b, APP_KEY)] == [SERVICE]
    assert run_services(b, EUROPE_WEST1_KEY) == []
    assert run_services(b, GLOBAL_KEY) == []


# -- Partial lists: what an unreachable location holds is assumed in use -----------------------
def test_an_unreachable_location_pins_every_version_of_the_key() -> None:
    b = make()
    b.unreachable.add("europe-west1")
    assert b.dataflow.list_jobs().unreachable == ("europe-west1",)  # type: ignore[attr-defined]
    inv = scan_key(b, APP_KEY)
    for n, use in inv.versions.items():
        unlisted = {g.resource for g in use.pins() if g.kind == UNLISTED}
        assert unlisted == {
            "Firestore databases in europe-west1",
            "Firestore backups in europe-west1",
            "Dataflow jobs in europe-west1",
            "Cloud Run functions in europe-west1",
        }, n
        assert all(PIN_KINDS[UNLISTED].blocks_disable for g in use.pins() if g.kind == UNLISTED)
    b.unreachable.clear()
    assert not any(g.kind == UNLISTED for u in scan_key(b, APP_KEY).versions.values() for g in u.pins())


# -- Multi-region and dual-region buckets (R7) --------------------------------------------------
EUROPE = "projects/demo/locations/europe/keyRings/ring/cryptoKeys/eu-app"
EUROPE_NEW = "projects/demo/locations/europe/keyRings/ring/cryptoKeys/eu-app-2026"


@pytest.fixture(params=["fake", "gcp"])
def backend_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The CLI on the fake, or through the gcp backend over the wire (helpers.run_cli)."""
    if request.param == "gcp":
        monkeypatch.setenv("ROTATOR_TEST_BACKEND", "gcp")
    else:
        monkeypatch.delenv("ROTATOR_TEST_BACKEND", raising=False)
    return str(request.param)


def test_kms_names_the_european_multi_region_europe() -> None:
    assert key_location_for_bucket("EU") == "europe"
    assert key_location_for_bucket("US") == "us"
    assert key_location_for_bucket("ASIA") == "asia"
    assert key_location_for_bucket("EUROPE-WEST1+EUROPE-WEST4") == "europe"
    assert key_location_for_bucket("US-EAST1+US-WEST1") == "us"
    assert key_location_for_bucket("ASIA-EAST1+ASIA-SOUTHEAST1") == "asia"
    assert key_location_for_bucket("EUR4") == "eur4"  # a predefined dual-region: itself
    assert key_location_for_bucket("US-EAST1+EUROPE-WEST1") is None  # no such dual-region


@pytest.mark.parametrize("location", ["EU", "EUROPE-WEST1+EUROPE-WEST4"])
def test_a_bucket_in_the_eu_is_re_keyed_under_a_key_in_europe(
    location: str, backend_kind: str, tmp_path: Path
) -> None:
    world = make_world(
        kms=[key(EUROPE, {1: "ENABLED"}), key(EUROPE_NEW, {1: "ENABLED"}), key(EU_KEY, {1: "ENABLED"})],
        storage=[bucket("eu-logs", [obj("a", v(EUROPE, 1))], location=location, default_kms_key=EUROPE)],
    )
    path = write_world(tmp_path / "world.yaml", world)
    w = ["--world", str(path)]
    r = run_cli(
        [*w, "plan", "replace-key", "--key", EUROPE, "--new-key", EUROPE_NEW, "--out", "p.json"], tmp_path
    )
    assert r.code == 0, r
    assert run_cli([*w, "apply", "p.json", "--yes"], tmp_path).code == 0
    dumped = yaml.safe_load(run_cli([*w, "world", "dump"], tmp_path).stdout)
    (b,) = dumped["storage"]
    assert b["location"] == location and b["default_kms_key"] == EUROPE_NEW
    assert b["objects"][0]["kms_key_version"] == v(EUROPE_NEW, 1)
    # A regional key cannot protect it: the refusal names the KMS location it needs (R7).
    r = run_cli([*w, "plan", "replace-key", "--key", EUROPE_NEW, "--new-key", EU_KEY], tmp_path)
    assert_failed(r, 3, "refused", "R7", "europe")


# -- Snapshots are awaited until READY before the key is disabled (R31) -------------------------
def test_disable_key_waits_for_the_snapshot_to_be_ready(backend_kind: str, tmp_path: Path) -> None:
    ingest = services_job(INGEST, "ingest")
    ingest["snapshot_ready_after"] = "10m"
    path = write_world(tmp_path / "world.yaml", services_world(dataflow=[ingest]))
    w = ["--world", str(path)]

    def dump() -> dict[str, Any]:
        return yaml.safe_load(run_cli([*w, "world", "dump"], tmp_path).stdout)  # type: ignore[no-any-return]

    assert run_cli([*w, "plan", "disable-key", "--key", APP_KEY, "--out", "p.json"], tmp_path).code == 0
    r = run_cli([*w, "apply", "p.json", "--yes"], tmp_path)
    assert_failed(r, 75, "waiting", INGEST, "PENDING", "R31")
    world = dump()
    (job,) = world["dataflow"]
    assert job["state"] == "RUNNING" and [s["state"] for s in job["snapshots"]] == ["PENDING"]
    assert set({k["key"]: k["versions"] for k in world["kms"]}[APP_KEY].values()) == {"ENABLED"}
    assert run_cli([*w, "world", "advance", "10m"], tmp_path).code == 0
    r = run_cli([*w, "apply", "p.json", "--yes"], tmp_path)
    assert r.code == 0, r
    (job,) = dump()["dataflow"]
    assert [s["state"] for s in job["snapshots"]] == ["READY"]  # the one taken first: no second
    assert job["state"] == "CANCELLED"  # disabling the key cancels it, after its snapshot (R31)


def test_a_snapshot_pending_when_the_key_goes_fails_with_the_job() -> None:
    """What the wait prevents: in the fake as on Dataflow, disabling the key cancels the
    job for good, and a snapshot still being taken is lost with it."""
    ingest = services_job(INGEST, "ingest")
    ingest["snapshot_ready_after"] = "10m"
    b = make(dataflow=[ingest])
    assert b.dataflow.snapshot_job(INGEST).state == "PENDING"
    b.kms.update_crypto_key_version(f"{APP_KEY}/cryptoKeyVersions/3", "DISABLED")
    job = b.dataflow.get_job(INGEST)
    assert job.state == "CANCELLED" and [s.state for s in job.snapshots] == ["FAILED"]


# -- Functions: the five service agents of the Cloud Run functions CMEK page (R5) ---------------
@pytest.mark.parametrize("agent", [FUNCTIONS_AGENT, ARTIFACT_AGENT, STORAGE_AGENT, RUN_AGENT, EVENTARC_AGENT])
def test_a_function_deploy_needs_each_of_the_five_agents(agent: str) -> None:
    b = make()
    policy = b.kms.get_iam_policy(APP_KEY)
    policy.bindings[ENCRYPTER_DECRYPTER] = [m for m in policy.members(ENCRYPTER_DECRYPTER) if m != agent]
    b.kms.set_iam_policy(APP_KEY, policy)
    with pytest.raises(api.PermissionDenied) as err:
        b.functions.redeploy_function(FUNCTION)
    assert err.value.rule == "R5" and agent.split("@")[0].removeprefix("serviceAccount:") in err.value.message


def test_replace_key_grants_all_five_function_agents(backend_kind: str, tmp_path: Path) -> None:
    doc = services_world(new_key_agents=())
    path = write_world(tmp_path / "world.yaml", doc)
    w = ["--world", str(path)]
    r = run_cli(
        [*w, "--output", "json", "plan", "replace-key", "--key", APP_KEY, "--new-key", NEW_KEY], tmp_path
    )
    assert r.code == 0, r
    granted = {
        m
        for step in r.json()["steps"]
        for change in step["changes"]
        if change.get("action") == "grant"
        for m in ([change["member"]] if "member" in change else change.get("members", []))
    }
    assert {FUNCTIONS_AGENT, ARTIFACT_AGENT, STORAGE_AGENT, RUN_AGENT, EVENTARC_AGENT} <= granted, granted


# -- Backups of a deleted or re-created database (R20, R24) -------------------------------------
def deleted_database_world() -> dict[str, Any]:
    """The database was deleted (as the migration note suggests after a restore); its
    backup taken under version 1 remains until it expires."""
    gone = database(backups=[backup(OLD_BACKUP, v(APP_KEY, 1), "2026-11-20T00:00:00Z", OLD_BACKUP_EXPIRES)])
    gone["deleted"] = True
    return services_world(firestore=[gone])


def recreated_database_world() -> dict[str, Any]:
    """The same name, created again under NEW_KEY (another uid): the old backup is still
    under APP_KEY's version 1."""
    old = backup(OLD_BACKUP, v(APP_KEY, 1), "2026-11-20T00:00:00Z", OLD_BACKUP_EXPIRES)
    old["database_uid"] = "uid-before"
    again = database(key=NEW_KEY, active=[v(NEW_KEY, 1)], backups=[old])
    again["uid"] = "uid-after"
    return services_world(firestore=[again])


def backup_pins(inv: Any) -> dict[int, set[str]]:
    return {
        n: {e for g in u.pins() if g.kind == FIRESTORE_BACKUP for e in g.examples}
        for n, u in inv.versions.items()
    }


@pytest.mark.parametrize("world", [deleted_database_world, recreated_database_world])
def test_a_backup_outliving_its_database_still_pins_its_version(world: Any) -> None:
    b = FakeBackend.from_dict(world())
    assert backup_pins(scan_key(b, APP_KEY))[1] == {OLD_BACKUP}
    if world is deleted_database_world:
        assert DB not in {d.name for d in b.firestore.list_databases()}  # gone, its backup listed
        assert [x.name for x in b.firestore.list_backups()] == [OLD_BACKUP]


# -- Artifact Registry: a repository holds images under every version pushed with (R42) ---------
def repository_world(image_versions: list[str]) -> dict[str, Any]:
    """APP_KEY version 2 is DISABLED; the function now runs under version 3; its repository
    holds images pushed under `image_versions`."""
    return services_world(
        kms=[kms_key(APP_KEY, {1: "ENABLED", 2: "DISABLED", 3: "ENABLED"}, primary=3), kms_key(NEW_KEY)],
        storage=[],
        firestore=[],
        dataflow=[],
        run=[],
        functions=[function(version=v(APP_KEY, 3))],
        artifact_registry=[{"repository": REPOSITORY, "kms_key": APP_KEY, "image_versions": image_versions}],
    )


def test_an_image_under_an_old_version_blocks_destroying_it(backend_kind: str, tmp_path: Path) -> None:
    destroy = ["plan", "destroy-versions", "--key", APP_KEY, "--set", "versions=2"]
    held = write_world(tmp_path / "held.yaml", repository_world([v(APP_KEY, 2), v(APP_KEY, 3)]))
    r = run_cli(["--world", str(held), *destroy], tmp_path)
    assert_failed(r, 3, "refused", "version 2", REPOSITORY, "R42")
    free = write_world(tmp_path / "free.yaml", repository_world([v(APP_KEY, 3)]))
    r = run_cli(["--world", str(free), *destroy], tmp_path)
    assert r.code == 0, r


def test_a_function_redeploy_adds_an_image_under_the_new_primary() -> None:
    b = make(artifact_registry=[{"repository": REPOSITORY, "kms_key": APP_KEY}])
    assert b.functions.repository_image_versions(REPOSITORY, APP_KEY) == (v(APP_KEY, 2),)  # its deploy
    b.functions.redeploy_function(FUNCTION)
    assert b.functions.repository_image_versions(REPOSITORY, APP_KEY) == (v(APP_KEY, 2), v(APP_KEY, 3))
    inv = scan_key(b, APP_KEY)
    held = {n for n, u in inv.versions.items() for g in u.pins() if g.kind == REPOSITORY_IMAGES}
    assert held == {2, 3}
    assert not PIN_KINDS[REPOSITORY_IMAGES].blocks_disable and PIN_KINDS[REPOSITORY_IMAGES].blocks_destroy


def test_disable_key_says_new_function_executions_fail(backend_kind: str, tmp_path: Path) -> None:
    """The Cloud Run functions CMEK page: "Function executions already in progress will
    continue to run, but new executions will fail"."""
    path = write_world(tmp_path / "world.yaml", services_world())
    r = run_cli(["--world", str(path), "--output", "json", "plan", "disable-key", "--key", APP_KEY], tmp_path)
    assert r.code == 0, r
    impacts = [
        i for s in r.json()["steps"] for i in s["blockers"] if i["kind"] in ("function", "function_key")
    ]
    assert impacts and all("new execution" in i["impact"] for i in impacts), impacts


# -- Cloud Run traffic: tags serve, and a share pinned by name stays ----------------------------
def tagged_world(*, pinned: bool = False) -> dict[str, Any]:
    """api-00001 (version 1) has a tag at 0%; api-00002 (version 2) takes 100% and also
    carries a tag, so it is listed twice in the service's traffic."""
    old = revision("api-00001", v(APP_KEY, 1), 0)
    old["tag"] = "blue"
    new = revision("api-00002", v(APP_KEY, 2), 100)
    new["tag"] = "green"
    new["pinned"] = pinned
    return services_world(
        storage=[], firestore=[], dataflow=[], functions=[], run=[service(revisions=[old, new])]
    )


def run_pins(inv: Any) -> dict[int, set[str]]:
    return {
        n: {g.kind for g in u.pins() if g.kind in (RUN_SERVING, RUN_IDLE)} for n, u in inv.versions.items()
    }


def test_a_tagged_revision_serves_whatever_its_share() -> None:
    pins = run_pins(scan_key(FakeBackend.from_dict(tagged_world()), APP_KEY))
    assert pins[1] == {RUN_SERVING} and pins[2] == {RUN_SERVING}


def test_a_new_revision_takes_only_the_traffic_that_follows_latest() -> None:
    b = FakeBackend.from_dict(tagged_world(pinned=True))
    svc = b.run.update_service(SERVICE)
    shares = {r.name: (r.traffic_percent, r.tags) for r in svc.revisions}
    assert shares == {"api-00001": (0, ("blue",)), "api-00002": (100, ("green",)), "api-00003": (0, ())}
    b = FakeBackend.from_dict(tagged_world(pinned=False))
    shares = {r.name: r.traffic_percent for r in b.run.update_service(SERVICE).revisions}
    assert shares == {"api-00001": 0, "api-00002": 0, "api-00003": 100}


def test_rotate_key_keeps_the_versions_of_tagged_revisions(backend_kind: str, tmp_path: Path) -> None:
    path = write_world(tmp_path / "world.yaml", tagged_world())
    w = ["--world", str(path)]
    r = run_cli([*w, "plan", "rotate-key", "--key", APP_KEY, "--out", "p.json"], tmp_path)
    assert r.code == 0, r
    assert "tagged to api-00001, api-00002 stays on the old version" in r.stdout
    assert run_cli([*w, "apply", "p.json", "--yes"], tmp_path).code == 0
    world = yaml.safe_load(run_cli([*w, "world", "dump"], tmp_path).stdout)
    versions = {k["key"]: k["versions"] for k in world["kms"]}[APP_KEY]
    assert versions[1] == "ENABLED" and versions[2] == "ENABLED"  # still served through their tags (R43)


# -- Retention expiry is Cloud Storage's word, not a computation (R16) --------------------------
def test_retention_expiry_prefers_what_cloud_storage_says() -> None:
    b = FakeBackend.from_dict(retained_world())
    obj = b.storage.get_object("held", "ledger")
    bucket = b.storage.get_bucket("held")
    assert retention_expiry(obj, bucket) == datetime(2026, 10, 31, tzinfo=timezone.utc)  # created + 30d
    later = obj._replace(retention_expires=datetime(2026, 12, 2, tzinfo=timezone.utc))
    assert retention_expiry(later, bucket) == datetime(2026, 12, 2, tzinfo=timezone.utc)


def retained_world() -> dict[str, Any]:
    """A locked 30-day policy; the object was created 2026-10-01 (so created + 30d has passed)."""
    held = bucket("held", [obj("ledger", v(APP_KEY, 1), created="2026-10-01T00:00:00Z")])
    held["retention"] = {"period": "30d", "locked": True}
    return make_world(storage=[held])


# -- A new primary propagates (up to 3 h): what is deployed meanwhile keeps the old one ----------
# Cloud KMS resource consistency: "While such eventually-consistent changes propagate,
# Encrypt operations for a CryptoKey might use the CryptoKey's previous primary version";
# they "may take up to 3 hours in exceptional cases" (rotator.pins.PROPAGATION).
PRIMARY_MADE = "2026-11-12T00:00:00Z"  # version 3 of APP_KEY, ten days before `now`


def window_world(deployed: str) -> dict[str, Any]:
    """Versions 1-3 ENABLED, 3 primary since PRIMARY_MADE; the serving revision api-00002
    and the function are recorded under version 3 (KMS's word) and were deployed at
    `deployed`."""
    app = kms_key(APP_KEY, {1: "ENABLED", 2: "ENABLED", 3: "ENABLED"}, primary=3)
    app["created"] = {1: "2026-01-01T00:00:00Z", 2: "2026-06-01T00:00:00Z", 3: PRIMARY_MADE}
    old = revision("api-00001", v(APP_KEY, 2), 0)
    new = dict(revision("api-00002", v(APP_KEY, 3), 100), deployed=deployed)
    fn = dict(function(version=v(APP_KEY, 3)), deployed=deployed)
    world = services_world(storage=[], firestore=[], dataflow=[], run=[service(revisions=[old, new])])
    world["functions"] = [fn]
    world["kms"] = [app if k["key"] == APP_KEY else k for k in world["kms"]]
    return world


def window_pins(inv: Any) -> dict[int, set[tuple[str, str]]]:
    """version -> the (kind, resource) of its propagation-window pins."""
    return {
        n: {(g.kind, g.resource) for g in u.pins() if g.kind in (RUN_WINDOW, FUNCTION_WINDOW)}
        for n, u in inv.versions.items()
    }


IN_WINDOW = window_world("2026-11-12T01:00:00Z")  # an hour after version 3 became primary
AFTER_WINDOW = window_world("2026-11-13T00:00:00Z")  # a day after


def check_in_window(inv: Any) -> None:
    """Not knowing which version 3 replaced, every older ENABLED one is pinned, from
    disable and destroy, until a redeploy after the window's end."""
    both = {(RUN_WINDOW, SERVICE), (FUNCTION_WINDOW, FUNCTION)}
    assert window_pins(inv) == {1: both, 2: both, 3: set()}
    for n in (1, 2):
        pins = [g for g in inv.version(n).pins() if g.kind in (RUN_WINDOW, FUNCTION_WINDOW)]
        assert all(g.spec.blocks_disable and g.spec.blocks_destroy and g.rule == "R43" for g in pins)
        assert {g.frees_when for g in pins} == {
            "the service is redeployed after 2026-11-12T03:00:00Z",
            "the function is redeployed after 2026-11-12T03:00:00Z",
        }
        assert any(g.examples == ["api-00002"] for g in pins)


def check_after_window(inv: Any) -> None:
    """Deployed long after the change: KMS's word stands, each pins only its own version."""
    assert window_pins(inv) == {1: set(), 2: set(), 3: set()}
    assert {g.kind for g in inv.version(3).pins()} >= {RUN_SERVING, FUNCTION_PIN}
    assert RUN_SERVING not in {g.kind for g in inv.version(1).pins()}


def test_a_deploy_within_3_hours_of_a_primary_change_pins_the_older_versions() -> None:
    check_in_window(scan_key(FakeBackend.from_dict(IN_WINDOW), APP_KEY))


def test_a_deploy_long_after_the_primary_change_pins_only_its_own_version() -> None:
    check_after_window(scan_key(FakeBackend.from_dict(AFTER_WINDOW), APP_KEY))


def test_the_replaced_primary_when_known_is_the_only_version_the_window_pins() -> None:
    """Rotator's own apply knows which version its new primary replaced (plan + journal)."""
    b = FakeBackend.from_dict(IN_WINDOW)
    pins = window_pins(scan_key(b, APP_KEY, replaced=(3, 2)))
    assert pins == {1: set(), 2: {(RUN_WINDOW, SERVICE), (FUNCTION_WINDOW, FUNCTION)}, 3: set()}
    # Knowledge of another change (not the current primary's) is not used: the safe side.
    assert window_pins(scan_key(b, APP_KEY, replaced=(4, 3)))[1]


def redeploy_across_the_window(backend: Any, advance: Any) -> None:
    """Rotate by hand, redeploy at once (in the window), then again 4 hours later."""
    b = backend
    made = b.kms.create_crypto_key_version(APP_KEY).number
    b.kms.update_crypto_key_primary_version(APP_KEY, v(APP_KEY, made))
    b.run.update_service(SERVICE)
    b.functions.redeploy_function(FUNCTION)
    inv = scan_key(b, APP_KEY)
    assert window_pins(inv)[3] == {(RUN_WINDOW, SERVICE), (FUNCTION_WINDOW, FUNCTION)}
    assert window_pins(inv)[made] == set()
    advance(timedelta(hours=4))
    b.run.update_service(SERVICE)
    b.functions.redeploy_function(FUNCTION)
    later = scan_key(b, APP_KEY)
    assert window_pins(later) == {n: set() for n in inv.versions}
    # The revision deployed in the window no longer serves: it still keeps version 3 from
    # being destroyed (not disabled), as long as it exists (R43).
    (idle,) = [g for g in later.version(3).pins() if g.kind == RUN_IDLE_WINDOW]
    assert idle.count == 1 and idle.frees_when == "the revision is deleted"
    assert not idle.spec.blocks_disable and idle.spec.blocks_destroy


# The window of every version a use is recorded under, not only the current primary's:
# version 3 became primary at PRIMARY_MADE, version 4 a day later; api-00002 and the
# function were deployed in version 3's window, api-00003 long after version 4's.
def old_window_world(share: int, *, with_function: bool = False) -> dict[str, Any]:
    """api-00002 (version 3, in its window) has `share`% of the traffic, api-00003
    (version 4) the rest; with_function: the function too is under version 3, in its window."""
    app = kms_key(APP_KEY, {1: "ENABLED", 2: "ENABLED", 3: "ENABLED", 4: "ENABLED"}, primary=4)
    app["created"] = {
        1: "2026-01-01T00:00:00Z",
        2: "2026-06-01T00:00:00Z",
        3: PRIMARY_MADE,
        4: "2026-11-13T00:00:00Z",
    }
    in_window = dict(revision("api-00002", v(APP_KEY, 3), share), deployed="2026-11-12T01:00:00Z")
    current = dict(revision("api-00003", v(APP_KEY, 4), 100 - share), deployed="2026-11-14T00:00:00Z")
    fn = function(version=v(APP_KEY, 3 if with_function else 4))
    fn["deployed"] = "2026-11-12T01:00:00Z" if with_function else "2026-11-14T00:00:00Z"
    world = services_world(
        storage=[], firestore=[], dataflow=[], run=[service(revisions=[in_window, current])]
    )
    world["functions"] = [fn]
    world["kms"] = [app if k["key"] == APP_KEY else k for k in world["kms"]]
    return world


IDLE_IN_AN_OLD_WINDOW = old_window_world(0)
SERVING_IN_AN_OLD_WINDOW = old_window_world(30, with_function=True)


def all_window_pins(inv: Any) -> dict[int, set[tuple[str, str]]]:
    return {
        n: {(g.kind, g.resource) for g in u.pins() if g.kind in WINDOW_OF.values()}
        for n, u in inv.versions.items()
    }


def check_idle_in_an_old_window(inv: Any) -> None:
    """An idle revision deployed in version 3's window keeps versions 1 and 2 from being
    destroyed, not from being disabled, though version 4 is primary now."""
    idle = {(RUN_IDLE_WINDOW, SERVICE)}
    assert all_window_pins(inv) == {1: idle, 2: idle, 3: set(), 4: set()}
    for n in (1, 2):
        (g,) = [g for g in inv.version(n).pins() if g.kind == RUN_IDLE_WINDOW]
        assert not g.spec.blocks_disable and g.spec.blocks_destroy and g.rule == "R43"
        assert g.examples == ["api-00002"] and g.frees_when == "the revision is deleted"
        assert "of version 3 becoming primary" in g.detail


def check_serving_in_an_old_window(inv: Any) -> None:
    """Serving, or a function: versions 1 and 2 are kept from disable and destroy."""
    both = {(RUN_WINDOW, SERVICE), (FUNCTION_WINDOW, FUNCTION)}
    assert all_window_pins(inv) == {1: both, 2: both, 3: set(), 4: set()}
    for n in (1, 2):
        pins = [g for g in inv.version(n).pins() if g.kind in (RUN_WINDOW, FUNCTION_WINDOW)]
        assert all(g.spec.blocks_disable and g.spec.blocks_destroy for g in pins)
        assert {g.frees_when for g in pins} == {
            "the service is redeployed after 2026-11-12T03:00:00Z",
            "the function is redeployed after 2026-11-12T03:00:00Z",
        }


def test_an_idle_revision_in_an_older_versions_window_keeps_the_versions_before_it() -> None:
    check_idle_in_an_old_window(scan_key(FakeBackend.from_dict(IDLE_IN_AN_OLD_WINDOW), APP_KEY))


def test_a_use_in_an_older_versions_window_keeps_the_versions_before_it() -> None:
    check_serving_in_an_old_window(scan_key(FakeBackend.from_dict(SERVING_IN_AN_OLD_WINDOW), APP_KEY))


def test_a_window_kind_blocks_and_stops_what_its_direct_kind_does() -> None:
    for direct, window in WINDOW_OF.items():
        assert (PIN_KINDS[window].blocks_disable, PIN_KINDS[window].blocks_destroy) == (
            PIN_KINDS[direct].blocks_disable,
            PIN_KINDS[direct].blocks_destroy,
        )
        assert PIN_KINDS[window].impact == PIN_KINDS[direct].impact and PIN_KINDS[window].rule == "R43"


def test_destroy_versions_refuses_a_version_an_idle_revision_in_an_older_window_may_be_under(
    backend_kind: str, tmp_path: Path
) -> None:
    """The reviewer's case: a revision deployed in version 3's window, idle since, and
    version 4 primary now: version 2 may still be what it is under (R43 with R2)."""
    path = write_world(tmp_path / "world.yaml", IDLE_IN_AN_OLD_WINDOW)
    r = run_cli(
        ["--world", str(path), "plan", "destroy-versions", "--key", APP_KEY, "--set", "versions=2"], tmp_path
    )
    assert_failed(r, 3, "refused", "version 2", "api-00002", "R43")


def test_a_redeploy_after_the_window_frees_the_replaced_primary() -> None:
    b = FakeBackend.from_dict(services_world(storage=[], firestore=[], dataflow=[]))
    redeploy_across_the_window(b, b.advance)


def test_rotate_key_keeps_the_replaced_primary_until_a_redeploy_after_the_window(
    backend_kind: str, tmp_path: Path
) -> None:
    """The Cloud Run service and the function are redeployed right after the new primary
    is made, so they may be under the primary it replaced (version 3): rotate-key keeps
    it enabled, says why and when it frees; the next rotation, past the window, frees it."""
    path = write_world(tmp_path / "world.yaml", services_world(storage=[], firestore=[], dataflow=[]))
    w = ["--world", str(path)]

    def versions() -> dict[int, str]:
        world = yaml.safe_load(run_cli([*w, "world", "dump"], tmp_path).stdout)
        return {k["key"]: k["versions"] for k in world["kms"]}[APP_KEY]  # type: ignore[no-any-return]

    r = run_cli([*w, "plan", "rotate-key", "--key", APP_KEY, "--out", "p.json"], tmp_path)
    assert r.code == 0, r
    keep = r.stdout.split("! keep version 3: pinned", 1)[1]
    assert f"{SERVICE}: its new revision will be deployed right after this plan makes a new primary" in keep
    assert f"{FUNCTION} will be deployed right after this plan makes a new primary" in keep
    assert "[R43; frees when the service is redeployed after the new primary's propagation window" in keep
    r = run_cli([*w, "apply", "p.json", "--yes"], tmp_path)
    assert r.code == 0, r
    assert versions() == {1: "DISABLED", 2: "DISABLED", 3: "ENABLED", 4: "ENABLED"}
    r = run_cli([*w, "-o", "json", "inventory", APP_KEY], tmp_path)
    assert r.code == 0, r
    (v3,) = [x for x in json.loads(r.stdout)["versions"] if x["number"] == 3]
    frees = {p["frees_when"] for p in v3["uses"] if p["kind"] in (RUN_WINDOW, FUNCTION_WINDOW)}
    assert frees == {
        "the service is redeployed after 2026-11-22T03:00:00Z",
        "the function is redeployed after 2026-11-22T03:00:00Z",
    }
    assert run_cli([*w, "world", "advance", "4h"], tmp_path).code == 0
    r = run_cli([*w, "plan", "rotate-key", "--key", APP_KEY, "--out", "p2.json"], tmp_path)
    assert r.code == 0, r
    assert "- disable " + v(APP_KEY, 3) in r.stdout
    assert run_cli([*w, "apply", "p2.json", "--yes"], tmp_path).code == 0
    # Version 3 frees; version 4, the primary this rotation replaced, is kept in its turn.
    assert versions() == {1: "DISABLED", 2: "DISABLED", 3: "DISABLED", 4: "ENABLED", 5: "ENABLED"}
