"""Text rendering of plans, inventories and apply status (JSON is the documents as-is)."""

from __future__ import annotations

from typing import Any

from rotator.changes import Change, change_line, change_sign
from rotator.guards import describe_pin
from rotator.pins import PinGroup
from rotator.units import human_bytes


def _pin_line(b: dict[str, Any]) -> str:
    g = PinGroup(b["kind"], b["resource"], b["count"], b["bytes"], None, False, b["examples"], b["detail"])
    text = describe_pin(g)
    frees = f"frees {b['frees_at']}" if b["frees_at"] else f"frees when {b['frees_when']}"
    return text.rsplit(" [", 1)[0] + f" [{b['rule']}; {frees}]"


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def plan_text(doc: dict[str, Any]) -> str:
    t = doc["target"]
    out = [
        f"Plan: {doc['playbook']['name']} on {doc['params']['key']}",
        f"  project {t['project']} ({t['backend']}{', world ' + t['world'] if 'world' in t else ''})"
        f", as of {doc['created']}",
    ]
    if doc["params"].get("new_key"):
        out.append(f"  new key {doc['params']['new_key']}")
    inv = doc["inventory"]
    if inv.get("uninspected_services"):
        out.append(f"  not inspected (--services): {', '.join(inv['uninspected_services'])}")
    out.append(f"  Cloud KMS Inventory cross-check: {inv.get('kms_inventory_cross_check', 'not available')}")
    for note in (inv.get("kms_inventory") or {}).get("notes", []):
        out.append(f"    note: {note}")
    for a in doc.get("acknowledgements", []):
        out.append(f"  ACKNOWLEDGED: {a['text']}")
    if doc.get("preflight"):
        p = doc["preflight"]
        out.append(
            f"  preflight: {p['agents_checked']} service agent grant(s) and {p['permissions_checked']} "
            "caller permission(s) checked, none missing"
        )
    out.append("")
    out.append("Key versions now:")
    for v in doc["inventory"]["versions"]:
        flags = " primary" if v["primary"] else ""
        out.append(f"  {v['number']:>3}  {v['state']:<17}{flags}".rstrip())
    out.append("")
    for i, step in enumerate(doc["steps"], 1):
        rules = " ".join(step["rules"])
        if not (step["changes"] or step["notes"] or step["blockers"] or step["data"].get("keep")):
            out.append(f"Step {i}: {step['id']} ({step['kind']}): nothing to do")
            out.append("")
            continue
        out.append(f"Step {i}: {step['id']} ({step['kind']}){'  [' + rules + ']' if rules else ''}")
        out.append(f"    {step['title']}")
        for c in step["changes"]:
            out.append(f"    {change_sign(c)} {change_line(c)}")
        for n, reasons in step["data"].get("keep", {}).items():
            out.append(f"    ! keep version {n}: pinned")
            for r in reasons:
                out.append(f"        {r}")
        impact = [b for b in step["blockers"] if b.get("impact")]
        for b in impact:
            what = _pin_line(b).rsplit(" [", 1)[0]
            out.append(f"    ! version {b['version']}: {what}: {b['impact']}")
        for note in step["notes"]:
            out.append(f"    note: {note}")
        out.append("")
    s = doc["summary"]
    parts = [
        f"{_n(s['objects_to_rewrite'], 'object')} to rewrite ({human_bytes(s['bytes_to_rewrite'])})",
        f"{_n(s['versions_to_disable'], 'version')} to disable",
        f"{s['versions_pinned']} pinned",
    ]
    if s.get("versions_to_restore"):
        parts.append(f"{_n(s['versions_to_restore'], 'version')} to restore")
    if s.get("versions_to_enable"):
        parts.append(f"{_n(s['versions_to_enable'], 'version')} to enable again")
    if s["versions_to_destroy"]:
        parts.append(f"{_n(s['versions_to_destroy'], 'version')} to destroy")
    if s["buckets_to_change"]:
        parts.append(f"{_n(s['buckets_to_change'], 'bucket default')} to change")
    if s["grants"]:
        parts.append(_n(s["grants"], "grant"))
    out.append("Plan: " + ", ".join(parts) + ".")
    return "\n".join(out)


