"""The rules ship with the tool (rotator/rules.py, `rotator rules`), and the project
keeps to them: every rule cited in the package, its playbooks and the README exists;
every rule is named by a test; every rule is enforced or modelled in the modules its
entry names, and each of those modules cites it.

Backends: none (the code, the documents and `rotator rules`)."""

from __future__ import annotations

import ast
import importlib.util
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import run_cli

from rotator import rules
from rotator.cli import cli
from rotator.rules import BY_ID, RULES, SOURCES

ROOT = Path(__file__).resolve().parents[2]
# The numbering of the service documents: R1-R7 Cloud KMS, R10-R19 Cloud Storage,
# R20-R24 Firestore, R30-R34 Dataflow, R40-R43 Cloud Run and functions.
NUMBERS = [*range(1, 8), *range(10, 20), *range(20, 25), *range(30, 35), *range(40, 44)]


def shipped_text() -> dict[str, str]:
    """What users get or read: the package's code and messages, the playbooks, README."""
    files = [
        *sorted((ROOT / "rotator").rglob("*.py")),
        *sorted((ROOT / "playbooks").rglob("*.yaml")),
        *sorted((ROOT / "playbooks").rglob("*.sh")),
        ROOT / "README.md",
    ]
    return {str(p.relative_to(ROOT)): p.read_text(encoding="utf-8") for p in files}


# -- the list itself -----------------------------------------------------------------------


def test_the_list_has_every_rule_of_the_service_documents_once_in_order() -> None:
    assert [r.id for r in RULES] == [f"R{n}" for n in NUMBERS]
    assert len(BY_ID) == len(RULES) == 31


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_every_rule_has_one_line_its_source_and_where_it_is_enforced(rule: rules.Rule) -> None:
    for text in (rule.summary, rule.detail, rule.honoured, rule.inference, *rule.parts):
        assert "\n" not in text and text == text.strip()
    assert rule.summary and rule.detail and rule.honoured
    assert rule.sources and set(rule.sources) <= set(SOURCES)
    assert rule.enforced_in and len(set(rule.enforced_in)) == len(rule.enforced_in)
    # The text cites only rules that exist (R3 points at R15, R41 at R40 ...).
    for text in (rule.summary, rule.detail, rule.honoured):
        assert rules.unknown_citations(text) == [], (rule.id, text)


def test_the_five_source_documents_are_all_used() -> None:
    assert {s for r in RULES for s in r.sources} == set(SOURCES)
    assert {s.service for s in SOURCES.values()} == {
        "Cloud Storage",
        "Firestore",
        "Dataflow",
        "Cloud Run",
        "Cloud Run functions",
    }
    assert all(s.url.startswith("https://cloud.google.com/") for s in SOURCES.values())


def test_the_citation_reader_knows_what_exists() -> None:
    # Not vacuous: each of these names no rule (or no step of one).
    for bad in ("R8", "R25", "R44", "R99", "R13.5", "R7.1", "R20-R29", "R24-R20"):
        assert rules.unknown_citations(f"see ({bad})") == [bad], bad
    for good in ("R1", "R13.4", "R20-R24", "R41..R43"):
        assert rules.unknown_citations(f"see ({good})") == [], good
    assert rules.cited("pins (R16; R13.4) and R20-R24") == {"R16", "R13", "R20", "R24"}
    assert rules.cited("ERR16 xR3 R100") == set()


# -- lint: the project keeps to the list ---------------------------------------------------


def test_every_rule_cited_in_the_package_playbooks_and_readme_exists() -> None:
    unknown = {path: bad for path, text in shipped_text().items() if (bad := rules.unknown_citations(text))}
    assert unknown == {}
    # and the scan saw the citations it should: every rule is cited somewhere shipped
    everywhere = set().union(*(rules.cited(t) for t in shipped_text().values()))
    assert set(BY_ID) <= everywhere


def test_nothing_shipped_points_at_a_document_users_do_not_have() -> None:
    # The rules used to live in a DOMAIN.md outside the repository; `rotator rules` replaces it.
    assert [p for p, text in shipped_text().items() if "DOMAIN" in text] == []


def which_tests_name_each_rule() -> dict[str, set[str]]:
    """rule -> the test functions that name it: in the test's name (`test_r16_...`), its
    decorators (parametrize tables), docstring or body. A mention elsewhere in the file
    (a helper, a module docstring) does not count."""
    named: dict[str, set[str]] = {}
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        if path.name == Path(__file__).name:
            continue  # this file names them all by reading the list
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, ast.FunctionDef) or not node.name.startswith("test_"):
                continue
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            text = "\n".join(lines[first - 1 : node.end_lineno])
            by_name = {f"R{int(n)}" for n in re.findall(r"^test_r(\d+)_", node.name)}
            for rule in rules.cited(text) | by_name:
                named.setdefault(rule, set()).add(f"{path.name}::{node.name}")
    return named


