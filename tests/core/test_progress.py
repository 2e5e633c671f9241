"""Progress on stderr: a bar on a terminal, periodic lines in a log, none when quiet or
when stdout carries JSON; and the R6 start rate for HSM/external keys.

Backends: fake."""

from __future__ import annotations

import io
from pathlib import Path

from helpers import run_cli
from worlds import APP_KEY, make_world, write_world

from rotator.progress import NoProgress, ProgressBar, ProgressLines, factory_for


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_lines_come_every_interval_and_at_the_end() -> None:
    now = [0.0]
    out = io.StringIO()
    lines = ProgressLines("gs://b", 100, 4096 * 100, stream=out, interval=5.0, clock=lambda: now[0])
    for _ in range(10):
        now[0] += 1.0
        lines.update(5, 4096 * 5)
    lines.close()
    printed = out.getvalue().splitlines()
    assert len(printed) == 3  # at 5 s, at 10 s, and the closing line
    assert printed[0] == "gs://b: 25/100 objects (25%), 100.0 KiB, 5/s, ETA 15s"
    assert printed[-1].startswith("gs://b: 50/100 objects (50%)")


def test_the_factory_picks_by_terminal_quiet_and_json() -> None:
    assert isinstance(factory_for(quiet=True, json_output=False, stream=Tty())("b", 1, 1), NoProgress)
    assert isinstance(factory_for(quiet=False, json_output=True, stream=Tty())("b", 1, 1), NoProgress)
    assert isinstance(
        factory_for(quiet=False, json_output=False, stream=io.StringIO())("b", 1, 1), ProgressLines
    )
    tty = Tty()
    bar = factory_for(quiet=False, json_output=False, stream=tty)("gs://b", 10, 100)
    assert isinstance(bar, ProgressBar)
    bar.update(10, 100)
    bar.close()
    assert "gs://b" in tty.getvalue() and "100%" in tty.getvalue() and "100 B" in tty.getvalue()


def _world(tmp_path: Path, protection: str = "SOFTWARE") -> Path:
    world = make_world()
    world["kms"][0]["protection_level"] = protection
    tmp_path.mkdir(parents=True, exist_ok=True)
    return write_world(tmp_path / "world.yaml", world)


def test_apply_prints_progress_lines_to_a_log_but_not_when_quiet_or_json(tmp_path: Path) -> None:
    world = _world(tmp_path)
    assert (
        run_cli(["--world", world, "plan", "rotate-key", "--key", APP_KEY, "--out", tmp_path / "p.json"]).code
        == 0
    )
    loud = run_cli(["--world", world, "apply", tmp_path / "p.json", "--yes"])
    assert loud.code == 0
    assert any(line.startswith("gs://") and "objects (100%)" in line for line in loud.stderr.splitlines())

    for flags in (["-q"], ["--output", "json"]):
        world2 = _world(tmp_path / flags[0].strip("-"))
        plan = tmp_path / f"{flags[0].strip('-')}.json"
        assert run_cli(["--world", world2, "plan", "rotate-key", "--key", APP_KEY, "--out", plan]).code == 0
        quiet = run_cli(["--world", world2, *flags, "apply", plan, "--yes"])
        assert quiet.code == 0
        assert "objects (" not in quiet.stderr and "objects (" not in quiet.stdout


def test_hsm_keys_start_lower_and_the_plan_says_why(tmp_path: Path) -> None:
    import json

    world = _world(tmp_path, "HSM")
    r = run_cli(["--world", world, "--output", "json", "plan", "rotate-key", "--key", APP_KEY])
    step = next(s for s in json.loads(r.stdout)["steps"] if s["kind"] == "storage.rewrite_objects")
    assert step["data"]["start_rps"] == 100
    assert any("R6" in n and "100/s" in n for n in step["notes"])
    soft = run_cli(
        ["--world", _world(tmp_path / "soft"), "--output", "json", "plan", "rotate-key", "--key", APP_KEY]
    )
    step = next(s for s in json.loads(soft.stdout)["steps"] if s["kind"] == "storage.rewrite_objects")
    assert step["data"]["start_rps"] == 1000
    assert not any("R6" in n for n in step["notes"])
