"""The tests' own layout (issue 15): the folders of tests/ mirror the code (core, docs, cli,
plan, engine, state, fake, gcp, services/<service>, inventory, safety, wire), every test
file a document cites exists where it says, and no two test files share a name.

Backends: none (reads files only)."""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
# `tests/cli/test_cli_scenarios.py`, optionally followed by `::test_name`; globs and
# placeholders (`tests/benchmarks/NAME.py`) are not paths.
CITED = re.compile(r"(?<![\w/])tests/[a-z0-9_/]+\.py\b")


def tracked_text_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    paths = [ROOT / p for p in listed.stdout.split()]
    return [p for p in paths if p.suffix in {".py", ".md", ".toml", ".yaml", ".sh"} and p.is_file()]


def test_every_test_file_the_project_cites_exists() -> None:
    missing = {
        f"{path.relative_to(ROOT)}: {cited}"
        for path in tracked_text_files()
        for cited in CITED.findall(path.read_text(encoding="utf-8"))
        if not (ROOT / cited).is_file()
    }
    assert sorted(missing) == []


def test_no_two_test_files_share_a_name() -> None:
    # tests/ has no __init__.py: pytest imports each test file by its base name (the
    # "prepend" import mode), so two files of one name in two folders would collide.
    names = Counter(p.name for p in TESTS.rglob("test_*.py") if "benchmarks" not in p.parts)
    assert [n for n, count in names.items() if count > 1] == []


def test_no_test_file_is_left_at_the_top_of_tests() -> None:
    # each suite lives in the folder of the layer or service it tests; only this lint of
    # the layout itself stays at the top, beside the shared builders and fixtures.
    assert sorted(p.name for p in TESTS.glob("test_*.py")) == [Path(__file__).name]
