"""--engine batch: a bucket's rewrite handed to Cloud Storage batch operations (the
fake models the jobs: they run on the fake clock and refuse held or retained objects
like a rewrite would).

Backends: fake."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from helpers import assert_failed, run_cli
from worlds import APP_KEY, make_world, write_world

from rotator.backends.fake import open_world
from rotator.backends.fake.batch import BATCH_DURATION

V = APP_KEY + "/cryptoKeyVersions/"


def world(tmp_path: Path, objects: int = 40) -> Path:
    doc: dict[str, Any] = make_world()
    bucket = doc["storage"][0]
    bucket["soft_delete"] = 0
    bucket["objects"] = [{"name": "held.bin", "kms_key_version": V + "1", "temporary_hold": True}]
    bucket["generate"] = [{"prefix": "o/", "count": objects, "kms_key_version": V + "1", "size": 10}]
    doc["storage"].append({"bucket": "manifests", "location": "US-EAST1", "default_kms_key": None})
    return write_world(tmp_path / "world.yaml", doc)


def plan(tmp_path: Path, w: Path) -> Path:
    out = tmp_path / "plan.json"
    assert run_cli(["--world", w, "plan", "rotate-key", "--key", APP_KEY, "--out", out]).code == 0
    return out


def test_batch_waits_for_the_job_then_finishes_and_rewrites_each_object_once(tmp_path: Path) -> None:
    w = world(tmp_path)
    p = plan(tmp_path, w)
    args = ["--world", w, "apply", p, "--yes", "--engine", "batch", "--manifest-bucket", "manifests"]
    first = run_cli(args)
    line = assert_failed(first, 75, "waiting", "batch job", "0 of 40 objects")
    assert "rotator-" in line
    b = open_world(str(w))
    # The manifest holds exactly the objects to move: not the held one (a pin, R16).
    rows = b.store.conn.execute("SELECT name FROM manifest_rows ORDER BY seq").fetchall()
    assert [r[0] for r in rows] == [f"o/{i:02d}" for i in range(40)]
    assert run_cli(["--world", w, "world", "advance", f"{int(BATCH_DURATION.total_seconds())}s"]).code == 0
    second = run_cli(args)
    assert second.code == 0, second.stderr
    assert "batch job SUCCEEDED: 40 rewritten, 0 failed" in second.stderr
    b = open_world(str(w))
    objs = {o.name: o for o in b.storage.list_objects(b.dump()["storage"][0]["bucket"]).items}
    assert all(
        o.generation == 2 and o.kms_key_version == V + "3" for n, o in objs.items() if n.startswith("o/")
    )
    assert objs["held.bin"].kms_key_version == V + "1"
    # One job only, even though apply ran twice.
    assert len(b.dump()["storage_batch"]) == 1
    assert b.kms.get_crypto_key_version(V + "1").state == "ENABLED"  # the held object pins it


def test_an_object_held_after_the_manifest_fails_per_object_and_its_version_stays(tmp_path: Path) -> None:
    w = world(tmp_path, objects=5)
    p = plan(tmp_path, w)
    args = ["--world", w, "apply", p, "--yes", "--engine", "batch", "--manifest-bucket", "manifests"]
    assert run_cli(args).code == 75
    b = open_world(str(w))
    bucket = b.dump()["storage"][0]["bucket"]
    b.storage.set_holds(bucket, "o/3", temporary=True, event_based=False)
    assert run_cli(["--world", w, "world", "advance", "1h"]).code == 0
    r = run_cli(args)
    assert_failed(r, 1, "error", f"gs://{bucket}/o/3", "R16")
    b = open_world(str(w))
    assert b.kms.get_crypto_key_version(V + "2").state == "ENABLED"
    status = json.loads(run_cli(["--world", w, "--output", "json", "status", p]).stdout)
    rewrite = next(s for s in status["steps"] if s["id"] == "rewrite-objects")
    assert rewrite["state"] == "failed"


def test_batch_needs_a_manifest_bucket(tmp_path: Path) -> None:
    w = world(tmp_path)
    p = plan(tmp_path, w)
    before = run_cli(["--world", w, "world", "dump"]).stdout
    r = run_cli(["--world", w, "apply", p, "--yes", "--engine", "batch"])
    assert_failed(r, 2, "error", "--manifest-bucket")
    assert run_cli(["--world", w, "world", "dump"]).stdout == before


def test_auto_takes_batch_only_above_the_threshold_with_a_manifest_bucket(tmp_path: Path) -> None:
    from rotator.engine import ApplySession
    from rotator.services.storage.settings import RewriteSettings

    given = {"engine": "auto", "manifest_bucket": "m", "batch_threshold": 100}
    ctx = ApplySession(None, {}, None, 1, print, options=given)  # type: ignore[arg-type]
    settings = RewriteSettings.of(ctx)
    assert settings.engine_for(99) == "local" and settings.engine_for(100) == "batch"
    ctx.options["manifest_bucket"] = None
    assert RewriteSettings.of(ctx).engine_for(10**9) == "local"
    batch = ApplySession(None, {}, None, 1, print, options={"engine": "batch"})  # type: ignore[arg-type]
    assert RewriteSettings.of(batch).engine_for(1) == "batch"
