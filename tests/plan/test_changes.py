"""The change actions are one typed set (rotator.changes): the names in the plan
document stay the same strings, and each change renders and summarises itself.

Backends: none (documents only)."""

from __future__ import annotations

import json

from rotator.changes import SUMMARY_FIELDS, Change, change_line, change_sign

KEY = "projects/p/locations/us-east1/keyRings/r/cryptoKeys/k"
NEW = "projects/p/locations/us-east1/keyRings/r/cryptoKeys/k2"


def test_the_plan_document_keeps_the_same_action_names() -> None:
    assert sorted(c.value for c in Change) == sorted(
        [
            "create_version",
            "set_primary",
            "grant",
            "disable",
            "enable",
            "destroy",
            "restore",
            "set_default_kms_key",
            "rewrite",
            "wait_reencryption",
            "restore_database",
            "snapshot_job",
            "deploy_revision",
            "create_repository",
            "redeploy_function",
        ]
    )


def test_a_change_is_written_as_its_name() -> None:
    change = {"action": Change.DISABLE, "version": f"{KEY}/cryptoKeyVersions/1"}
    assert json.dumps(change) == json.dumps({"action": "disable", "version": f"{KEY}/cryptoKeyVersions/1"})
    assert f"{Change.DISABLE}" == str(Change.DISABLE) == "disable"
    assert Change.DISABLE == "disable" and "disable" in {Change.DISABLE}


def test_each_change_describes_itself_and_an_unknown_one_is_shown_raw() -> None:
    rewrite = {
        "action": "rewrite",
        "bucket": "gs://b",
        "objects": 2,
        "bytes": 3 * 1024,
        "from_version": f"{KEY}/cryptoKeyVersions/3",
        "to_key": NEW,
    }
    assert change_line(rewrite) == "gs://b: 2 objects (3.0 KiB) under version 3 -> k2"
    assert change_sign(rewrite) == "~"
    assert change_sign({"action": "disable", "version": "v"}) == "-"
    assert change_line({"action": "tidy_up"}) == "{'action': 'tidy_up'}"
    assert change_sign({"action": "tidy_up"}) == "*"


def test_each_change_adds_its_own_counters_to_the_summary() -> None:
    assert Change.REWRITE.tally({"objects": 4, "bytes": 10}) == {
        "objects_to_rewrite": 4,
        "bytes_to_rewrite": 10,
    }
    assert Change.DISABLE.tally({}) == {"versions_to_disable": 1}
    assert Change.SET_PRIMARY.tally({}) == {}
    counters = {name for c in Change for name in c.tally({"objects": 1, "bytes": 1})}
    assert counters <= set(SUMMARY_FIELDS)
