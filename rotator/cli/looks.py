"""The read-only looks: `rotator inventory` (one key), `rotator report` (every key of the
projects), `rotator playbooks` and `rotator rules` (what rotator does, and why)."""

from __future__ import annotations

from typing import Any

import click

from rotator import apierrors as api
from rotator import playbooks
from rotator.backends.opening import checked_projects
from rotator.cli.env import Env, parse_services, pass_env, services_option
from rotator.errors import BadInput
from rotator.names import parse_key
from rotator.output_schemas import stamp
from rotator.timeutil import parse_duration


@click.command("playbooks")
@click.argument("name", required=False)
@pass_env
def playbooks_cmd(env: Env, name: str | None) -> None:
    """List the playbooks, or explain one (its parameters and steps).

    \b
    Examples:
      rotator playbooks
      rotator playbooks replace-key
    """
    docs = [playbooks.describe(n) for n in ([name] if name else playbooks.available())]
    env.result(stamp("rotator.playbooks", {"playbooks": docs}), _playbooks_text(docs, explain=bool(name)))


def _playbooks_text(docs: list[dict[str, Any]], explain: bool) -> str:
    lines = []
    for d in docs:
        params = " ".join(
            (
                f"--{p.replace('_', '-')} KEY"
                if p in ("key", "new_key")
                else f"--set {p}=..."
                if spec["required"]
                else f"[--set {p}=...]"
            )
            for p, spec in d["parameters"].items()
        )
        lines.append(f"{d['name']:<18} {d['summary']}\n{'':<18} parameters: {params}")
        if explain:
            if d["description"]:
                lines.append("\n" + d["description"].strip())
            lines.append("\nParameters:")
            for p, spec in d["parameters"].items():
                lines.append(f"  {p:<10} {'(required) ' if spec['required'] else ''}{spec['help']}")
            lines.append("\nSteps:")
            for i, s in enumerate(d["steps"], 1):
                rules = f" [{' '.join(s['rules'])}]" if s["rules"] else ""
                when = f" (only with --set {s['when']})" if s["when"] else ""
                lines.append(f"  {i}. {s['id']} ({s['kind']}){rules}{when}\n     {s['summary']}")
    return "\n".join(lines)


@click.command("rules")
@click.argument("rule", required=False)
@pass_env
def rules_cmd(env: Env, rule: str | None) -> None:
    """List the rules rotator enforces (R1..R43), or explain RULE.

    Messages, plans and playbooks cite these numbers; RULE may be R16, r16 or 16.

    \b
    Examples:
      rotator rules
      rotator rules R16
      rotator --output json rules R13
      rotator --output markdown rules > rules.md
    """
    from rotator import rules

    chosen = [rules.lookup(rule)] if rule is not None else list(rules.RULES)
    cited_by = playbooks.citing(r.id for r in chosen)
    docs = [{**r.to_json(rules.SOURCES), "cited_by": cited_by[r.id]} for r in chosen]
    if rule is not None:
        text = rules.explain_text(chosen[0], cited_by[chosen[0].id])
    else:
        text = rules.list_text(chosen)
    env.result(stamp("rotator.rules", {"rules": docs}), text, rules.markdown(chosen))


@click.command()
@click.argument("key")
@services_option
@pass_env
def inventory(env: Env, key: str, services: str) -> None:
    """Show what each version of KEY protects and what pins it.

    \b
    Example:
      rotator --world demo.yaml inventory projects/demo/locations/us-east1/keyRings/ring/cryptoKeys/app
    """
    from rotator.inventory import scan_key
    from rotator.plan import inventory_json
    from rotator.render import inventory_text

    key_name = str(parse_key(key, field="KEY"))
    chosen = parse_services(services)
    backend = env.backend()
    try:
        backend.kms.get_crypto_key(key_name)
    except api.NotFound:
        raise BadInput(f"KEY: key {key_name} not found", resource=key_name, rule="R1") from None
    inv = inventory_json(
        scan_key(
            backend,
            key_name,
            services=chosen,
            progress=lambda b, n: env.debug(f"gs://{b}: {n}"),
            projects=env.projects(),
        )
    )
    env.result(stamp("rotator.inventory", inv), inventory_text(inv))


@click.command()
@click.option(
    "--project",
    "projects",
    multiple=True,
    metavar="ID",
    help="A project whose keys to report (repeatable; default: the global --project).",
)
@click.option("--max-age", metavar="DURATION", help="Flag keys whose primary version is older (e.g. 90d).")
@click.option(
    "--kms-reads-per-minute",
    type=click.IntRange(1, 1_000_000),
    default=300,
    show_default=True,
    help="Client-side cap on Cloud KMS read requests per project per minute (Cloud KMS's default quota).",
)
@pass_env
def report(env: Env, projects: tuple[str, ...], max_age: str | None, kms_reads_per_minute: int) -> None:
    """Every key of the projects: rotation, primary age, each version's state, age and
    what it protects, and which versions are safe to disable or destroy.

    \b
    Examples:
      rotator --world demo.yaml report --max-age 90d
      rotator report --project prod-a --project prod-b --output csv > keys.csv
    """
    from rotator.progress import factory_for
    from rotator.ratelimit import PerMinuteQuota
    from rotator.report import build_report, report_csv, report_text

    age = parse_duration(max_age, field="--max-age") if max_age else None
    backend = env.backend()
    chosen = list(checked_projects(backend, projects) if projects else env.projects())
    bars = factory_for(quiet=env.quiet, json_output=env.output in ("json", "csv"), unit="keys")
    progress: list[Any] = []

    def start(total: int) -> None:
        progress.append(bars("keys", total, 0))

    doc = build_report(
        backend,
        chosen,
        max_age=age,
        quota=PerMinuteQuota(kms_reads_per_minute),
        on_keys=start,
        on_key=lambda _k: progress[0].update(1, 0),
    )
    if progress:
        progress[0].close()
    env.result(stamp("rotator.report", doc), report_text(doc), csv=report_csv(doc))