def inventory_text(inv: dict[str, Any]) -> str:
    out = [f"Key {inv['key']} ({inv['protection_level']}), primary {inv['primary']}, as of {inv['now']}"]
    if inv["bucket_defaults"]:
        out.append("Default key of: " + ", ".join(inv["bucket_defaults"]))
    out.append(f"Cloud KMS Inventory: {inv.get('kms_inventory_cross_check', 'not read')}")
    for note in (inv.get("kms_inventory") or {}).get("notes", []):
        out.append(f"  note: {note}")
    out.append("")
    out.append(f"{'VERSION':<8} {'STATE':<18} {'PRIMARY':<8} {'DISABLE':<9} {'DESTROY':<9} FREES UP")
    for v in inv["versions"]:
        state = v["state"] + (f" until {v['destroy_time']}" if v["destroy_time"] else "")
        out.append(
            f"{v['number']:<8} {v['state']:<18} {'yes' if v['primary'] else '':<8} "
            f"{'blocked' if v['blocks_disable'] else 'ok':<9} "
            f"{'blocked' if v['blocks_destroy'] else 'ok':<9} "
            f"{v['frees_up'] or ('-' if not v['blocks_destroy'] else 'no date')}"
        )
        if v["destroy_time"]:
            out.append(f"    DESTROYED after {v['destroy_time']} unless restored (R1)")
        del state
        for u in v["uses"]:
            effect = (
                "blocks disable+destroy"
                if u["blocks_disable"]
                else "blocks destroy"
                if u["blocks_destroy"]
                else "no block"
            )
            out.append(f"    {_pin_line(u)} ({effect})")
    return "\n".join(out)


def _value(v: Any) -> str:
    """A result value as a person reads it: lists joined, mappings as `k v`, no reprs."""
    if v is None or v == [] or v == {}:
        return "none"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, (list, tuple)):
        return ", ".join(_value(x) for x in v)
    if isinstance(v, dict):
        return "; ".join(f"{k} {_value(x)}" for k, x in v.items())
    return str(v)


def _pairs(values: dict[str, Any]) -> str:
    return ", ".join(f"{k.replace('_', ' ')} {_value(v)}" for k, v in values.items())


def life_line(plan_path: str, life: dict[str, Any]) -> str:
    """One line: where the plan is in its life, and who runs it or ran it last."""
    state = life["state"]
    unfinished = state in ("applying", "waiting", "interrupted", "failed")
    line = f"{plan_path}: {state}{', not complete' if unfinished else ''}"
    # Never "None" or "?": a fact the journal lacks is left out, or said in words.
    if state == "applying":
        line += f" (pid {life.get('pid') or 'unknown'} on {life.get('host') or 'an unknown host'}"
        line += f", since {life['since']})" if life.get("since") else ")"
    elif state == "interrupted":
        at = f" at step {life['at_step']}" if life.get("at_step") else ""
        line += f" ({life.get('signal') or 'stopped'}{at}; run the same apply to resume)"
    elif state in ("waiting", "failed") and life.get("error"):
        at = f"step {life['at_step']}: " if life.get("at_step") else ""
        line += f" ({at}{life['error']})"
    elif state == "done":
        line += f" (apply complete at {life['applied']})" if life.get("applied") else ""
    elif state == "rolled back":
        if life.get("applied"):
            done = f"applied at {life['applied']}"
        else:
            done = "never completed" + (f", stopped at step {life['at_step']}" if life.get("at_step") else "")
        line += f" ({done}, rolled back at {life.get('rolled_back')}" + (
            f" by {life['rolled_back_by']})" if life.get("rolled_back_by") else ")"
        )
    if life.get("runs"):
        line += f", {life['runs']} run{'s' if life['runs'] != 1 else ''}"
    return line


