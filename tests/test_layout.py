"""The tests' own layout (issue 15): the folders of tests/ mirror the code (core, docs, cli,
plan, engine, state, fake, gcp, services/<service>, inventory, safety, wire), every test
file a document cites exists where it says, no two test files share a name, and each
suite says on which backends it runs, in one docstring line:

    Backends: fake; gcp over the wire (tests/wire/test_suites_over_the_wire.py runs this file again).

Each `;`-separated item is one of BACKENDS, and a parenthesis after it may say more.

Backends: none (reads files only)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
# `tests/cli/test_cli_scenarios.py`, optionally followed by `::test_name`; globs and
# placeholders (`tests/benchmarks/NAME.py`) are not paths.
CITED = re.compile(r"(?<![\w/])tests/[a-z0-9_/]+\.py\b")


BACKENDS = {
    "none": "no backend: pure code, documents",
    "fake": "the fake backend (rotator.backends.fake), in process or in real processes",
    "gcp": "the gcp backend in process, with no server behind it",
    "gcp over the wire": "the gcp backend through the official clients to tests/wire's servers",
    "wire servers": "tests/wire's servers under the official clients, without rotator",
    "fake-gcs-server": "the gcp Storage adapter against that third-party emulator",
}
OVER_THE_WIRE = "tests/wire/test_suites_over_the_wire.py"
# What a suite not listed there needs to run over the wire itself.
SERVES_THE_WIRE = re.compile(r'serve_world_file|grpc_server|storage_http|"ROTATOR_TEST_BACKEND", "gcp"')


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


def suite_files() -> list[Path]:
    return sorted(p for p in TESTS.rglob("test_*.py") if "benchmarks" not in p.parts)


def backends_line(path: Path) -> str:
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    lines = [line for line in doc.splitlines() if line.startswith("Backends: ")]
    assert len(lines) == 1, f"{path.relative_to(ROOT)}: {len(lines)} `Backends: ...` lines in its docstring"
    assert lines[0].endswith("."), lines[0]
    return lines[0]


def backends_named(line: str) -> list[str]:
    """The items of a line, in its order, parentheses left out: each should be one of BACKENDS."""
    items = re.sub(r"\([^)]*\)", "", line.removeprefix("Backends: ").removesuffix(".")).split(";")
    return [item.strip() for item in items]


def run_over_the_wire() -> dict[str, bool]:
    """test file -> whether test_suites_over_the_wire.py runs it whole (not test by test)."""
    sys.path.insert(0, str(TESTS / "wire"))
    try:
        from test_suites_over_the_wire import SUITES
    finally:
        sys.path.remove(str(TESTS / "wire"))
    listed: dict[str, bool] = {}
    for entry in SUITES:
        path, _, test = entry.partition("::")
        listed[path] = listed.get(path, False) or not test
    return listed


@pytest.mark.parametrize("path", suite_files(), ids=lambda p: str(p.relative_to(TESTS)))
def test_every_suite_says_on_which_backends_it_runs(path: Path) -> None:
    named = backends_named(backends_line(path))
    assert [b for b in named if b not in BACKENDS] == [], f"not one of {sorted(BACKENDS)}"
    assert "none" not in named or named == ["none"]
    if path.parent.name == "wire":
        assert {"gcp over the wire", "wire servers"} & set(named), "a wire suite runs over the wire"


@pytest.mark.parametrize("path", suite_files(), ids=lambda p: str(p.relative_to(TESTS)))
def test_the_suites_run_over_the_wire_say_so_and_no_other_suite_claims_it(path: Path) -> None:
    line = backends_line(path)
    relative = str(path.relative_to(ROOT))
    listed = run_over_the_wire()
    if relative in listed:
        assert "gcp over the wire" in backends_named(line) and OVER_THE_WIRE in line, line
        assert ("runs this file again" if listed[relative] else "(some tests:") in line, line
        return
    assert OVER_THE_WIRE not in line or relative == OVER_THE_WIRE, f"{relative} is not in SUITES: {line}"
    if "gcp over the wire" in backends_named(line) and path.parent.name != "wire":
        # not run again by the wire suite: it must bring up the wire itself
        assert SERVES_THE_WIRE.search(path.read_text(encoding="utf-8")), line


def test_the_over_the_wire_list_names_files_that_exist() -> None:
    assert [p for p in run_over_the_wire() if not (ROOT / p).is_file()] == []
