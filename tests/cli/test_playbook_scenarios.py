"""One scenario per playbook through the command line, on a world file with all five
services (worlds.services_world): rotate-key waits for Firestore (R21) and keeps
what running jobs pin; disable-key snapshots Streaming Engine jobs first (R31) and
reports every service's impact; replace-key moves what can move and reports what
cannot (R20, R34); destroy-versions refuses what backups, idle revisions and running
jobs still pin (R24, R43, R31). Plus `apply --wait` through the engine on the fake clock.

Backends: fake; gcp over the wire (tests/wire/test_suites_over_the_wire.py runs this file again).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from worlds import (
    ALL_AGENTS,
    APP_KEY,
    BATCH,
    BUCKET,
    DB,
    ENCRYPTER_DECRYPTER,
    FINISHED,
    FUNCTION,
    INGEST,
    LEGACY,
    NEW_BACKUP,
    NEW_BACKUP_EXPIRES,
    OLD_BACKUP,
    OLD_BACKUP_EXPIRES,
    REPOSITORY,
    SERVICE,
    backup,
    database,
    job,
    kms_key,
    revision,
    service,
    services_world,
    v,
)
from worlds import APP_2026_KEY as NEW_KEY
from worlds import APP_EU_KEY as EU_KEY

from rotator import playbooks
from rotator.backends.fake import FakeBackend
from rotator.cli import main
from rotator.engine import apply_plan
from rotator.plan import build_plan, resolve_params
from rotator.plandoc import dumps

PREFIXES = ("error:", "refused:", "stale:", "waiting:")


# -- a tiny in-process runner ---------------------------------------------------------------


class Run:
    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err

    @property
    def final(self) -> str:
        """The one `error:/refused:/stale:/waiting:` line on stderr (SPEC: exactly one)."""
        lines = [line for line in self.err.splitlines() if line.startswith(PREFIXES)]
        assert len(lines) == 1, self
        return lines[0]

    def json(self) -> Any:
        return json.loads(self.out)

    def __repr__(self) -> str:
        return f"Run(code={self.code}, out={self.out[-3000:]!r}, err={self.err[-3000:]!r})"


class World:
    """`rotator --world world.yaml ...` in tmp_path, in this process."""

    def __init__(self, directory: Path, doc: dict[str, Any]):
        self.dir = directory
        (directory / "world.yaml").write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")

    def __call__(self, *args: str) -> Run:
        out, err = io.StringIO(), io.StringIO()
        old_cwd, old_stdin = os.getcwd(), sys.stdin
        code = 0
        try:
            os.chdir(self.dir)
            sys.stdin = io.StringIO("")
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    main(["--world", "world.yaml", *args])
                except SystemExit as e:
                    code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        finally:
            sys.stdin = old_stdin
            os.chdir(old_cwd)
        return Run(code, out.getvalue(), err.getvalue())

    def ok(self, *args: str) -> Run:
        r = self(*args)
        assert r.code == 0, r
        return r

    def dump(self) -> dict[str, Any]:
        doc: dict[str, Any] = self.ok("--output", "json", "world", "dump").json()
        return doc

    def plan(self, playbook: str, *extra: str, key: str = APP_KEY, out: str = "plan.json") -> Run:
        return self("plan", playbook, "--key", key, *extra, "--out", out)

    def apply(self, plan: str = "plan.json") -> Run:
        return self("apply", plan, "--yes")


def versions(doc: dict[str, Any], key: str = APP_KEY) -> dict[int, str]:
    entry = next(k for k in doc["kms"] if k["key"] == key)
    return {int(n): s for n, s in entry["versions"].items()}


def jobs(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {j["job"]: j for j in doc["dataflow"]}


def revisions(doc: dict[str, Any], name: str = SERVICE) -> list[dict[str, Any]]:
    svc: dict[str, Any] = next(s for s in doc["run"] if s["service"] == name)
    return list(svc["revisions"])


def fn(doc: dict[str, Any], name: str = FUNCTION) -> dict[str, Any]:
    return dict(next(f for f in doc["functions"] if f["function"] == name))


def db(doc: dict[str, Any], name: str = DB) -> dict[str, Any]:
    return dict(next(d for d in doc["firestore"] if d["database"] == name))


def step(plan: dict[str, Any], step_id: str) -> dict[str, Any]:
    return dict(next(s for s in plan["steps"] if s["id"] == step_id))


def lines_with(text: str, *needles: str) -> list[str]:
    return [line for line in text.splitlines() if all(n in line for n in needles)]


# -- rotate-key -----------------------------------------------------------------------------


def test_rotate_key_waits_for_firestore_then_disables_only_what_nothing_pins(tmp_path: Path) -> None:
    w = World(tmp_path, services_world())
    w.ok("plan", "rotate-key", "--key", APP_KEY, "--out", "plan.json")

    first = w.apply()
    assert first.code == 75, first
    line = first.final
    assert line.startswith("waiting:")
    assert DB in line and "R21" in line
    assert line == first.err.strip().splitlines()[-1]
    mid = w.dump()
    assert versions(mid) == {1: "ENABLED", 2: "ENABLED", 3: "ENABLED", 4: "ENABLED"}
    assert db(mid)["active_key_versions"] == [v(APP_KEY, 3), v(APP_KEY, 4)]
    status = w.ok("--output", "json", "status", "plan.json").json()
    assert not status["complete"]
    assert {s["id"]: s["state"] for s in status["steps"]}["disable-old-versions"] == "pending"

    again = w.apply()  # still before re-encryption is due: still waiting, nothing disabled
    assert again.code == 75, again
    assert versions(w.dump()) == {1: "ENABLED", 2: "ENABLED", 3: "ENABLED", 4: "ENABLED"}

    w.ok("world", "advance", "6h")
    assert db(w.dump())["active_key_versions"] == [v(APP_KEY, 4)]
    done = w.apply()
    assert done.code == 0, done

    status = w.ok("--output", "json", "status", "plan.json").json()
    assert status["complete"] is True
    assert {s["id"]: s["state"] for s in status["steps"]} == {
        "new-primary-version": "done",
        "rewrite-objects": "done",
        "redeploy-run-services": "done",
        "redeploy-functions": "done",
        "report-dataflow-jobs": "done",
        "wait-firestore-reencryption": "done",
        "disable-old-versions": "done",
    }

    after = w.dump()
    # Versions 1 and 2 are free after the rewrite and redeploys; 3 is what the running
    # jobs started under (R31, R34); 4 is the new primary.
    assert versions(after) == {1: "DISABLED", 2: "DISABLED", 3: "ENABLED", 4: "ENABLED"}
    assert next(k for k in after["kms"] if k["key"] == APP_KEY)["primary"] == 4
    revs = revisions(after)
    assert revs[-1]["kms_key_version"] == v(APP_KEY, 4) and revs[-1]["traffic_percent"] == 100
    assert sum(r["traffic_percent"] for r in revs[:-1]) == 0
    assert fn(after)["kms_key_version"] == v(APP_KEY, 4)
    running = jobs(after)
    for job_id in (INGEST, LEGACY, BATCH):
        assert running[job_id]["state"] == "RUNNING"
        assert versions(after)[int(running[job_id]["kms_key_version"].rsplit("/", 1)[1])] == "ENABLED"
    bucket = next(b for b in after["storage"] if b["bucket"] == BUCKET)
    assert [o["kms_key_version"] for o in bucket["objects"]] == [v(APP_KEY, 4)]


# -- disable-key ----------------------------------------------------------------------------


def test_disable_key_snapshots_streaming_engine_jobs_reports_every_impact_and_disables_all(
    tmp_path: Path,
) -> None:
    w = World(tmp_path, services_world())
    planned = w.plan("disable-key")
    assert planned.code == 0, planned
    text = planned.out

    # R32: the streaming job created before 2024-03-07 is flagged.
    assert lines_with(text, LEGACY, "R32"), text
    assert not lines_with(text, INGEST, "R32")
    # The impact on every service that uses the key.
    assert lines_with(text, DB, "R22"), text
    assert lines_with(text, SERVICE, "R41"), text
    assert lines_with(text, f"dataflow job {INGEST}", "R31"), text
    assert lines_with(text, f"dataflow job {BATCH}", "R31"), text
    assert lines_with(text, FUNCTION, "R41"), text

    plan = json.loads((tmp_path / "plan.json").read_text())
    snapshots = step(plan, "snapshot-streaming-jobs")
    assert sorted(c["job"] for c in snapshots["changes"]) == sorted([INGEST, LEGACY])

    r = w.apply()
    assert r.code == 0, r
    after = w.dump()
    assert versions(after) == {1: "DISABLED", 2: "DISABLED", 3: "DISABLED"}
    got = jobs(after)
    for job_id in (INGEST, LEGACY):
        # The snapshot was taken while the job ran (only a running job can be
        # snapshotted); the disable then cancelled the job for good (R31).
        assert [s["state"] for s in got[job_id]["snapshots"]] == ["READY"], got[job_id]
        assert got[job_id]["state"] == "CANCELLED"
    assert got[BATCH]["snapshots"] == [] and got[BATCH]["state"] == "CANCELLED"
    assert got[FINISHED]["state"] == "DONE"


# -- replace-key ----------------------------------------------------------------------------


def test_replace_key_moves_run_and_functions_grants_agents_and_leaves_firestore(tmp_path: Path) -> None:
    w = World(tmp_path, services_world(new_key_agents=()))
    planned = w.plan("replace-key", "--new-key", NEW_KEY)
    assert planned.code == 0, planned
    assert lines_with(planned.out, DB, "R20"), planned.out
    assert lines_with(planned.out, f"stays on {APP_KEY}"), planned.out
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert "restore-firestore" not in [s["id"] for s in plan["steps"]]

    r = w.apply()
    assert r.code == 0, r
    after = w.dump()

    # Firestore cannot move in place (R20): it keeps the old key, its version enabled.
    d = db(after)
    assert d["kms_key"] == APP_KEY and d["active_key_versions"] == [v(APP_KEY, 3)]
    assert versions(after)[3] == "ENABLED"
    assert [x["database"] for x in after["firestore"]] == [DB, "projects/demo/databases/us-wide"]
    # Cloud Run: the latest revision, with the traffic, under the new key.
    latest = revisions(after)[-1]
    assert (latest["kms_key"], latest["kms_key_version"], latest["traffic_percent"]) == (
        NEW_KEY,
        v(NEW_KEY, 1),
        100,
    )
    # The function, with a new repository under the new key (R42).
    f = fn(after)
    assert (f["kms_key"], f["kms_key_version"]) == (NEW_KEY, v(NEW_KEY, 1))
    assert f["docker_repository"] != REPOSITORY
    repos = {x["repository"]: x["kms_key"] for x in after["artifact_registry"]}
    assert repos[f["docker_repository"]] == NEW_KEY
    # Every agent the old key's services need is granted on the new key (R5).
    granted = next(k for k in after["kms"] if k["key"] == NEW_KEY)["iam"][ENCRYPTER_DECRYPTER]
    assert set(ALL_AGENTS) <= set(granted), granted
    # Running jobs keep the old key (R34) and its version stays enabled.
    for job_id in (INGEST, LEGACY, BATCH):
        assert jobs(after)[job_id]["state"] == "RUNNING"
        assert jobs(after)[job_id]["kms_key"] == APP_KEY
    # What nothing pins any more is disabled (R13.4).
    assert versions(after) == {1: "DISABLED", 2: "DISABLED", 3: "ENABLED"}


def test_replace_key_with_firestore_restore_restores_the_newest_backup_under_the_new_key(
    tmp_path: Path,
) -> None:
    w = World(tmp_path, services_world(new_key_agents=()))
    planned = w.plan("replace-key", "--new-key", NEW_KEY, "--set", "firestore=restore")
    assert planned.code == 0, planned
    plan = json.loads((tmp_path / "plan.json").read_text())
    restores = step(plan, "restore-firestore")["changes"]
    assert [(c["database"], c["backup"], c["kms_key"]) for c in restores] == [(DB, NEW_BACKUP, NEW_KEY)]

    r = w.apply()
    assert r.code == 0, r
    assert lines_with(r.err, "restored from", NEW_BACKUP), r
    after = w.dump()
    new = [x for x in after["firestore"] if x["database"] == restores[0]["new_database"]]
    assert len(new) == 1, after["firestore"]
    assert new[0]["kms_key"] == NEW_KEY
    assert new[0]["active_key_versions"] == [v(NEW_KEY, 1)]
    assert new[0]["location"] == "us-east1"
    # The old database is untouched until the manual cut-over (R20).
    assert db(after)["kms_key"] == APP_KEY


def test_replace_key_refuses_a_new_key_in_the_wrong_region_for_cloud_run_and_changes_nothing(
    tmp_path: Path,
) -> None:
    w = World(tmp_path, services_world(storage=[]))
    before = w.dump()
    r = w.plan("replace-key", "--new-key", EU_KEY)
    assert r.code == 3, r
    line = r.final
    assert line.startswith("refused:")
    assert SERVICE in line and "R7" in line
    assert not (tmp_path / "plan.json").exists()
    assert w.dump() == before


# -- destroy-versions -----------------------------------------------------------------------


def free_v1_world(**overrides: Any) -> dict[str, Any]:
    """Version 1 DISABLED and pinned by nothing (no object, no backup, no revision, no
    running job under it); `overrides` add the one pin a test wants."""
    base = services_world(
        storage=[],
        firestore=[
            database(backups=[backup(NEW_BACKUP, v(APP_KEY, 3), "2026-11-21T00:00:00Z", NEW_BACKUP_EXPIRES)])
        ],
        run=[service(revisions=[revision("api-00002", v(APP_KEY, 2), 100)])],
    )
    base["kms"][0] = kms_key(APP_KEY, {1: "DISABLED", 2: "ENABLED", 3: "ENABLED"}, primary=3)
    base.update(copy.deepcopy(overrides))
    return base


def test_destroy_versions_accepts_a_version_nothing_pins(tmp_path: Path) -> None:
    w = World(tmp_path, free_v1_world())
    assert w.plan("destroy-versions", "--set", "versions=1").code == 0
    assert w.apply().code == 0
    assert versions(w.dump())[1] == "DESTROY_SCHEDULED"


def test_destroy_versions_refuses_until_the_firestore_backup_expires(tmp_path: Path) -> None:
    backups = [
        backup(OLD_BACKUP, v(APP_KEY, 1), "2026-11-20T00:00:00Z", OLD_BACKUP_EXPIRES),
        backup(NEW_BACKUP, v(APP_KEY, 3), "2026-11-21T00:00:00Z", NEW_BACKUP_EXPIRES),
    ]
    w = World(tmp_path, free_v1_world(firestore=[database(backups=backups)]))
    refused = w.plan("destroy-versions", "--set", "versions=1")
    assert refused.code == 3, refused
    line = refused.final
    assert line.startswith("refused:")
    assert OLD_BACKUP in line and OLD_BACKUP_EXPIRES in line and "R24" in line
    assert versions(w.dump())[1] == "DISABLED"

    w.ok("world", "advance", "13d")  # 2026-12-05T00:00:00Z: the backup expires
    accepted = w.plan("destroy-versions", "--set", "versions=1")
    assert accepted.code == 0, accepted
    assert w.apply().code == 0
    after = w.dump()
    assert versions(after)[1] == "DESTROY_SCHEDULED"
    assert OLD_BACKUP not in [b["backup"] for b in db(after)["backups"]]


def test_destroy_versions_refuses_a_version_of_an_idle_cloud_run_revision(tmp_path: Path) -> None:
    revs = [revision("api-00001", v(APP_KEY, 1), 0), revision("api-00002", v(APP_KEY, 2), 100)]
    w = World(tmp_path, free_v1_world(run=[service(revisions=revs)]))
    r = w.plan("destroy-versions", "--set", "versions=1")
    assert r.code == 3, r
    assert "api-00001" in r.final and "R43" in r.final
    assert versions(w.dump())[1] == "DISABLED"


def test_destroy_versions_refuses_a_version_a_running_job_started_under(tmp_path: Path) -> None:
    # The disable has not reached the job yet (R4: up to 3 hours): it still runs.
    w = World(tmp_path, free_v1_world(dataflow=[job(INGEST, "ingest", v(APP_KEY, 1))]))
    r = w.plan("destroy-versions", "--set", "versions=1")
    assert r.code == 3, r
    assert INGEST in r.final and "R31" in r.final
    assert versions(w.dump())[1] == "DISABLED"


# -- apply --wait, through the engine on the fake clock -------------------------------------


def test_apply_wait_polls_the_fake_clock_until_firestore_is_reencrypted(tmp_path: Path) -> None:
    backend: Any = FakeBackend.from_dict(services_world())
    pb = playbooks.load("rotate-key")
    plan = json.loads(dumps(build_plan(backend, pb, resolve_params(pb, APP_KEY, None, {}))))
    start = backend.clock.now()
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        assert len(slept) < 10_000, "apply --wait polled too long"
        backend.advance(timedelta(seconds=seconds))

    result = apply_plan(
        backend, plan, "sha", str(tmp_path / "plan.json"), wait=timedelta(hours=8), sleep=sleep
    )
    assert result["complete"] is True
    waited = backend.clock.now() - start
    assert timedelta(hours=6) <= waited <= timedelta(hours=8), waited
    assert backend.firestore.get_database(DB).active_key_versions == (v(APP_KEY, 4),)
    states = {x.number: x.state for x in backend.kms.list_crypto_key_versions(APP_KEY)}
    assert states == {1: "DISABLED", 2: "DISABLED", 3: "ENABLED", 4: "ENABLED"}


@pytest.mark.parametrize("wait", [None, timedelta(0)], ids=["no-wait", "zero-wait"])
def test_apply_without_wait_stops_with_exit_75_and_does_not_sleep(tmp_path: Path, wait: Any) -> None:
    from rotator.errors import Waiting

    backend: Any = FakeBackend.from_dict(services_world())
    pb = playbooks.load("rotate-key")
    plan = json.loads(dumps(build_plan(backend, pb, resolve_params(pb, APP_KEY, None, {}))))

    def sleep(seconds: float) -> None:
        raise AssertionError("no sleep without --wait")

    with pytest.raises(Waiting) as err:
        apply_plan(backend, plan, "sha", str(tmp_path / "plan.json"), wait=wait, sleep=sleep)
    assert err.value.exit_code == 75 and err.value.rule == "R21"
