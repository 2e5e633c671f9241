"""The plan-time preflight (issue 12): every service agent a plan relies on holds
Encrypter/Decrypter on the key it will use (R5), and the caller holds the permission of
every change (testIamPermissions on Cloud KMS keys and Cloud Storage buckets). Anything
missing: `refused:` exit 3 naming the member, the role or permission and the resource,
and nothing changed. Run on both backends (test_suites_over_the_wire).

Backends: fake; gcp over the wire (tests/wire/test_suites_over_the_wire.py runs this file again)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import WorldCli, assert_failed
from worlds import (
    ALL_AGENTS,
    APP_KEY,
    BUCKET,
    ENCRYPTER_DECRYPTER,
    FUNCTION,
    RUN_AGENT,
    SERVICE,
    STORAGE_AGENT,
    bucket,
    kms_key,
    obj,
    services_world,
    v,
)
from worlds import APP_2026_KEY as NEW_KEY


def _world(
    app_members: tuple[str, ...] = ALL_AGENTS, new_members: tuple[str, ...] = ALL_AGENTS
) -> dict[str, Any]:
    doc = services_world()
    for k in doc["kms"]:
        if k["key"] == APP_KEY:
            k["iam"] = {ENCRYPTER_DECRYPTER: list(app_members)} if app_members else {}
        if k["key"] == NEW_KEY:
            k["iam"] = {ENCRYPTER_DECRYPTER: list(new_members)} if new_members else {}
    return doc


def _refused(w: WorldCli, *args: str, needles: tuple[str, ...]) -> str:
    before = w.dump()
    r = w(*args)
    line = assert_failed(r, 3, "refused", "preflight", *needles)
    assert "nothing was changed" in line
    assert w.dump() == before
    assert not (w.dir / "plan.json").exists()
    return line


@pytest.mark.parametrize(
    "agent",
    ALL_AGENTS,  # storage, firestore, dataflow, compute, run, functions, artifact-registry, eventarc
    ids=["storage", "firestore", "dataflow", "compute", "run", "functions", "artifact-registry", "eventarc"],
)
def test_rotate_key_refuses_every_missing_agent_grant(tmp_path: Path, agent: str) -> None:
    w = WorldCli(tmp_path, _world(app_members=tuple(a for a in ALL_AGENTS if a != agent)))
    _refused(
        w,
        "plan",
        "rotate-key",
        "--key",
        APP_KEY,
        "--out",
        "plan.json",
        needles=(agent, ENCRYPTER_DECRYPTER, APP_KEY, "R5"),
    )


def test_a_clean_plan_says_what_it_checked_and_rotate_key_never_grants(tmp_path: Path) -> None:
    w = WorldCli(tmp_path, _world())
    r = w("plan", "rotate-key", "--key", APP_KEY)
    assert r.code == 0, r
    assert "preflight: 8 service agent grant(s)" in r.stdout
    doc = w.plan_json("rotate-key", APP_KEY)
    assert doc["preflight"]["agents_checked"] == 8
    assert APP_KEY in doc["preflight"]["resources_checked"]
    assert not [c for s in doc["steps"] for c in s["changes"] if c["action"] == "grant"]


def test_replace_key_grants_the_agents_on_the_new_key_instead_of_refusing(tmp_path: Path) -> None:
    w = WorldCli(tmp_path, _world(new_members=()))
    doc = w.plan_json("replace-key", APP_KEY, "--new-key", NEW_KEY)
    grants = [c["member"] for s in doc["steps"] for c in s["changes"] if c["action"] == "grant"]
    assert STORAGE_AGENT in grants and RUN_AGENT in grants
    assert NEW_KEY in doc["preflight"]["resources_checked"]


def test_a_caller_without_the_kms_permissions_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROTATOR_FAKE_FAULTS", f"deny={APP_KEY}")
    w = WorldCli(tmp_path, _world())
    _refused(
        w,
        "plan",
        "rotate-key",
        "--key",
        APP_KEY,
        "--out",
        "plan.json",
        needles=("cloudkms.cryptoKeyVersions.create", APP_KEY, "new-primary-version"),
    )


def test_a_caller_who_may_not_rewrite_the_bucket_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROTATOR_FAKE_FAULTS", f"deny=gs://{BUCKET}")
    w = WorldCli(tmp_path, _world())
    _refused(
        w,
        "plan",
        "rotate-key",
        "--key",
        APP_KEY,
        "--out",
        "plan.json",
        needles=("storage.objects.create", f"gs://{BUCKET}", "rewrite-objects"),
    )


def test_a_caller_who_may_not_grant_on_the_new_key_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROTATOR_FAKE_FAULTS", f"deny={NEW_KEY}")
    w = WorldCli(tmp_path, _world(new_members=()))
    _refused(
        w,
        "plan",
        "replace-key",
        "--key",
        APP_KEY,
        "--new-key",
        NEW_KEY,
        "--out",
        "plan.json",
        needles=("cloudkms.cryptoKeys.setIamPolicy", NEW_KEY, "grant-agents"),
    )


def test_a_caller_who_may_not_destroy_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = _world()
    doc["kms"] = [
        k if k["key"] != NEW_KEY else kms_key(NEW_KEY, {1: "DISABLED", 2: "ENABLED"}) for k in doc["kms"]
    ]
    monkeypatch.setenv("ROTATOR_FAKE_FAULTS", f"deny={NEW_KEY}")
    w = WorldCli(tmp_path, doc)
    _refused(
        w,
        "plan",
        "destroy-versions",
        "--key",
        NEW_KEY,
        "--set",
        "versions=1",
        "--out",
        "plan.json",
        needles=("cloudkms.cryptoKeyVersions.destroy", NEW_KEY),
    )


@pytest.mark.parametrize(
    ("resource", "permission", "step"),
    [
        (SERVICE, "run.services.update", "redeploy-run-services"),
        (FUNCTION, "cloudfunctions.functions.update", "redeploy-functions"),
    ],
    ids=["run", "functions"],
)
def test_a_caller_who_may_not_redeploy_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, resource: str, permission: str, step: str
) -> None:
    monkeypatch.setenv("ROTATOR_FAKE_FAULTS", f"deny={resource}")
    w = WorldCli(tmp_path, _world())
    _refused(
        w,
        "plan",
        "rotate-key",
        "--key",
        APP_KEY,
        "--out",
        "plan.json",
        needles=(permission, resource, step),
    )


def test_a_caller_refused_on_several_buckets_is_told_of_each_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One testIamPermissions question per bucket, asked side by side: the refusal names
    the buckets in their order, as asking one after another did."""
    names = [f"{BUCKET}-{i}" for i in range(6)]
    doc = _world()
    doc["storage"] += [bucket(n, [obj("o", v(APP_KEY, 1))], soft_delete=0) for n in names]
    monkeypatch.setenv("ROTATOR_FAKE_FAULTS", f"deny=gs://{names[4]},gs://{names[1]}")
    plan = ("plan", "rotate-key", "--key", APP_KEY, "--out", "plan.json")
    line = _refused(WorldCli(tmp_path, doc), *plan, needles=("storage.objects.create", "rewrite-objects"))
    assert line.index(f"gs://{names[1]} ") < line.index(f"gs://{names[4]} "), line
    assert f"gs://{BUCKET} " not in line and f"gs://{names[0]} " not in line, line
