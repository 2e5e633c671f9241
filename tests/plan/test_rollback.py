"""rollback: undo an applied plan's disables and scheduled destructions, within the
destroy window (R1), from its journal.

Backends: fake."""

from __future__ import annotations

from pathlib import Path

from helpers import assert_failed, run_cli
from worlds import APP_KEY, make_world, write_world

from rotator.backends.fake import open_world

V = APP_KEY + "/cryptoKeyVersions/"


def states(w: Path) -> dict[int, str]:
    return {v.number: v.state for v in open_world(str(w)).kms.list_crypto_key_versions(APP_KEY)}


def setup(tmp_path: Path) -> Path:
    doc = make_world()
    doc["storage"][0]["objects"] = []
    return write_world(tmp_path / "world.yaml", doc)


def apply(w: Path, plan: Path, *args: str) -> None:
    assert run_cli(["--world", w, "plan", *args, "--out", plan]).code == 0
    assert run_cli(["--world", w, "apply", plan, "--yes"]).code == 0


def test_rollback_of_a_disable_enables_every_version_again(tmp_path: Path) -> None:
    w = setup(tmp_path)
    apply(w, tmp_path / "d.json", "disable-key", "--key", APP_KEY)
    assert set(states(w).values()) == {"DISABLED"}
    r = run_cli(
        [
            "--world",
            w,
            "plan",
            "rollback",
            "--set",
            f"plan={tmp_path / 'd.json'}",
            "--out",
            tmp_path / "r.json",
        ]
    )
    assert r.code == 0 and f"+ enable {V}1" in r.stdout and "2 versions to enable again" in r.stdout
    assert run_cli(["--world", w, "apply", tmp_path / "r.json", "--yes"]).code == 0
    assert set(states(w).values()) == {"ENABLED"}


def test_rollback_of_a_destroy_restores_within_the_window_and_refuses_after(tmp_path: Path) -> None:
    w = setup(tmp_path)
    apply(w, tmp_path / "rot.json", "rotate-key", "--key", APP_KEY)
    apply(w, tmp_path / "des.json", "destroy-versions", "--key", APP_KEY, "--set", "versions=1,2")
    assert states(w)[1] == "DESTROY_SCHEDULED"
    # Roll back the destroy: the versions come back as they were before it, DISABLED ...
    assert (
        run_cli(
            [
                "--world",
                w,
                "plan",
                "rollback",
                "--set",
                f"plan={tmp_path / 'des.json'}",
                "--out",
                tmp_path / "r.json",
            ]
        ).code
        == 0
    )
    assert run_cli(["--world", w, "apply", tmp_path / "r.json", "--yes"]).code == 0
    assert states(w) == {1: "DISABLED", 2: "DISABLED", 3: "ENABLED"}
    # ... and rolling back the rotation's disables too brings them back ENABLED.
    assert (
        run_cli(
            [
                "--world",
                w,
                "plan",
                "rollback",
                "--set",
                f"plan={tmp_path / 'rot.json'}",
                "--out",
                tmp_path / "r2.json",
            ]
        ).code
        == 0
    )
    assert run_cli(["--world", w, "apply", tmp_path / "r2.json", "--yes"]).code == 0
    assert states(w) == {1: "ENABLED", 2: "ENABLED", 3: "ENABLED"}
    # ... but past the window a destroyed version cannot come back: refused, no change.
    apply(w, tmp_path / "rot2.json", "rotate-key", "--key", APP_KEY)
    apply(w, tmp_path / "des2.json", "destroy-versions", "--key", APP_KEY, "--set", "versions=1")
    assert run_cli(["--world", w, "world", "advance", "31d"]).code == 0
    before = states(w)
    r = run_cli(["--world", w, "plan", "rollback", "--set", f"plan={tmp_path / 'des2.json'}"])
    assert_failed(r, 3, "refused", "DESTROYED", "R1")
    assert states(w) == before


def test_rollback_of_a_plan_never_applied_is_bad_input(tmp_path: Path) -> None:
    w = setup(tmp_path)
    assert (
        run_cli(["--world", w, "plan", "disable-key", "--key", APP_KEY, "--out", tmp_path / "d.json"]).code
        == 0
    )
    r = run_cli(["--world", w, "plan", "rollback", "--set", f"plan={tmp_path / 'd.json'}"])
    assert_failed(r, 2, "error", "never applied")
