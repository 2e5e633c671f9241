"""What the fakes of Firestore, Dataflow, Cloud Run and functions share: each service's
agent needs Encrypter/Decrypter on the key (R5, R33), keys in the right location (R7,
R30), and the world file's sections for them; each wrong step fails with the error the
cloud answers with, naming the rule. Each service's own rules are in its folder
(tests/services/<service>/test_fake_<service>.py).

Backends: fake.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from service_fakes import (
    NEW_REPOSITORY,
    assert_rule,
    launch,
    make,
    revoke,
    states,
)
from worlds import APP_2026_KEY as NEW_KEY
from worlds import APP_EU_KEY as EU_KEY
from worlds import (
    APP_KEY,
    ARTIFACT_AGENT,
    BATCH,
    COMPUTE_AGENT,
    DATAFLOW_AGENT,
    DB,
    FINISHED,
    FIRESTORE_AGENT,
    FUNCTION,
    FUNCTIONS_AGENT,
    GLOBAL_KEY,
    INGEST,
    LEGACY,
    NEW_BACKUP,
    OLD_BACKUP,
    OLD_BACKUP_EXPIRES,
    REPOSITORY,
    RUN_AGENT,
    SERVICE,
    US_BACKUP,
    US_KEY,
    backup,
    database,
    function,
    job,
    revision,
    service,
    services_world,
    v,
)

from rotator import apierrors as api
from rotator.backends.fake import FakeBackend
from rotator.errors import BadInput

# -- R5: each service's agent needs Encrypter/Decrypter on the key -------------------------


def test_r5_run_deploy_without_the_run_agent_is_permission_denied(b: FakeBackend) -> None:
    revoke(b, APP_KEY, RUN_AGENT)
    with pytest.raises(api.PermissionDenied) as err:
        b.run.update_service(SERVICE)
    assert err.value.rule == "R5"
    assert "serverless-robot-prod" in err.value.message
    assert len(b.run.get_service(SERVICE).revisions) == 2  # nothing deployed


def test_r5_function_redeploy_without_the_functions_agent_is_permission_denied(b: FakeBackend) -> None:
    revoke(b, APP_KEY, FUNCTIONS_AGENT)
    with pytest.raises(api.PermissionDenied) as err:
        b.functions.redeploy_function(FUNCTION)
    assert err.value.rule == "R5"
    assert "gcf-admin-robot" in err.value.message
    assert b.functions.get_function(FUNCTION).kms_key_version == v(APP_KEY, 2)


def test_r5_function_redeploy_without_the_artifact_registry_agent_is_permission_denied(
    b: FakeBackend,
) -> None:
    revoke(b, APP_KEY, ARTIFACT_AGENT)
    with pytest.raises(api.PermissionDenied) as err:
        b.functions.redeploy_function(FUNCTION)
    assert err.value.rule == "R5"
    assert "gcp-sa-artifactregistry" in err.value.message


def test_r5_repository_under_a_key_without_the_artifact_registry_agent_is_permission_denied(
    b: FakeBackend,
) -> None:
    revoke(b, NEW_KEY, ARTIFACT_AGENT)
    with pytest.raises(api.PermissionDenied) as err:
        b.functions.create_repository(NEW_REPOSITORY, kms_key=NEW_KEY)
    assert err.value.rule == "R5"


def test_r5_firestore_restore_under_a_key_without_the_firestore_agent_is_permission_denied(
    b: FakeBackend,
) -> None:
    revoke(b, NEW_KEY, FIRESTORE_AGENT)
    with pytest.raises(api.PermissionDenied) as err:
        b.firestore.restore_database("restored", NEW_BACKUP, kms_key=NEW_KEY)
    assert err.value.rule == "R5"
    assert "gcp-sa-firestore" in err.value.message
    assert [d.name for d in b.firestore.list_databases()] == [DB, "projects/demo/databases/us-wide"]


@pytest.mark.parametrize("agent", [DATAFLOW_AGENT, COMPUTE_AGENT], ids=["dataflow-agent", "compute-default"])
def test_r5_dataflow_launch_without_either_dataflow_account_is_permission_denied(agent: str) -> None:
    b = make()
    revoke(b, NEW_KEY, agent)
    with pytest.raises(api.PermissionDenied) as err:
        launch(b, key=NEW_KEY)
    assert err.value.rule == "R5"
    assert agent.split(":", 1)[1] in err.value.message
    assert "relaunch-1" not in states(b)


@pytest.mark.parametrize("agent", [DATAFLOW_AGENT, COMPUTE_AGENT], ids=["dataflow-agent", "compute-default"])
def test_r33_revoking_a_dataflow_account_cancels_the_running_jobs_on_that_key(agent: str) -> None:
    b = make()
    other = launch(b, "on-new-key", key=NEW_KEY)
    revoke(b, APP_KEY, agent)
    after = states(b)
    assert after[INGEST] == after[LEGACY] == after[BATCH] == "CANCELLED"
    assert after[FINISHED] == "DONE"  # an ended job stays as it ended
    assert after[other.id] == "RUNNING"  # another key's job is untouched


def test_r33_an_unrelated_iam_change_leaves_the_jobs_running(b: FakeBackend) -> None:
    revoke(b, APP_KEY, RUN_AGENT)
    assert states(b)[INGEST] == "RUNNING"


# -- R7 / R30: locations --------------------------------------------------------------------


def test_r7_cloud_run_revision_under_a_key_in_another_region_is_invalid(b: FakeBackend) -> None:
    with pytest.raises(api.InvalidArgument) as err:
        b.run.update_service(SERVICE, kms_key=EU_KEY)
    assert_rule(err, "R7")
    assert len(b.run.get_service(SERVICE).revisions) == 2


def test_r7_function_under_a_key_in_another_region_is_invalid(b: FakeBackend) -> None:
    with pytest.raises(api.InvalidArgument) as err:
        b.functions.redeploy_function(FUNCTION, kms_key=EU_KEY)
    assert_rule(err, "R7")
    assert b.functions.get_function(FUNCTION).kms_key == APP_KEY


def test_r7_artifact_registry_repository_under_a_key_in_another_region_is_invalid(b: FakeBackend) -> None:
    with pytest.raises(api.InvalidArgument) as err:
        b.functions.create_repository(NEW_REPOSITORY, kms_key=EU_KEY)
    assert_rule(err, "R7")
    with pytest.raises(api.NotFound):
        b.functions.get_repository_key(NEW_REPOSITORY)


@pytest.mark.parametrize("key", [US_KEY, GLOBAL_KEY], ids=["multi-region", "global"])
def test_r30_dataflow_launch_with_a_non_regional_key_is_invalid(key: str) -> None:
    b = make()
    with pytest.raises(api.InvalidArgument) as err:
        launch(b, key=key)
    assert_rule(err, "R30")
    assert "relaunch-1" not in states(b)


def test_r30_dataflow_launch_with_a_key_in_another_region_is_invalid(b: FakeBackend) -> None:
    with pytest.raises(api.InvalidArgument) as err:
        launch(b, key=EU_KEY)
    assert err.value.rule in ("R7", "R30"), err.value


def test_r30_dataflow_launch_in_the_key_region_runs_under_its_primary(b: FakeBackend) -> None:
    j = launch(b, key=NEW_KEY)
    assert j.state == "RUNNING"
    assert j.kms_key == NEW_KEY and j.kms_key_version == v(NEW_KEY, 1)


def test_r7_firestore_restore_of_a_nam5_database_needs_a_key_in_us(b: FakeBackend) -> None:
    with pytest.raises(api.InvalidArgument) as err:
        b.firestore.restore_database("us-restored", US_BACKUP, kms_key=NEW_KEY)  # us-east1
    assert_rule(err, "R7")
    restored = b.firestore.restore_database("us-restored", US_BACKUP, kms_key=US_KEY)
    assert restored.location == "nam5" and restored.kms_key == US_KEY


def test_r7_firestore_restore_of_a_regional_database_needs_a_key_in_that_region(b: FakeBackend) -> None:
    with pytest.raises(api.InvalidArgument) as err:
        b.firestore.restore_database("restored", NEW_BACKUP, kms_key=EU_KEY)
    assert_rule(err, "R7")


# -- the world file: these sections are validated -------------------------------------------


def bad_world(path: str, **overrides: Any) -> BadInput:
    with pytest.raises(BadInput) as err:
        FakeBackend.from_dict(services_world(**overrides), source="world.yaml")
    assert path in err.value.message, (path, err.value.message)
    assert err.value.exit_code == 2
    return err.value


@pytest.mark.parametrize(
    ("path", "section", "entry"),
    [
        ("firestore[0].database", "firestore", database("projects/demo/dbs/x")),
        ("dataflow[0].job", "dataflow", job("not a job id", "x")),
        ("run[0].service", "run", service("projects/demo/services/api")),
        ("functions[0].function", "functions", function("resize")),
    ],
    ids=["firestore", "dataflow", "run", "functions"],
)
def test_world_malformed_name(path: str, section: str, entry: dict[str, Any]) -> None:
    err = bad_world(path, **{section: [entry]})
    assert "malformed" in err.message


def test_world_malformed_repository_name() -> None:
    bad_world(
        "artifact_registry[0].repository", artifact_registry=[{"repository": "functions", "kms_key": None}]
    )


@pytest.mark.parametrize(
    ("path", "rule", "section", "entry"),
    [
        ("firestore[0].kms_key", "R7", "firestore", database(location="nam5", active=[])),
        ("dataflow[0].kms_key", "R30", "dataflow", job(INGEST, "x", v(EU_KEY, 1), key=EU_KEY)),
        ("dataflow[0].kms_key", "R30", "dataflow", job(INGEST, "x", v(GLOBAL_KEY, 1), key=GLOBAL_KEY)),
        (
            "run[0].revisions[0].kms_key",
            "R7",
            "run",
            service(revisions=[revision("a-1", v(EU_KEY, 1), 100, EU_KEY)]),
        ),
        ("functions[0].kms_key", "R7", "functions", function(version=v(EU_KEY, 1), key=EU_KEY)),
    ],
    ids=["firestore-nam5", "dataflow-other-region", "dataflow-global", "run", "functions"],
)
def test_world_key_in_the_wrong_location(path: str, rule: str, section: str, entry: dict[str, Any]) -> None:
    err = bad_world(path, **{section: [entry]})
    assert rule in err.message


def test_world_artifact_registry_key_in_the_wrong_region() -> None:
    err = bad_world(
        "artifact_registry[0].kms_key",
        artifact_registry=[{"repository": REPOSITORY, "kms_key": EU_KEY}],
    )
    assert "R7" in err.message


@pytest.mark.parametrize(
    ("path", "section", "entry"),
    [
        ("firestore[0].active_key_versions[0]", "firestore", database(active=[v(APP_KEY, 9)])),
        (
            "firestore[0].backups[0].kms_key_version",
            "firestore",
            database(backups=[backup(OLD_BACKUP, v(APP_KEY, 9), "2026-11-20T00:00:00Z", OLD_BACKUP_EXPIRES)]),
        ),
        ("dataflow[0].kms_key_version", "dataflow", job(INGEST, "x", v(APP_KEY, 9))),
        (
            "run[0].revisions[0].kms_key_version",
            "run",
            service(revisions=[revision("a-1", v(APP_KEY, 9), 100)]),
        ),
        ("functions[0].kms_key_version", "functions", function(version=v(APP_KEY, 9))),
    ],
    ids=["firestore-active", "firestore-backup", "dataflow", "run", "functions"],
)
def test_world_dangling_kms_key_version(path: str, section: str, entry: dict[str, Any]) -> None:
    err = bad_world(path, **{section: [entry]})
    assert "version 9 does not exist" in err.message


@pytest.mark.parametrize(
    ("path", "section", "entry"),
    [
        ("dataflow[0].kms_key_version", "dataflow", job(INGEST, "x", v(NEW_KEY, 1))),
        (
            "run[0].revisions[0].kms_key_version",
            "run",
            service(revisions=[revision("a-1", v(NEW_KEY, 1), 100)]),
        ),
        ("functions[0].kms_key_version", "functions", function(version=v(NEW_KEY, 1))),
        ("firestore[0].active_key_versions[0]", "firestore", database(active=[v(NEW_KEY, 1)])),
    ],
    ids=["dataflow", "run", "functions", "firestore-active"],
)
def test_world_kms_key_version_of_another_key_than_the_resource_key(
    path: str, section: str, entry: dict[str, Any]
) -> None:
    """A resource encrypted under APP_KEY cannot hold a version of NEW_KEY: the cloud
    never produces that (the version is the key's primary at deploy/launch time)."""
    bad_world(path, **{section: [entry]})


def test_world_dangling_docker_repository() -> None:
    """A function's repository must be one of artifact_registry's when that section is
    given; otherwise every inventory of the key fails later with NOT_FOUND (exit 1)."""
    other = "projects/demo/locations/us-east1/repositories/other"
    bad_world(
        "functions[0].docker_repository",
        artifact_registry=[{"repository": other, "kms_key": APP_KEY}],
    )


def test_world_dangling_key_in_a_service_section() -> None:
    missing = "projects/demo/locations/us-east1/keyRings/ring/cryptoKeys/nope"
    err = bad_world("functions[0].kms_key", functions=[function(key=missing, version=v(APP_KEY, 2))])
    assert "not declared" in err.message


def test_world_the_all_services_world_loads_and_dumps_back(b: FakeBackend) -> None:
    doc = b.dump()
    again = FakeBackend.from_dict(copy.deepcopy(doc))
    assert again.dump() == doc
    assert {s: len(doc[s]) for s in ("firestore", "dataflow", "run", "functions")} == {
        "firestore": 2,
        "dataflow": 4,
        "run": 1,
        "functions": 1,
    }
