"""The two rules no scenario exercised: R23 (Firestore under an external key) and R33
(Dataflow loses the key with its service accounts' role), on the fake, through the CLI.

R23: Firestore hides the loss of a Cloud EKM key for up to an hour, then takes the
database offline. disable-key on an EXTERNAL key says so for each database it stops,
and only for an EXTERNAL key.

R33: revoking the Encrypter/Decrypter role of the Dataflow service agent or the Compute
Engine default account halts the jobs on that key. rotator only ever grants: after
replace-key the old key still carries every grant its running jobs need, and the jobs
run. A job halted by a revocation no longer pins its version.

Backends: fake.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import WorldCli
from worlds import APP_2026_KEY as NEW_KEY
from worlds import (
    APP_KEY,
    BATCH,
    COMPUTE_AGENT,
    DATAFLOW_AGENT,
    DB,
    ENCRYPTER_DECRYPTER,
    INGEST,
    LEGACY,
    US_DB,
    services_world,
)

from rotator.backends.fake import FakeBackend

R23_NOTE = "a revocation made only at the external key manager leaves it serving for up to 1 hour"


def world_with_app_key(protection_level: str) -> dict[str, Any]:
    doc = services_world()
    next(k for k in doc["kms"] if k["key"] == APP_KEY)["protection_level"] = protection_level
    return doc


def disable_step(plan: dict[str, Any]) -> dict[str, Any]:
    return next(s for s in plan["steps"] if s["kind"] == "kms.disable_versions")


# -- R23 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("level", ["EXTERNAL", "EXTERNAL_VPC"])
def test_r23_disable_key_on_an_external_key_says_firestore_may_serve_an_hour_after_a_revocation(
    tmp_path: Path, level: str
) -> None:
    w = WorldCli(tmp_path, world_with_app_key(level))
    notes = disable_step(w.plan_json("disable-key", APP_KEY))["notes"]
    r23 = [n for n in notes if "R23" in n]
    # One note per database on the key (DB), none for a database on another key (US_DB).
    assert len(r23) == 1 and r23[0].startswith(f"{DB}: under an EXTERNAL key"), notes
    assert R23_NOTE in r23[0] and "(R22)" in r23[0]
    assert not [n for n in notes if US_DB in n]

    text = w.plan("disable-key", APP_KEY, out="again.json")
    assert text.code == 0, text
    assert f"{DB}: under an EXTERNAL key" in text.stdout and "(R23)" in text.stdout


@pytest.mark.parametrize("level", ["SOFTWARE", "HSM"])
def test_r23_is_not_claimed_for_a_key_held_by_google(tmp_path: Path, level: str) -> None:
    w = WorldCli(tmp_path, world_with_app_key(level))
    plan = w.plan_json("disable-key", APP_KEY)
    step = disable_step(plan)
    assert "R23" not in str(plan)
    # ... while the database's impact is still reported, under R22.
    assert any(b.get("impact") and b["resource"] == DB and "R22" in b["impact"] for b in step["blockers"])


# -- R33 ------------------------------------------------------------------------------------


def members(w: WorldCli, key: str) -> list[str]:
    return list(w.key_of(key)["iam"].get(ENCRYPTER_DECRYPTER, []))


def job_states(w: WorldCli) -> dict[str, str]:
    return {j["job"]: j["state"] for j in w.dump()["dataflow"]}


def test_r33_replace_key_never_revokes_the_old_key_so_its_running_jobs_keep_running(tmp_path: Path) -> None:
    w = WorldCli(tmp_path, services_world(new_key_agents=()))
    before = members(w, APP_KEY)
    assert {DATAFLOW_AGENT, COMPUTE_AGENT} <= set(before)

    w.plan_json("replace-key", APP_KEY, "--new-key", NEW_KEY)
    r = w.apply()
    assert r.code == 0, r

    assert members(w, APP_KEY) == before  # grants only: nothing taken from the old key
    assert {DATAFLOW_AGENT, COMPUTE_AGENT} <= set(members(w, NEW_KEY))
    states = job_states(w)
    assert [states[j] for j in (INGEST, LEGACY, BATCH)] == ["RUNNING"] * 3


@pytest.mark.parametrize("agent", [DATAFLOW_AGENT, COMPUTE_AGENT], ids=["dataflow-agent", "compute-default"])
def test_r33_jobs_halted_by_a_revocation_no_longer_pin_their_version(tmp_path: Path, agent: str) -> None:
    w = WorldCli(tmp_path, services_world())

    def pins_of_version_3() -> set[str]:
        r = w.json("inventory", APP_KEY)
        assert r.code == 0, r
        v3 = next(x for x in r.json()["versions"] if x["number"] == 3)
        return {u["kind"] for u in v3["uses"]}

    assert "dataflow_running_job" in pins_of_version_3()

    def revoke(backend: FakeBackend) -> None:
        policy = backend.kms.get_iam_policy(APP_KEY)
        policy.bindings[ENCRYPTER_DECRYPTER] = [m for m in policy.members(ENCRYPTER_DECRYPTER) if m != agent]
        backend.kms.set_iam_policy(APP_KEY, policy)

    w.change(revoke)
    states = job_states(w)
    assert [states[j] for j in (INGEST, LEGACY, BATCH)] == ["CANCELLED"] * 3
    assert "dataflow_running_job" not in pins_of_version_3()
