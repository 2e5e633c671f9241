"""How the program ends (rotator.cli.leaving): the exit code, every byte written to
stdout and stderr, and the atexit handlers, as `sys.exit` gives them, without the
interpreter's teardown; the ordinary exit where a thread still runs, the code is not
a number or a profiler is on. Each case in a process of its own, as the program runs.

Backends: fake (`python -m rotator` on a missing world file; the other cases run no command)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def _program(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "program.py"
    script.write_text(
        "import atexit, sys, threading, time\n"
        "from pathlib import Path\n"
        "from rotator.cli.leaving import leave\n"
        f"HERE = Path({str(tmp_path)!r})\n" + body
    )
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("code", "expected"), [(None, 0), (0, 0), (3, 3), (130, 130)])
def test_the_code_the_output_and_the_atexit_handlers_are_kept(
    tmp_path: Path, code: int | None, expected: int
) -> None:
    done = _program(
        tmp_path,
        "atexit.register(lambda: (HERE / 'atexit').write_text('ran'))\n"
        "sys.stdout.write('no newline at the end')\n"
        "sys.stderr.write('error: also unflushed')\n"
        f"leave({code!r})\n"
        "(HERE / 'after').write_text('leave returned')\n",
    )
    assert done.returncode == expected
    assert (done.stdout, done.stderr) == ("no newline at the end", "error: also unflushed")
    assert (tmp_path / "atexit").read_text() == "ran"
    assert not (tmp_path / "after").exists()


def test_a_thread_still_running_is_waited_for_as_the_interpreter_would(tmp_path: Path) -> None:
    done = _program(
        tmp_path,
        "def late():\n"
        "    time.sleep(0.3)\n"
        "    (HERE / 'late').write_text('finished')\n"
        "threading.Thread(target=late).start()\n"
        "leave(4)\n",
    )
    assert done.returncode == 4
    assert (tmp_path / "late").read_text() == "finished"


def test_a_message_for_a_code_is_printed_and_exits_1(tmp_path: Path) -> None:
    done = _program(tmp_path, "leave('stopped: a message')\n")
    assert (done.returncode, done.stderr) == (1, "stopped: a message\n")


def test_python_m_rotator_ends_with_the_commands_code_and_output(tmp_path: Path) -> None:
    ok = subprocess.run([sys.executable, "-m", "rotator", "rules", "R14"], capture_output=True, text=True)
    assert ok.returncode == 0 and "R14" in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "rotator", "--world", str(tmp_path / "missing.yaml"), "inventory", "k"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and bad.stderr.startswith("error:"), bad.stderr


def test_a_profiled_run_ends_the_ordinary_way_so_the_profiler_writes_its_results(tmp_path: Path) -> None:
    out = tmp_path / "rules.prof"
    done = subprocess.run(
        [sys.executable, "-m", "cProfile", "-o", str(out), "-m", "rotator", "rules", "R14"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "R14" in done.stdout and out.stat().st_size > 0
