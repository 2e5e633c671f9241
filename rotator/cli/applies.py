"""`rotator apply` and `rotator status`: run a saved plan (resuming from its journal),
and say where its apply is."""

from __future__ import annotations

import sys
from typing import Any

import click

from rotator.cli.env import Env, pass_env
from rotator.errors import BadInput
from rotator.journal import events_of
from rotator.names import key_id
from rotator.output_schemas import stamp
from rotator.places import open_place
from rotator.ratelimit import DEFAULT_CONCURRENCY
from rotator.timeutil import parse_duration


@click.command()
@click.argument("plan_file", metavar="PLAN.json")
@click.option("--yes", is_flag=True, help="Apply without asking (needed when not interactive).")
@click.option(
    "--concurrency",
    type=click.IntRange(1, 1024),
    default=DEFAULT_CONCURRENCY,
    show_default=True,
    help="Cap on object rewrites in flight at once (all buckets together); below it, each "
    "bucket keeps its write rate times the observed latency in flight (Little's law).",
)
@click.option(
    "--max-rps", type=click.IntRange(1, 100000), default=None, help="Cap on object rewrites per second."
)
@click.option(
    "--workers",
    type=click.IntRange(0, 64),
    default=None,
    help="Worker processes that send the object rewrites (0: all from the apply process). "
    "Default: one per CPU, up to 4, when 10,000 objects or more are left to rewrite through "
    "the real backend (the fake rewrites in its own process).",
)
@click.option(
    "--engine",
    type=click.Choice(["auto", "local", "batch"]),
    default="auto",
    show_default=True,
    help="local: rewrite from this machine; batch: Cloud Storage batch operations; "
    "auto: batch for buckets of 1,000,000 objects or more when --manifest-bucket is given.",
)
@click.option("--manifest-bucket", metavar="BUCKET", help="Where batch manifests are written.")
@click.option(
    "--watch",
    "watch_for",
    metavar="DURATION",
    help="After a disable, watch the services' logs this long (e.g. 30m) for failures caused by "
    "the key; on one, re-enable what was disabled and exit 1 (R13.4).",
)
@click.option(
    "--wait",
    "wait_for",
    default=None,
    metavar="DURATION",
    help="Poll wait steps up to DURATION instead of exiting 75 (`--wait` alone: 1h).",
)
@click.option("--force", is_flag=True, help="Apply a plan older than the age limit (docs/plan.md).")
@pass_env
def apply(
    env: Env,
    plan_file: str,
    yes: bool,
    concurrency: int,
    max_rps: int | None,
    workers: int | None,
    wait_for: str | None,
    engine: str,
    manifest_bucket: str | None,
    watch_for: str | None,
    force: bool,
) -> None:
    """Execute a saved plan, resuming from its journal.

    A done plan is not applied twice: its goal is re-checked against the world
    ("already applied", exit 0) or found drifted (stale, exit 4). Ctrl-C or SIGTERM
    stops it cleanly (exit 130/143); the same command resumes it.

    \b
    Examples:
      rotator --world demo.yaml apply plan.json --yes
      rotator --world demo.yaml apply plan.json --yes --concurrency 32
      rotator apply plan.json --yes --workers 0     # every rewrite from this process
      rotator apply plan.json --yes --watch 30m     # re-enable if anything fails (R13.4)
      rotator apply gs://ops-state/plans/rk.json --yes   # state beside the plan, in the bucket
    """
    from rotator.engine import apply_plan
    from rotator.interrupts import StopRequest, stop_on_signals
    from rotator.plandoc import load_plan
    from rotator.progress import factory_for

    doc, sha = load_plan(plan_file)
    wait = parse_duration(wait_for, field="--wait") if wait_for is not None else None
    watch = parse_duration(watch_for, field="--watch") if watch_for is not None else None
    if engine == "batch" and not manifest_bucket:
        raise BadInput(
            "--engine batch needs --manifest-bucket BUCKET (where the manifest of objects is written)"
        )
    backend = env.backend()
    if not yes:
        _confirm(doc)
    with stop_on_signals(StopRequest()) as stop:
        result = apply_plan(
            backend,
            doc,
            sha,
            plan_file,
            concurrency=concurrency,
            max_rps=max_rps,
            workers=workers,
            wait=wait,
            emit=env.say,
            progress_bars=factory_for(quiet=env.quiet, json_output=env.output == "json"),
            engine=engine,
            manifest_bucket=manifest_bucket,
            watch=watch,
            stop=stop,
            force=force,
            place=open_place(plan_file),
        )
    if result.get("already_applied"):
        text = (
            f"Apply of {plan_file}: already applied at {result['already_applied']}; re-checked "
            f"{', '.join(result['verified']) or 'nothing'} against the world; nothing done"
        )
    else:
        text = f"Apply of {plan_file}: complete"
    env.result(stamp("rotator.apply", result), text)


def _confirm(doc: dict[str, Any]) -> None:
    """Without --yes: show the plan and ask; a plan that disables or destroys versions
    whatever they protect asks for the key's id to be typed (not a mere yes)."""
    from rotator.render import plan_text
    from rotator.steps import asking_for_key_id

    if not sys.stdin.isatty():
        raise BadInput("refusing to apply without --yes in a non-interactive run; nothing was changed")
    click.echo(plan_text(doc), err=True)
    grave = asking_for_key_id(doc)
    confirm = key_id(doc["params"]["key"])
    if grave:
        typed = click.prompt(
            f"Step {', '.join(grave)} disables or destroys versions of {confirm} whatever they "
            f"protect. Type the key's id ({confirm}) to apply",
            default="",
            show_default=False,
            err=True,
        )
        if typed.strip() != confirm:
            raise BadInput(f"typed {typed.strip()!r}, not the key's id {confirm}; nothing was changed")
    elif not click.confirm("Apply this plan?", err=True):
        raise BadInput("not confirmed; nothing was changed")


@click.command()
@click.argument("plan_file", metavar="PLAN.json", required=False)
@pass_env
def status(env: Env, plan_file: str | None) -> None:
    """Show where a plan's apply is (running, interrupted, waiting, done...), from its
    journal; without PLAN, list the unfinished applies of plans in this directory.

    \b
    Examples:
      rotator status plan.json
      rotator status gs://ops-state/plans/rk.json
      rotator status                 # unfinished applies here
    """
    from rotator.journal import plan_life, plan_step_states
    from rotator.liveness import apply_alive
    from rotator.plandoc import load_plan
    from rotator.planfiles import unfinished_applies
    from rotator.render import life_line, status_text

    if plan_file is None:
        found = unfinished_applies(".")
        lines = [f"{a['playbook']} on {a['key']}: " + life_line(a["plan"], a["life"]) for a in found]
        env.result(
            stamp("rotator.applies", {"unfinished": found}),
            "\n".join(lines) if lines else "no unfinished applies in this directory",
        )
        return
    doc, _ = load_plan(plan_file)
    place = open_place(plan_file)
    events = events_of(place)
    life = plan_life(events, alive=apply_alive(place))
    steps = plan_step_states(doc["steps"], events, life)
    env.result(
        stamp(
            "rotator.status",
            {
                "plan": plan_file,
                "state": life["state"],
                "life": life,
                "complete": life["state"] == "done",
                "started": bool(events),
                "steps": steps,
            },
        ),
        status_text(plan_file, steps, life),
    )
