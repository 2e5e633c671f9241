"""What a command holds open ends with it: a script (or this suite) that runs many
commands in one process does not pile up the fake's state-database connections.

Backends: fake.
"""

from __future__ import annotations

import os
from pathlib import Path

from helpers import WorldCli
from worlds import APP_KEY, make_world

FDS = Path("/proc/self/fd")  # Linux, as CI


def test_many_commands_in_one_process_leave_no_open_files_behind(tmp_path: Path) -> None:
    w = WorldCli(tmp_path, make_world())
    assert w("inventory", APP_KEY).code == 0  # the state is made; imports are loaded
    before = len(os.listdir(FDS))
    for _ in range(25):
        assert w("inventory", APP_KEY).code == 0
        assert w.plan("rotate-key", APP_KEY).code == 0
    after = len(os.listdir(FDS))
    # Before the CLI closed its backend each command left its SQLite files open (3 a run).
    assert after - before < 5, f"{after - before} files left open by 50 commands"
