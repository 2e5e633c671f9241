"""`rotator plan` and `rotator show`: make a plan (read-only), render a saved one."""

from __future__ import annotations

import click

from rotator import playbooks
from rotator.cli.env import OUTPUT_FORMATS, Env, parse_services, pass_env, services_option
from rotator.errors import BadInput


def _parse_sets(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise BadInput(f"--set {item!r}: expected NAME=VALUE")
        if name.strip() in out:
            raise BadInput(f"--set {name.strip()} given twice")
        out[name.strip()] = value.strip()
    return out


@click.command()
@click.argument("playbook")
@click.option("--key", metavar="KEY", help="The key the playbook acts on (rollback: from the plan).")
@click.option("--new-key", metavar="KEY", help="The replacement key (replace-key).")
@click.option("--set", "sets", multiple=True, metavar="NAME=VALUE", help="A playbook parameter.")
@click.option("--out", metavar="PLAN.json", help="Write the plan here for `rotator apply`.")
@click.option(
    "--acknowledge-unreadable-inventory",
    "acknowledge",
    is_flag=True,
    help="When Cloud KMS Inventory cannot be read, vouch that no other product or project uses the "
    "key, so its versions may be disabled or destroyed; recorded in the plan, ticket and audit record.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Write --out over a plan whose apply is unfinished (its journal is moved aside, and said where).",
)
@services_option
@pass_env
def plan(
    env: Env,
    playbook: str,
    key: str | None,
    new_key: str | None,
    sets: tuple[str, ...],
    out: str | None,
    acknowledge: bool,
    force: bool,
    services: str,
) -> None:
    """Inspect the world and plan PLAYBOOK (read-only).

    \b
    Examples:
      rotator --world demo.yaml plan rotate-key --key KEY --out plan.json
      rotator --world demo.yaml plan replace-key --key OLD --new-key NEW --out plan.json
      rotator --world demo.yaml plan destroy-versions --key KEY --set versions=1,2
      rotator --world demo.yaml plan rollback --set plan=plan.json
      rotator plan rotate-key --key KEY --out gs://ops-state/plans/rk.json   # resumable anywhere
    """
    from rotator.plan import build_plan, resolve_params
    from rotator.planfiles import check_out, save_plan
    from rotator.render import plan_markdown, plan_text

    if out:
        check_out(out, force, OUTPUT_FORMATS)
    pb = playbooks.load(playbook)
    params = resolve_params(pb, key, new_key, _parse_sets(sets))
    chosen = tuple(parse_services(services))
    doc = build_plan(
        env.backend(),
        pb,
        params,
        emit=env.debug,
        services=chosen,
        acknowledged=acknowledge,
        projects=env.projects(),
    )
    save_plan(doc, out, env.say)
    if out:
        env.say(
            f"plan written to {out}; apply it with: rotator "
            f"{'--world ' + env.world + ' ' if env.world else ''}apply {out}"
        )
    env.result(doc, plan_text(doc), plan_markdown(doc, out))


@click.command()
@click.argument("plan_file", metavar="PLAN")
@pass_env
def show(env: Env, plan_file: str) -> None:
    """Render a saved plan offline (text, json or markdown), after checking its digest.

    \b
    Examples:
      rotator show plan.json
      rotator show plan.json --output markdown > ticket.md
    """
    from rotator.plandoc import load_plan
    from rotator.render import plan_markdown, plan_text

    doc, _ = load_plan(plan_file)
    env.result(doc, plan_text(doc), plan_markdown(doc, plan_file))