def test_every_rule_is_named_by_a_test() -> None:
    named = which_tests_name_each_rule()
    assert [r.id for r in RULES if r.id not in named] == []
    # not vacuous: the two rules once named by no test are named now
    assert {"test_rules_r23_r33.py::test_r33_jobs_halted_by_a_revocation_no_longer_pin_their_version"} <= (
        named["R33"]
    )
    assert any(t.startswith("test_rules_r23_r33.py::test_r23_") for t in named["R23"])


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_every_rule_is_enforced_in_the_modules_its_entry_names(rule: rules.Rule) -> None:
    for module in rule.enforced_in:
        assert module.startswith("rotator.") and module != "rotator.rules", module
        spec = importlib.util.find_spec(module)
        assert spec is not None and spec.origin, f"{rule.id}: no module {module}"
        source = Path(spec.origin).read_text(encoding="utf-8")
        assert rule.id in rules.cited(source), f"{rule.id}: {module} does not cite it"


# -- `rotator rules` -----------------------------------------------------------------------


def invoke(*args: str) -> str:
    r = CliRunner().invoke(cli, list(args))
    assert r.exit_code == 0, r.output
    return r.output


def test_rules_lists_every_rule_once_with_its_line() -> None:
    out = invoke("rules")
    starts = [line.split()[0] for line in out.splitlines() if not line.startswith(" ")]
    assert starts == [r.id for r in RULES]
    flat = " ".join(out.split())
    for r in RULES:
        assert r.summary in flat


@pytest.mark.parametrize("spelling", ["R16", "r16", "16", " R16 "])
def test_rules_explains_one_however_it_is_spelled(spelling: str) -> None:
    out = invoke("rules", spelling)
    assert out.splitlines()[0] == "R16  Cloud Storage"
    flat = " ".join(out.split())
    r16 = BY_ID["R16"]
    for text in (r16.summary, r16.detail, r16.honoured, r16.inference):
        assert text in flat
    assert SOURCES["storage"].url in out
    assert all(m in flat for m in r16.enforced_in)
    # the steps that cite it, with the playbooks that run them
    assert "kms.destroy_versions (destroy-versions)" in flat
    assert invoke("rules", "R16") == out


def test_rules_explains_a_runbook_step_through_its_rule() -> None:
    out = invoke("rules", "R13.4")
    assert out.splitlines()[0] == "R13  Cloud Storage"
    assert "R13.4" in out and BY_ID["R13"].parts[3] in " ".join(out.split())


def test_rules_json_is_one_document_with_every_rule() -> None:
    doc = json.loads(invoke("--output", "json", "rules"))
    assert doc["kind"] == "rotator.rules"
    assert [r["id"] for r in doc["rules"]] == [r.id for r in RULES]
    r13 = next(r for r in doc["rules"] if r["id"] == "R13")
    assert list(r13["parts"]) == ["R13.1", "R13.2", "R13.3", "R13.4"]
    assert "storage.set_bucket_defaults" in r13["cited_by"]
    one = json.loads(invoke("--output", "json", "rules", "r23"))
    assert [r["id"] for r in one["rules"]] == ["R23"]
    assert one["rules"][0]["sources"][0]["service"] == "Firestore"


def test_rules_markdown_is_a_table_with_a_row_a_rule_and_its_source_links() -> None:
    rows = invoke("--output", "markdown", "rules").splitlines()
    assert rows[0].startswith("| rule |") and rows[1].startswith("|---")
    assert [row.split(" | ")[0] for row in rows[2:]] == [f"| {r.id}" for r in RULES]
    r30 = rows[2 + [r.id for r in RULES].index("R30")]
    assert f"]({SOURCES['dataflow'].url})" in r30
    one = invoke("--output", "markdown", "rules", "R43").splitlines()
    assert len(one) == 3 and one[2].startswith("| R43 |") and "*(inferred)*" in one[2]


def test_the_rules_rotator_infers_are_marked_as_such() -> None:
    # R18, R34 and R43 are not statements of their source documents; R16 is in part.
    assert [r.id for r in RULES if r.inferred] == ["R18", "R34", "R43"]
    assert [r.id for r in RULES if r.inference] == ["R16", "R18", "R34", "R43"]
    assert "(inferred)" in " ".join(invoke("rules").split())
    assert "(the whole rule)" in invoke("rules", "R18") and "(in part)" in invoke("rules", "R16")


@pytest.mark.parametrize("bad", ["R99", "R8", "0", "R13.5", "rule16", "R", "", "16x", "-3"])
def test_an_unknown_rule_is_one_line_exit_2(bad: str) -> None:
    r = run_cli(["rules", "--", bad])
    assert r.code == 2, r
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: RULE: no rule"), r
    assert "R1-R7, R10-R19, R20-R24, R30-R34, R40-R43" in lines[0]


def test_an_unknown_rule_in_json_is_an_error_document() -> None:
    r = run_cli(["--output", "json", "rules", "R99"])
    assert r.code == 2
    doc = json.loads(r.stdout)
    assert doc["kind"] == "rotator.error" and "R99" in doc["error"]["message"]
