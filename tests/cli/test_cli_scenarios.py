"""End-to-end scenarios through the command line, on world files in tmp_path.

The pin table of README.md ("What pins a version") for Cloud Storage + KMS, row by
row, for disable (rotate-key's disable step keeps or disables) and destroy
(destroy-versions refuses with exit 3 or schedules); the issue's scenario; the
replace-key runbook (R13); the emergency disable-key; status and re-apply.

Backends: fake; gcp over the wire (tests/wire/test_suites_over_the_wire.py runs this file again).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import WorldCli, assert_failed
from worlds import (
    APP_KEY,
    BUCKET,
    ENCRYPTER_DECRYPTER,
    EU_KEY,
    NEW_KEY,
    OBJECT,
    STORAGE_AGENT,
    bucket,
    key,
    make_world,
    obj,
    v,
)

NOW = "2026-11-22T00:00:00Z"
DESTROY_AFTER = "2026-12-22T00:00:00Z"  # NOW + the default destroy_scheduled_duration 30d (R1)
RETAIN_UNTIL = "2031-01-01T00:00:00Z"
LOCKED_OBJECT_RETENTION = {"mode": "Locked", "retain_until": RETAIN_UNTIL}
LOCKED_BUCKET_RETENTION = {"period": "365d", "locked": True}


def versions_of(w: WorldCli, key_name: str = APP_KEY) -> dict[int, str]:
    return {int(n): s for n, s in w.key_of(key_name)["versions"].items()}


def destroy_times_of(w: WorldCli, key_name: str = APP_KEY) -> dict[int, str]:
    return {int(n): t for n, t in w.key_of(key_name).get("destroy_times", {}).items()}


def step(plan: dict[str, Any], step_id: str) -> dict[str, Any]:
    return next(s for s in plan["steps"] if s["id"] == step_id)


def assert_in_order(plan: dict[str, Any], wanted: list[str]) -> None:
    """The plan has the steps `wanted`, in that order (other services' steps between
    them are fine)."""
    ids = [s["id"] for s in plan["steps"]]
    assert all(i in ids for i in wanted), ids
    assert sorted(wanted, key=ids.index) == wanted, ids


def inv_version(doc: dict[str, Any], number: int) -> dict[str, Any]:
    """Version `number` in an inventory document (or a plan's `inventory`)."""
    inv = doc.get("inventory", doc)
    return next(x for x in inv["versions"] if x["number"] == number)


def uses(doc: dict[str, Any], number: int) -> dict[str, dict[str, Any]]:
    """kind -> use, for version `number` of an inventory (or plan) document."""
    return {u["kind"]: u for u in inv_version(doc, number)["uses"]}


def rotate(w: WorldCli) -> dict[str, Any]:
    plan = w.plan_json("rotate-key", APP_KEY)
    r = w.apply()
    assert r.code == 0, r
    return plan


def destroy(w: WorldCli, versions: str, *, out: str = "destroy.json") -> Any:
    return w("plan", "destroy-versions", "--key", APP_KEY, "--set", f"versions={versions}", "--out", out)


# -- the primary (R3) ---------------------------------------------------------------------


def test_primary_blocks_disable_the_new_primary_stays_enabled(tmp_path: Path) -> None:
    w = WorldCli(tmp_path, make_world(storage=[bucket(soft_delete=0)]))
    before = w.json("inventory", APP_KEY).json()
    assert inv_version(before, 2)["blocks_disable"] and inv_version(before, 2)["blocks_destroy"]
    assert uses(before, 2)["primary"]["rule"] == "R3"

    plan = rotate(w)
    # The plan never disables the primary it makes: only the versions that exist now.
    assert step(plan, "disable-old-versions")["data"]["disable"] == [1, 2]
    k = w.key_of(APP_KEY)
    assert k["primary"] == 3
    assert versions_of(w) == {1: "DISABLED", 2: "DISABLED", 3: "ENABLED"}
    after = w.json("inventory", APP_KEY).json()
    assert inv_version(after, 3)["primary"] and inv_version(after, 3)["blocks_disable"]


@pytest.mark.parametrize("state", ["ENABLED", "DISABLED"])
def test_destroying_the_primary_is_refused_naming_r3(tmp_path: Path, state: str) -> None:
    """The pin table: being the key's primary blocks destroy (R3: replace the primary
    first), whether or not the primary is currently enabled."""
    w = WorldCli(tmp_path, make_world(kms=[key(APP_KEY, {1: "ENABLED", 2: state}, primary=2)], storage=[]))
    before = w.dump()
    r = destroy(w, "2")
    assert_failed(r, 3, "refused", APP_KEY, "version 2", "R3")
    assert w.dump() == before
    assert not (tmp_path / "destroy.json").exists()


# -- a live object (R14) ------------------------------------------------------------------


def test_rotation_rewrites_a_live_object_then_disables_the_old_version(tmp_path: Path) -> None:
    w = WorldCli(tmp_path, make_world())  # OBJECT under version 1, soft delete 7d
    plan = w.plan_json("rotate-key", APP_KEY)
    assert_in_order(plan, ["new-primary-version", "rewrite-objects", "disable-old-versions"])
    assert plan["steps"][-1]["id"] == "disable-old-versions"
    rewrite = step(plan, "rewrite-objects")["changes"]
    assert rewrite == [
        {
            "action": "rewrite",
            "bucket": f"gs://{BUCKET}",
            "from_version": v(APP_KEY, 1),
            "to_key": APP_KEY,
            "objects": 1,
            "bytes": 1024,
        }
    ]
    assert step(plan, "disable-old-versions")["data"]["disable"] == [1, 2]
    assert uses(plan, 1)["live_object"]["rule"] == "R14"

    r = w.apply()
    assert r.code == 0, r
    o = w.object_of(BUCKET, OBJECT)
    assert (o["generation"], o["kms_key_version"]) == (2, v(APP_KEY, 3))
    # The overwritten generation is kept by soft delete under the old version (R18).
    assert o["soft_deleted"] == [
        {
            "generation": 1,
            "kms_key_version": v(APP_KEY, 1),
            "size": 1024,
            "hard_delete_time": "2026-11-29T00:00:00Z",
        }
    ]
    assert versions_of(w) == {1: "DISABLED", 2: "DISABLED", 3: "ENABLED"}
    assert w.key_of(APP_KEY)["primary"] == 3


def test_destroy_refuses_a_disabled_version_a_live_object_still_needs(tmp_path: Path) -> None:
    w = WorldCli(tmp_path, make_world(kms=[key(APP_KEY, {1: "DISABLED", 2: "ENABLED"}, primary=2)]))
    before = w.dump()
    r = destroy(w, "1")
    assert_failed(r, 3, "refused", APP_KEY, "version 1", "R14", f"gs://{BUCKET}", OBJECT)
    assert w.dump() == before


def test_destroy_accepts_a_version_nothing_pins(tmp_path: Path) -> None:
    w = WorldCli(tmp_path, make_world(storage=[bucket(objects=[obj(OBJECT, v(APP_KEY, 1))], soft_delete=0)]))
    rotate(w)
    assert versions_of(w) == {1: "DISABLED", 2: "DISABLED", 3: "ENABLED"}
    r = destroy(w, "1,2")
    assert r.code == 0, r
    assert f"destroy {v(APP_KEY, 1)} (DESTROYED after {DESTROY_AFTER})" in r.stdout
    r = w.apply("destroy.json")
    assert r.code == 0, r
    assert versions_of(w) == {1: "DESTROY_SCHEDULED", 2: "DESTROY_SCHEDULED", 3: "ENABLED"}
    assert destroy_times_of(w) == {1: DESTROY_AFTER, 2: DESTROY_AFTER}
    # The scheduled duration passes: DESTROYED for good (R1).
    assert w("world", "advance", "31d").code == 0
    assert versions_of(w) == {1: "DESTROYED", 2: "DESTROYED", 3: "ENABLED"}


# -- held and retained objects (R16) -------------------------------------------------------

R16_CASES = {
    "temporary-hold": (
        {"temporary_hold": True},
        {},
        "held_object",
        None,
    ),
    "event-based-hold": (
        {"event_based_hold": True},
        {},
        "held_object",
        None,
    ),
    "locked-object-retention": (
        {"retention": LOCKED_OBJECT_RETENTION},
        {},
        "retained_object",
        RETAIN_UNTIL,
    ),
    "locked-bucket-retention": (
        {"created": "2026-06-01T00:00:00Z"},
        {"retention": LOCKED_BUCKET_RETENTION},
        "retained_object",
        "2027-06-01T00:00:00Z",  # created + 365d
    ),
}


def _r16_world(case: str, v1_state: str = "ENABLED") -> dict[str, Any]:
    obj_extra, bucket_extra, _, _ = R16_CASES[case]
    return make_world(
        kms=[key(APP_KEY, {1: v1_state, 2: "ENABLED"}, primary=2), key(NEW_KEY)],
        storage=[bucket(objects=[obj(OBJECT, v(APP_KEY, 1), **obj_extra)], soft_delete=0, **bucket_extra)],
    )


@pytest.mark.parametrize("case", list(R16_CASES))
def test_rotation_keeps_a_version_protecting_a_held_or_retained_object(tmp_path: Path, case: str) -> None:
    _, _, kind, frees = R16_CASES[case]
    w = WorldCli(tmp_path, _r16_world(case))
    plan = w.plan_json("rotate-key", APP_KEY)
    assert step(plan, "rewrite-objects")["changes"] == []  # it cannot be rewritten (R16)
    disable = step(plan, "disable-old-versions")
    assert disable["data"]["disable"] == [2]
    assert list(disable["data"]["keep"]) == ["1"]
    [blocker] = disable["blockers"]
    assert (blocker["kind"], blocker["rule"], blocker["version"]) == (kind, "R16", 1)
    assert blocker["frees_at"] == frees
    assert inv_version(plan, 1)["frees_up"] == frees

    text = w.plan("rotate-key", APP_KEY, out="plan-text.json")
    assert text.code == 0, text
    assert "keep version 1" in text.stdout
    if frees:
        assert f"frees {frees}" in text.stdout

    r = w.apply()
    assert r.code == 0, r
    o = w.object_of(BUCKET, OBJECT)
    assert (o["generation"], o["kms_key_version"]) == (1, v(APP_KEY, 1))
    assert versions_of(w) == {1: "ENABLED", 2: "DISABLED", 3: "ENABLED"}


@pytest.mark.parametrize("case", list(R16_CASES))
def test_destroy_refuses_a_version_protecting_a_held_or_retained_object(tmp_path: Path, case: str) -> None:
    _, _, _, frees = R16_CASES[case]
    w = WorldCli(tmp_path, _r16_world(case, v1_state="DISABLED"))
    before = w.dump()
    r = destroy(w, "1")
    line = assert_failed(r, 3, "refused", APP_KEY, "version 1", "R16", f"gs://{BUCKET}")
    if frees:
        assert f"frees up {frees}" in line
    else:
        assert "no date known" in line
    rj = w.json("plan", "destroy-versions", "--key", APP_KEY, "--set", "versions=1")
    assert rj.code == 3
    err = rj.json()["error"]
    assert (err["kind"], err["exit_code"], err["rule"], err["resource"]) == ("refused", 3, "R16", APP_KEY)
    assert w.dump() == before


def test_retention_expired_object_is_rewritten_and_its_version_freed(tmp_path: Path) -> None:
    """Frees V when the retention expired, then rewritten (R16)."""
    w = WorldCli(tmp_path, _r16_world("locked-bucket-retention"))
    assert w("world", "advance", "192d").code == 0  # 2027-06-02: a year after `created`
    plan = rotate(w)
    assert step(plan, "rewrite-objects")["data"]["objects"] == 1
    o = w.object_of(BUCKET, OBJECT)
    assert o["kms_key_version"] == v(APP_KEY, 3)
    assert versions_of(w) == {1: "DISABLED", 2: "DISABLED", 3: "ENABLED"}


# -- noncurrent and soft-deleted generations (R18) -----------------------------------------


def _versioned_world(v1_state: str = "ENABLED") -> dict[str, Any]:
    config = obj(
        "config.json",
        None,
        generation=3,
        noncurrent=[{"generation": 2, "kms_key_version": v(APP_KEY, 1), "size": 500}],
    )
    return make_world(
        kms=[key(APP_KEY, {1: v1_state, 2: "ENABLED"}, primary=2)],
        storage=[bucket(objects=[config], versioning=True, soft_delete=0)],
    )


def test_noncurrent_generation_blocks_disable(tmp_path: Path) -> None:
    w = WorldCli(tmp_path, _versioned_world())
    plan = w.plan_json("rotate-key", APP_KEY)
    disable = step(plan, "disable-old-versions")
    assert disable["data"]["disable"] == [2]
    assert [(b["kind"], b["rule"], b["version"]) for b in disable["blockers"]] == [
        ("noncurrent_generation", "R18", 1)
    ]
    assert w.apply().code == 0
    assert versions_of(w) == {1: "ENABLED", 2: "DISABLED", 3: "ENABLED"}
    assert w.object_of(BUCKET, "config.json")["noncurrent"][0]["kms_key_version"] == v(APP_KEY, 1)


def test_rotation_in_a_versioned_bucket_keeps_the_version_its_rewrite_leaves_noncurrent(
    tmp_path: Path,
) -> None:
    """Rewriting a live object in a versioned bucket leaves its old generation noncurrent
    under the old version (R18): the plan keeps that version and apply agrees (exit 0,
    not a stale stop at the disable step)."""
    w = WorldCli(
        tmp_path,
        make_world(storage=[bucket(objects=[obj(OBJECT, v(APP_KEY, 1))], versioning=True, soft_delete=0)]),
    )
    plan = w.plan_json("rotate-key", APP_KEY)
    disable = step(plan, "disable-old-versions")
    assert disable["data"]["disable"] == [2]
    assert list(disable["data"]["keep"]) == ["1"]
    r = w.apply()
    assert r.code == 0, r
    o = w.object_of(BUCKET, OBJECT)
    assert (o["generation"], o["kms_key_version"]) == (2, v(APP_KEY, 3))
    assert o["noncurrent"] == [{"generation": 1, "kms_key_version": v(APP_KEY, 1), "size": 1024}]
    assert versions_of(w) == {1: "ENABLED", 2: "DISABLED", 3: "ENABLED"}


def test_noncurrent_generation_blocks_destroy(tmp_path: Path) -> None:
    w = WorldCli(tmp_path, _versioned_world(v1_state="DISABLED"))
    before = w.dump()
    r = destroy(w, "1")
    assert_failed(r, 3, "refused", APP_KEY, "version 1", "R18", "config.json#2", "no date known")
    assert w.dump() == before


def test_soft_deleted_generation_blocks_destroy_only_until_its_hard_delete_time(tmp_path: Path) -> None:
    hard_delete = "2026-11-25T00:00:00Z"
    report = obj(
        OBJECT,
        None,
        generation=2,
        soft_deleted=[{"generation": 1, "kms_key_version": v(APP_KEY, 1), "hard_delete_time": hard_delete}],
    )
    kms = [key(APP_KEY, {1: "ENABLED", 2: "ENABLED"}, primary=2, destroy_scheduled_duration="7d")]
    w = WorldCli(tmp_path, make_world(kms=kms, storage=[bucket(objects=[report])]))
    inv = w.json("inventory", APP_KEY).json()
    assert not inv_version(inv, 1)["blocks_disable"]
    assert inv_version(inv, 1)["blocks_destroy"]
    assert inv_version(inv, 1)["frees_up"] == hard_delete
    assert uses(inv, 1)["soft_deleted_generation"]["rule"] == "R18"

    # Disable: not blocked.
    plan = rotate(w)
    assert step(plan, "disable-old-versions")["data"]["disable"] == [1, 2]
    assert versions_of(w) == {1: "DISABLED", 2: "DISABLED", 3: "ENABLED"}

    # Destroy: blocked until the hard-delete time, with that date.
    before = w.dump()
    r = destroy(w, "1")
    assert_failed(r, 3, "refused", APP_KEY, "version 1", "R18", f"frees up {hard_delete}")
    assert w.dump() == before

    assert w("world", "advance", "3d1s").code == 0  # 2026-11-25T00:00:01Z
    r = destroy(w, "1")
    assert r.code == 0, r
    assert w.apply("destroy.json").code == 0
    assert versions_of(w)[1] == "DESTROY_SCHEDULED"
    assert destroy_times_of(w) == {1: "2026-12-02T00:00:01Z"}  # now + the key's 7d (R1)


# -- the issue's scenario ------------------------------------------------------------------


def _issue_world() -> dict[str, Any]:
    """One version per kind of use: 1 plain, 2 held, 3 locked retention, 4 noncurrent,
    5 soft-deleted, 6 the primary (and bucket default)."""
    return make_world(
        kms=[key(APP_KEY, {n: "ENABLED" for n in range(1, 7)}, primary=6)],
        storage=[
            bucket("plain", [obj("a.txt", v(APP_KEY, 1))], soft_delete=0),
            bucket(
                "legal",
                [
                    obj("hold.pdf", v(APP_KEY, 2), temporary_hold=True),
                    obj("contract.pdf", v(APP_KEY, 3), retention=LOCKED_OBJECT_RETENTION),
                ],
                default_kms_key=None,
                soft_delete=0,
            ),
            bucket(
                "versioned",
                [
                    obj(
                        "config.json",
                        None,
                        generation=2,
                        noncurrent=[{"generation": 1, "kms_key_version": v(APP_KEY, 4), "size": 10}],
                    )
                ],
                versioning=True,
                soft_delete=0,
            ),
            bucket(
                "logs",
                [
                    obj(
                        "old.log",
                        None,
                        generation=2,
                        soft_deleted=[
                            {
                                "generation": 1,
                                "kms_key_version": v(APP_KEY, 5),
                                "hard_delete_time": "2026-11-25T00:00:00Z",
                            }
                        ],
                    )
                ],
            ),
        ],
    )


def test_issue_scenario_rotate_then_destroy_follows_the_pin_table(tmp_path: Path) -> None:
    w = WorldCli(tmp_path, _issue_world())
    plan = w.plan_json("rotate-key", APP_KEY)
    disable = step(plan, "disable-old-versions")
    assert disable["data"]["disable"] == [1, 5, 6]
    assert sorted(disable["data"]["keep"]) == ["2", "3", "4"]
    assert {(b["version"], b["kind"], b["rule"], b["frees_at"]) for b in disable["blockers"]} == {
        (2, "held_object", "R16", None),
        (3, "retained_object", "R16", RETAIN_UNTIL),
        (4, "noncurrent_generation", "R18", None),
    }
    frees = {x["number"]: x["frees_up"] for x in plan["inventory"]["versions"]}
    assert frees == {1: None, 2: None, 3: RETAIN_UNTIL, 4: None, 5: "2026-11-25T00:00:00Z", 6: None}
    assert plan["summary"]["objects_to_rewrite"] == 1

    r = w.apply()
    assert r.code == 0, r
    assert versions_of(w) == {
        1: "DISABLED",
        2: "ENABLED",
        3: "ENABLED",
        4: "ENABLED",
        5: "DISABLED",
        6: "DISABLED",
        7: "ENABLED",
    }
    assert w.object_of("plain", "a.txt")["kms_key_version"] == v(APP_KEY, 7)
    assert w.object_of("legal", "hold.pdf")["kms_key_version"] == v(APP_KEY, 2)
    assert w.object_of("legal", "contract.pdf")["kms_key_version"] == v(APP_KEY, 3)

    # Destroy the disabled ones: 5 is still needed by a soft-deleted generation.
    before = w.dump()
    r = w.json("plan", "destroy-versions", "--key", APP_KEY, "--set", "versions=1,5,6")
    line = assert_failed(r, 3, "refused", "version 5", "R18", "frees up 2026-11-25T00:00:00Z")
    assert "version 1 " not in line and "version 6" not in line
    err = r.json()["error"]
    assert (err["kind"], err["rule"]) == ("refused", "R18")
    assert "2026-11-25T00:00:00Z" in err["message"]
    assert w.dump() == before

    r = destroy(w, "1,6")
    assert r.code == 0, r
    assert w.apply("destroy.json").code == 0
    assert destroy_times_of(w) == {1: DESTROY_AFTER, 6: DESTROY_AFTER}

    # After the hard-delete time, 5 goes too; destroy time is the new now + 30d.
    assert w("world", "advance", "4d").code == 0
    r = destroy(w, "5", out="destroy5.json")
    assert r.code == 0, r
    assert w.apply("destroy5.json").code == 0
    assert destroy_times_of(w)[5] == "2026-12-26T00:00:00Z"


def test_issue_scenario_destroying_the_kept_versions_names_their_pins_and_dates(tmp_path: Path) -> None:
    """After the rotation, versions 2-4 stay ENABLED because they are pinned. A destroy
    of them is refused (exit 3), and the refusal names what pins each, under which
    rule, with the date it frees up where one exists (README, first paragraph: "the refusal
    names the resource, the rule ... and the date the version frees up") - not only
    "disable it first", which would invite disabling a locked object's version."""
    w = WorldCli(tmp_path, _issue_world())
    rotate(w)
    before = w.dump()
    r = w.json("plan", "destroy-versions", "--key", APP_KEY, "--set", "versions=2,3,4")
    line = assert_failed(r, 3, "refused", APP_KEY, "version 2", "version 3", "version 4", "R16", "R18")
    assert RETAIN_UNTIL in line
    assert w.dump() == before


def test_demo_world_rotation_waits_for_firestore_then_completes(tmp_path: Path) -> None:
    """The example world shipped with the playbooks, end to end: the first apply stops
    at Firestore re-encryption (exit 75, R21); after the fake clock moves it completes."""
    demo = Path(__file__).resolve().parents[2] / "playbooks" / "examples" / "demo-world.yaml"
    (tmp_path / "w.yaml").write_bytes(demo.read_bytes())
    w = WorldCli(tmp_path, name="w.yaml")
    r = w.plan("rotate-key", APP_KEY)
    assert r.code == 0, r
    r = w.apply()
    assert_failed(r, 75, "waiting", "R21")
    assert w.status()["complete"] is False
    assert w("world", "advance", "1d").code == 0
    r = w.apply()
    assert r.code == 0, r
    assert w.status()["complete"] is True


# -- replace-key (R13) ----------------------------------------------------------------------


def _replace_world() -> dict[str, Any]:
    return make_world(
        kms=[
            key(APP_KEY, {1: "ENABLED", 2: "ENABLED"}, primary=2),
            key(NEW_KEY, members=()),  # the Storage agent is not granted yet (R5)
            key(EU_KEY),
        ],
        storage=[
            bucket(
                BUCKET,
                [obj(OBJECT, v(APP_KEY, 1)), obj("reports/2026-10.csv", v(APP_KEY, 2), size=2048)],
            ),
            bucket(
                "explicit",
                [obj("named.bin", v(APP_KEY, 2)), obj("plain.txt", None)],
                default_kms_key=None,
            ),
        ],
    )


def test_replace_key_follows_the_r13_runbook(tmp_path: Path) -> None:
    w = WorldCli(tmp_path, _replace_world())
    plan = w.plan_json("replace-key", APP_KEY, "--new-key", NEW_KEY)
    r13 = [
        "check-locations",
        "grant-agents",
        "switch-bucket-defaults",
        "check-requests",
        "rewrite-objects",
        "disable-old-key",
    ]
    assert_in_order(plan, r13)
    assert plan["steps"][0]["id"] == "check-locations"  # R7 before any change
    assert plan["steps"][-1]["id"] == "disable-old-key"  # R13.4 last
    assert step(plan, "grant-agents")["changes"] == [
        {
            "action": "grant",
            "key": NEW_KEY,
            "role": ENCRYPTER_DECRYPTER,
            "member": STORAGE_AGENT,
            "service": "storage",
        }
    ]
    assert step(plan, "switch-bucket-defaults")["data"]["buckets"] == [BUCKET]
    assert step(plan, "check-requests")["rules"] == ["R13.2"]
    assert step(plan, "disable-old-key")["data"]["disable"] == [1, 2]

    r = w.apply()
    assert r.code == 0, r
    new = w.key_of(NEW_KEY)
    assert STORAGE_AGENT in new["iam"][ENCRYPTER_DECRYPTER]  # R5
    assert w.bucket_of(BUCKET)["default_kms_key"] == NEW_KEY  # R13.1
    assert w.bucket_of("explicit")["default_kms_key"] is None
    for b, name in [(BUCKET, OBJECT), (BUCKET, "reports/2026-10.csv"), ("explicit", "named.bin")]:
        assert w.object_of(b, name)["kms_key_version"] == v(NEW_KEY, 1), name  # R13.3
    assert w.object_of("explicit", "plain.txt")["kms_key_version"] is None
    assert versions_of(w) == {1: "DISABLED", 2: "DISABLED"}  # R13.4
    assert versions_of(w, NEW_KEY) == {1: "ENABLED"}


def test_replace_key_keeps_the_old_versions_something_still_pins(tmp_path: Path) -> None:
    doc = _replace_world()
    doc["storage"][1]["objects"].append(obj("held.bin", v(APP_KEY, 1), event_based_hold=True))
    w = WorldCli(tmp_path, doc)
    plan = w.plan_json("replace-key", APP_KEY, "--new-key", NEW_KEY)
    disable = step(plan, "disable-old-key")
    assert disable["data"]["disable"] == [2]
    assert [(b["version"], b["rule"]) for b in disable["blockers"]] == [(1, "R16")]
    assert w.apply().code == 0
    assert versions_of(w) == {1: "ENABLED", 2: "DISABLED"}
    assert w.object_of("explicit", "held.bin")["kms_key_version"] == v(APP_KEY, 1)


def test_replace_key_refuses_a_new_key_that_cannot_encrypt(tmp_path: Path) -> None:
    """A new key whose primary version is DISABLED cannot take bucket defaults or
    rewrites (R3, R15). The plan must say so before any change, not leave apply to fail
    at step 3 after granting agents (exit 1 with the world half changed)."""
    doc = _replace_world()
    doc["kms"][1] = key(NEW_KEY, {1: "DISABLED"}, primary=1, members=())
    w = WorldCli(tmp_path, doc)
    before = w.dump()
    r = w.plan("replace-key", APP_KEY, "--new-key", NEW_KEY)
    assert r.code in (2, 3), r
    assert r.last_err.startswith(("error:", "refused:")), r
    assert NEW_KEY in r.last_err and ("R3" in r.last_err or "R15" in r.last_err), r
    assert not (tmp_path / "plan.json").exists()
    assert w.dump() == before


def test_replace_key_refuses_a_new_key_in_the_wrong_location_r7(tmp_path: Path) -> None:
    w = WorldCli(tmp_path, _replace_world())
    before = w.dump()
    r = w.plan("replace-key", APP_KEY, "--new-key", EU_KEY)
    assert_failed(r, 3, "refused", "R7", f"gs://{BUCKET}", EU_KEY)
    assert r.stdout == ""
    assert not (tmp_path / "plan.json").exists()
    assert w.dump() == before


# -- disable-key (emergency) ----------------------------------------------------------------


def test_disable_key_disables_every_version_and_reports_the_impact(tmp_path: Path) -> None:
    doc = make_world(
        storage=[
            bucket(BUCKET, [obj(OBJECT, v(APP_KEY, 1)), obj("held.bin", v(APP_KEY, 2), temporary_hold=True)]),
            bucket("uploads", [], default_kms_key=APP_KEY),
        ]
    )
    w = WorldCli(tmp_path, doc)
    r = w.plan("disable-key", APP_KEY)
    assert r.code == 0, r
    impact = [line.strip() for line in r.stdout.splitlines() if line.strip().startswith("!")]
    # Objects that become unreadable (R14) and buckets whose uploads fail (R15).
    assert any(OBJECT in line and "R14" in line and "version 1" in line for line in impact), r.stdout
    assert any("held.bin" in line and "version 2" in line for line in impact), r.stdout
    for b in (BUCKET, "uploads"):
        assert any(f"gs://{b}" in line and "R15" in line for line in impact), r.stdout
    plan = w.plan_json("disable-key", APP_KEY)
    disable = step(plan, "disable-all-versions")
    assert disable["data"]["disable"] == [1, 2]
    reported = {(b["version"], b["kind"], b["resource"], b["rule"]) for b in disable["blockers"]}
    assert {
        (1, "live_object", f"gs://{BUCKET}", "R14"),
        (2, "bucket_default", f"gs://{BUCKET}", "R15"),
        (2, "bucket_default", "gs://uploads", "R15"),
    } <= reported

    r = w.apply()
    assert r.code == 0, r
    assert versions_of(w) == {1: "DISABLED", 2: "DISABLED"}
    assert versions_of(w, NEW_KEY) == {1: "ENABLED"}
    # The fake now refuses what the cloud would refuse (R14).
    from rotator import apierrors as api

    def read(backend: Any) -> None:
        with pytest.raises(api.ApiError):
            backend.storage.read(BUCKET, OBJECT)

    w.change(read)


# -- status and re-apply ---------------------------------------------------------------------


def test_status_before_and_after_a_complete_apply_and_a_second_apply_is_a_no_op(tmp_path: Path) -> None:
    w = WorldCli(tmp_path, make_world())
    assert w.plan("rotate-key", APP_KEY).code == 0
    s = w.status()
    assert (s["complete"], s["started"]) == (False, False)
    assert {x["state"] for x in s["steps"]} == {"pending"}

    assert w.apply().code == 0
    s = w.status()
    assert s["complete"] is True
    assert {x["state"] for x in s["steps"]} == {"done"}
    assert_in_order(s, ["new-primary-version", "rewrite-objects", "disable-old-versions"])
    text = w("status", "plan.json")
    assert text.code == 0 and "complete" in text.stdout and "not complete" not in text.stdout

    after_first = w.dump()
    journal = (tmp_path / "plan.json.journal").read_text()
    r = w.apply()
    assert r.code == 0, r
    assert w.dump() == after_first
    assert versions_of(w) == {1: "DISABLED", 2: "DISABLED", 3: "ENABLED"}  # no version 4
    assert w.status()["complete"] is True
    # No step ran again.
    new_events = (tmp_path / "plan.json.journal").read_text()[len(journal) :]
    assert '"event": "start"' not in new_events