def status_text(plan_path: str, steps: list[dict[str, Any]], life: dict[str, Any]) -> str:
    out = [life_line(plan_path, life)]
    for s in steps:
        line = f"  {s['state']:<8} {s['id']} ({s['kind']})"
        if s.get("result") is not None:
            line += "  " + _pairs(s["result"])
        elif s.get("progress"):
            line += "  so far: " + _pairs(s["progress"])
        if s.get("error"):
            line += f"  error: {s['error']}"
        out.append(line)
    return "\n".join(out)


def plan_markdown(doc: dict[str, Any], plan_file: str | None = None) -> str:
    """The plan as a change-ticket body: what changes, what pins what, and the rollback."""
    key, s, t = doc["params"]["key"], doc["summary"], doc["target"]
    ref = plan_file or "PLAN.json"
    out = [
        f"# Change: `{doc['playbook']['name']}` on `{key}`",
        "",
        f"- **Project**: {t['project']} ({t['backend']} backend), planned as of {doc['created']}",
        f"- **Summary**: {_n(s['objects_to_rewrite'], 'object')} to rewrite "
        f"({human_bytes(s['bytes_to_rewrite'])}), {_n(s['versions_to_disable'], 'version')} to disable, "
        f"{s['versions_pinned']} pinned, {_n(s['versions_to_destroy'], 'version')} to destroy",
        f"- **Apply**: `rotator apply {ref}` (resumable; `rotator status {ref}` shows progress)",
        f"- **Cloud KMS Inventory**: {doc['inventory'].get('kms_inventory_cross_check', 'not read')}",
        *(f"- **ACKNOWLEDGED**: {a['text']}" for a in doc.get("acknowledgements", [])),
        "",
        "## What will change",
        "",
        "| # | step | change |",
        "|---|---|---|",
    ]
    for i, step in enumerate(doc["steps"], 1):
        rules = f" ({', '.join(step['rules'])})" if step["rules"] else ""
        lines = [change_line(c) for c in step["changes"]] or ["nothing to do"]
        for j, line in enumerate(lines):
            out.append(f"| {i if j == 0 else ''} | {step['id'] + rules if j == 0 else ''} | {line} |")
    kept = [(n, r) for step in doc["steps"] for n, rs in step["data"].get("keep", {}).items() for r in rs]
    out += ["", "## What pins what (kept enabled)", ""]
    if kept:
        out += ["| version | pinned by |", "|---|---|"] + [f"| {n} | {r} |" for n, r in kept]
    else:
        out.append("Nothing pins the versions this change disables.")
    notes = [n for step in doc["steps"] for n in step["notes"]]
    if notes:
        out += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    disables = [c["version"] for st in doc["steps"] for c in st["changes"] if c["action"] == Change.DISABLE]
    destroys = [c for st in doc["steps"] for c in st["changes"] if c["action"] == Change.DESTROY]
    out += ["", "## Rollback", ""]
    if disables or destroys:
        out.append(
            f"`rotator plan rollback --set plan={ref} --out rollback.json && rotator apply rollback.json` "
            "re-enables what this change disabled and restores what it scheduled for destruction."
        )
        for v in disables:
            out.append(f"- `{v}`: re-enable at any time (R14)")
        for c in destroys:
            out.append(
                f"- `{c['version']}`: restore before {c['destroyed_after']}; after that it is gone (R1)"
            )
    else:
        out.append("Nothing to roll back: this change disables and destroys nothing.")
    return "\n".join(out)


_COLOURS = {"+ ": "green", "- ": "red", "~ ": "yellow", "! ": "magenta", "… ": "cyan"}


def colour(text: str) -> str:
    """ANSI colours for a terminal: changes by kind, the summary in bold. click.echo
    strips them when the stream is not a terminal, and NO_COLOR turns them off."""
    import click

    out = []
    for line in text.splitlines():
        body = line.lstrip()
        fg = next((c for sign, c in _COLOURS.items() if body.startswith(sign)), None)
        if fg:
            line = click.style(line, fg=fg)
        elif line.startswith(("Plan: ", "Apply of ")):
            line = click.style(line, bold=True)
        elif line.startswith("Step "):
            line = click.style(line, fg="cyan")
        out.append(line)
    return "\n".join(out)
