"""Colour only on a terminal, never with NO_COLOR, never in what a script reads.

Backends: fake."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import run_cli
from worlds import APP_KEY, make_world, write_world

from rotator.cli import cli

ANSI = "\x1b["


def _plan_args(tmp_path: Path) -> list[str]:
    w = write_world(tmp_path / "world.yaml", make_world())
    return ["--world", str(w), "plan", "rotate-key", "--key", APP_KEY]


def test_a_terminal_gets_colour(tmp_path: Path) -> None:
    r = CliRunner().invoke(cli, _plan_args(tmp_path), color=True)
    assert r.exit_code == 0 and ANSI in r.output


def test_no_color_turns_it_off_even_on_a_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    r = CliRunner().invoke(cli, _plan_args(tmp_path), color=True)
    assert r.exit_code == 0 and ANSI not in r.output


def test_a_pipe_gets_none(tmp_path: Path) -> None:
    r = run_cli(_plan_args(tmp_path))  # stdout and stderr are not terminals
    assert r.code == 0 and ANSI not in r.stdout and ANSI not in r.stderr
    bad = run_cli(["plan", "rotate-key", "--key", "nope"])
    assert bad.code == 2 and ANSI not in bad.stderr and bad.stderr.startswith("error:")
