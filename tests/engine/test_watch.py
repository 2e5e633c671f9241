"""apply --watch: after a disable, watch the services' logs (the fake's event log); a
failure caused by the key re-enables what was disabled and stops with exit 1 (R13.4).

Backends: fake."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import assert_failed, run_cli
from worlds import APP_KEY, NEW_KEY, make_world, write_world

from rotator import apierrors as api
from rotator import playbooks
from rotator.backends.fake import FakeBackend
from rotator.engine import apply_plan
from rotator.errors import Failure
from rotator.plan import build_plan, resolve_params

V = APP_KEY + "/cryptoKeyVersions/"


def replace_plan(b: FakeBackend) -> dict[str, Any]:
    pb = playbooks.load("replace-key")
    return build_plan(b, pb, resolve_params(pb, APP_KEY, NEW_KEY, {}))


def world() -> FakeBackend:
    doc = make_world()
    doc["storage"][0]["objects"] = []
    return FakeBackend.from_dict(doc)


def test_a_failure_after_the_disable_re_enables_and_stops(tmp_path: Path) -> None:
    b = world()
    bucket = b.dump()["storage"][0]["bucket"]
    plan = replace_plan(b)
    calls = []

    def app_keeps_naming_the_old_key(seconds: float) -> None:
        # The R13.2 manual check was missed: an uploader still names the old key.
        calls.append(seconds)
        with pytest.raises(api.FailedPrecondition):
            b.storage.upload(bucket, "late.csv", 10, kms_key=APP_KEY)

    with pytest.raises(Failure) as err:
        apply_plan(
            b,
            plan,
            "sha",
            str(tmp_path / "p.json"),
            watch=timedelta(minutes=30),
            sleep=app_keeps_naming_the_old_key,
        )
    assert f"gs://{bucket}/late.csv (Cloud Storage) failed after the disable" in err.value.message
    assert "R15" in err.value.message and "R13.4" in err.value.message
    assert calls, "the watch polled"
    assert {v.state for v in b.kms.list_crypto_key_versions(APP_KEY)} == {"ENABLED"}
    audit = (tmp_path / "p.json.audit.jsonl").read_text()
    assert '"event": "watch.reenabled"' in audit


def test_no_failure_in_the_window_keeps_the_disable(tmp_path: Path) -> None:
    b = world()
    plan = replace_plan(b)
    clock = [0.0]

    def quiet(seconds: float) -> None:
        clock[0] += seconds

    result = apply_plan(
        b,
        plan,
        "sha",
        str(tmp_path / "p.json"),
        watch=timedelta(minutes=5),
        sleep=quiet,
        monotonic=lambda: clock[0],
    )
    assert result["complete"]
    assert clock[0] >= 300  # it watched the whole window
    assert {v.state for v in b.kms.list_crypto_key_versions(APP_KEY)} == {"DISABLED"}


def test_a_bad_watch_duration_is_bad_input(tmp_path: Path) -> None:
    w = write_world(tmp_path / "w.yaml", make_world())
    assert (
        run_cli(["--world", w, "plan", "rotate-key", "--key", APP_KEY, "--out", tmp_path / "p.json"]).code
        == 0
    )
    r = run_cli(["--world", w, "apply", tmp_path / "p.json", "--yes", "--watch", "soon"])
    assert_failed(r, 2, "error", "--watch")
