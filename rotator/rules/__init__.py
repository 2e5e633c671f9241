"""The rules rotator enforces, R1..R43, as users look them up with `rotator rules`.

Code, messages, playbooks and tests cite these numbers (`R16`, a runbook step of R13
as `R13.4`, a span as `R20-R24`). Each rule says what the cloud does, in a line and a
few more sentences, where it comes from (one of the five service pages in model.py), what
rotator does about it, and the modules that enforce or model it (tests/docs/test_rules.py
checks that every one of them exists and cites the rule).

The numbers leave gaps on purpose: R1-R7 are Cloud KMS itself, R10-R19 Cloud Storage,
R20-R24 Firestore, R30-R34 Dataflow, R40-R43 Cloud Run and Cloud Run functions.
Where a rule is rotator's own inference rather than a statement of its source, it
says so: when unsure, rotator assumes a version is still in use (the safe side).

The entries are in catalogue.py; this module looks them up and reads citations.
"""

from __future__ import annotations

import re

from rotator.errors import BadInput
from rotator.rules.catalogue import RULES, SOURCES
from rotator.rules.model import Rule, Source
from rotator.rules.text import explain_text, list_text, markdown

__all__ = [
    "BY_ID",
    "RULES",
    "SOURCES",
    "Rule",
    "Source",
    "cited",
    "explain_text",
    "list_text",
    "lookup",
    "markdown",
    "spans",
    "unknown_citations",
]

BY_ID: dict[str, Rule] = {r.id: r for r in RULES}

# A citation: R16, R13.4 (a runbook step), or a span R20-R24 / R20..R24.
CITATION = re.compile(r"\bR(\d{1,2})(?:\.(\d+))?\b(?:(?:-|\.\.)R(\d{1,2})\b)?")


def lookup(text: str) -> Rule:
    """The rule `text` names: R16, r16, 16, or a runbook step such as R13.4."""
    m = re.fullmatch(r"[Rr]?(\d{1,2})(?:\.(\d+))?", text.strip())
    rule = BY_ID.get(f"R{int(m.group(1))}") if m else None
    if m and rule and m.group(2) and not 1 <= int(m.group(2)) <= len(rule.parts):
        rule = None
    if rule is None:
        raise BadInput(
            f"RULE: no rule {text!r}; the rules are {spans()} (`rotator rules` lists them)",
            resource=text.strip() or "RULE",
        )
    return rule


def spans() -> str:
    """The rule numbers as spans, one a decade (a service): R1-R7, R10-R19, ..."""
    decades: dict[int, list[int]] = {}
    for r in RULES:
        decades.setdefault(r.number // 10, []).append(r.number)
    return ", ".join(f"R{min(g)}-R{max(g)}" if len(g) > 1 else f"R{g[0]}" for g in decades.values())


def cited(text: str) -> set[str]:
    """The rules `text` names one by one: R16; R13 for R13.4; both ends of a span R20-R24."""
    out = set()
    for m in CITATION.finditer(text):
        out.add(f"R{int(m.group(1))}")
        if m.group(3):
            out.add(f"R{int(m.group(3))}")
    return out


def unknown_citations(text: str) -> list[str]:
    """The references in `text` that name no rule (or no step of one)."""
    bad = []
    for m in CITATION.finditer(text):
        first, part, last = BY_ID.get(f"R{m.group(1)}"), m.group(2), m.group(3)
        ok = first is not None
        if ok and first and part:
            ok = 1 <= int(part) <= len(first.parts)
        if ok and last:
            ok = f"R{last}" in BY_ID and int(last) > int(m.group(1))
        if not ok:
            bad.append(m.group(0))
    return bad
