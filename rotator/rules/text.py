"""What `rotator rules` shows: the list, one rule in full, or a Markdown table."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable

from rotator.rules.catalogue import SOURCES
from rotator.rules.model import Rule


def _wrap(text: str, indent: str, width: int = 100, first: str | None = None) -> str:
    return textwrap.fill(
        text,
        width=width,
        initial_indent=indent if first is None else first,
        subsequent_indent=indent,
        break_on_hyphens=False,
    )


def list_text(rules: Iterable[Rule]) -> str:
    """One entry a rule: number, topic, the one-line summary (wrapped to the terminal)."""
    rules = list(rules)
    width = max(len(r.topic) for r in rules)
    return "\n".join(
        _wrap(
            r.summary + (" (inferred)" if r.inferred else ""),
            " " * (width + 7),
            first=f"{r.id:<5} {r.topic:<{width}} ",
        )
        for r in rules
    )


def explain_text(rule: Rule, cited_by: dict[str, list[str]]) -> str:
    """One rule in full. `cited_by`: step kind -> the playbooks that use it."""
    out = [f"{rule.id}  {rule.topic}", _wrap(rule.summary, ""), "", _wrap(rule.detail, "")]
    if rule.parts:
        out += ["", "Parts:"] + [
            _wrap(p, " " * 10, first=f"  {rule.id}.{i:<4}") for i, p in enumerate(rule.parts, 1)
        ]
    if rule.inference:
        which = "the whole rule" if rule.inferred else "in part"
        out += [
            "",
            f"Inferred by rotator ({which}), not stated by the source:",
            _wrap(rule.inference + ".", "  "),
        ]
    out += ["", "What rotator does:", _wrap(rule.honoured, "  ")]
    out.append("")
    for i, key in enumerate(rule.sources):
        s = SOURCES[key]
        label = "Source:" if i == 0 else ""
        out.append(f'{label:<13}{s.service}, "{s.page}" (read in {s.language})')
        out.append(f"{'':<13}{s.url}")
    out.append(f"{'Enforced in:':<13}{', '.join(rule.enforced_in)}")
    if cited_by:
        steps = [f"{k} ({', '.join(p) or 'no playbook'})" for k, p in sorted(cited_by.items())]
        out.append(_wrap(", ".join(steps), " " * 13, first=f"{'Cited by:':<13}"))
    return "\n".join(out)


def markdown(rules: Iterable[Rule]) -> str:
    """The rules as a Markdown table, for a runbook or a change ticket."""
    rows = ["| rule | topic | what the cloud does | source |", "|---|---|---|---|"]
    for r in rules:
        summary = r.summary + (" *(inferred)*" if r.inferred else "")
        links = ", ".join(f"[{SOURCES[s].service}]({SOURCES[s].url})" for s in r.sources)
        rows.append(f"| {r.id} | {r.topic} | {summary.replace('|', '/')} | {links} |")
    return "\n".join(rows)
