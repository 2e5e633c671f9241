"""The command line: parse, call, render. Error kinds become exit codes here, once."""

from __future__ import annotations

import json
import os
import sys
import traceback
from dataclasses import dataclass, field
from typing import Any

import click
import yaml

from rotator import __version__, playbooks
from rotator import apierrors as api
from rotator.backends.base import Backend
from rotator.errors import BadInput, Failure, RotatorError
from rotator.journal import events_of, step_states
from rotator.names import parse_key
from rotator.output_schemas import stamp
from rotator.places import open_place, refuse_state_under_plan_key
from rotator.ratelimit import DEFAULT_CONCURRENCY
from rotator.render import colour
from rotator.services import SERVICES
from rotator.timeutil import parse_duration

EPILOG_EXIT = (
    "Exit codes: 0 done, 1 failure, 2 bad input, 3 refused by a guard, 4 stale plan, 75 waiting, "
    "130/143 interrupted (SIGINT/SIGTERM; run the same apply to resume)."
)
OUTPUT_FORMATS = ("text", "json", "markdown", "csv")  # csv: report only


@dataclass
class Env:
    world: str | None
    project: str | None
    output: str
    verbose: int
    quiet: bool
    # `--project` given more than once: the first is the project rotator works in, these
    # are inspected too (what else uses a key), and `report` lists their keys.
    more_projects: tuple[str, ...] = ()
    _backend: Any = field(default=None, repr=False)

    def projects(self) -> tuple[str, ...]:
        """Every project to inspect, the backend's first, each once; an unknown one is
        bad input (check_project)."""
        backend = self.backend()
        chosen = tuple(dict.fromkeys((backend.project, *self.more_projects)))
        for project in chosen:
            check_project(backend, project)
        return chosen

    def backend(self) -> Backend:
        if self._backend is None:
            if self.world:
                from rotator.backends.fake import open_world

                self._backend = open_world(self.world, on_retry=self._retried)
                if self.project and self.project != self._backend.project:
                    raise BadInput(
                        f"--project {self.project} does not match the world's "
                        f"project {self._backend.project}",
                        resource=self.world,
                    )
            else:
                from rotator.backends.gcp import GcpBackend
                from rotator.backends.gcp.retry import RetryPolicy

                self._backend = GcpBackend(self.project, retry=RetryPolicy(on_retry=self._retried))
        backend: Backend = self._backend
        return backend

    def fake(self) -> Any:
        if not self.world:
            raise BadInput("world commands need --world FILE (the fake backend only)")
        return self.backend()

    def say(self, message: str) -> None:
        """Progress and messages: stderr, never stdout (stdout is for the result)."""
        if not self.quiet:
            click.echo(message, err=True)

    def _retried(self, error: BaseException, attempt: int) -> None:
        self.debug(f"retrying after attempt {attempt}: {error}")

    def debug(self, message: str) -> None:
        if self.verbose and not self.quiet:
            click.echo(message, err=True)

    def result(self, document: Any, text: str, markdown: str | None = None, csv: str | None = None) -> None:
        if self.output == "json":
            click.echo(json.dumps(document, indent=2, default=str))
        elif self.output == "markdown" and markdown is not None:
            click.echo(markdown)
        elif self.output == "csv" and csv is not None:
            click.echo(csv)
        else:
            click.echo(colour(text))


def check_project(backend: Backend, project: str) -> None:
    """A project rotator is asked to look into must exist, or it would be reported as one
    with nothing in it: bad input naming it. The fake knows the projects its world names;
    Google answers the project's Cloud Storage service agent only for a project the caller
    can see (404 or 403 otherwise, which are the same to a caller)."""
    if project in (backend.project, backend.project_number):
        return
    world_projects = getattr(backend, "projects", None)  # the fake: those its world names
    if world_projects is not None:
        known: set[str] = world_projects()
        if project not in known:
            raise BadInput(
                f"--project {project}: project {project} not found (the world names "
                f"{', '.join(sorted(known))})",
                resource=f"projects/{project}",
            )
        return
    try:
        backend.for_project(project)
    except (api.NotFound, api.PermissionDenied) as e:
        raise BadInput(
            f"--project {project}: project {project} not found or not visible to the caller ({e})",
            resource=f"projects/{project}",
        ) from None


pass_env = click.make_pass_decorator(Env)
# The global options as click parsed them, so errors are rendered the way the user asked
# (an error before parsing falls back to a plain look at argv).
_PARSED: list[Env] = []


def services_option(f: Any) -> Any:
    return click.option(
        "--services",
        default=",".join(SERVICES),
        show_default=True,
        help="Comma-separated services to look at: " + ",".join(SERVICES),
    )(f)


def parse_services(value: str) -> list[str]:
    items = [s.strip() for s in value.split(",") if s.strip()]
    bad = [s for s in items if s not in SERVICES]
    if bad or not items:
        raise BadInput(
            f"--services: unknown service {bad[0] if bad else value!r}; choose from {','.join(SERVICES)}"
        )
    return items


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}, epilog=EPILOG_EXIT
)
@click.option("--world", metavar="FILE", help="Use the fake backend with its state in FILE.")
@click.option(
    "--project",
    metavar="ID",
    multiple=True,
    help="Project (default: from ADC or GOOGLE_CLOUD_PROJECT); again to inspect more projects.",
)
@click.option(
    "-o",
    "--output",
    type=click.Choice(OUTPUT_FORMATS),
    default="text",
    show_default=True,
    help="json: one JSON document on stdout; messages go to stderr. csv: report only.",
)
@click.option("-v", "--verbose", count=True, help="More detail; tracebacks on internal errors.")
@click.option("-q", "--quiet", is_flag=True, help="No progress or messages on stderr.")
@click.version_option(__version__, prog_name="rotator")
@click.pass_context
def cli(
    ctx: click.Context,
    world: str | None,
    project: tuple[str, ...],
    output: str,
    verbose: int,
    quiet: bool,
) -> None:
    """Rotate and replace Cloud KMS CMEK keys without making data unreadable.

    \b
    Examples:
      rotator --world demo.yaml inventory projects/demo/locations/us-east1/keyRings/ring/cryptoKeys/app
      rotator --world demo.yaml plan rotate-key --key KEY --out plan.json
      rotator --world demo.yaml apply plan.json --yes
    """
    if os.environ.get("NO_COLOR"):  # https://no-color.org: any value turns colour off
        ctx.color = False
    first = project[0] if project else os.environ.get("GOOGLE_CLOUD_PROJECT")
    ctx.obj = Env(world, first, output, verbose, quiet, more_projects=tuple(project[1:]))
    _PARSED.append(ctx.obj)
    from rotator import places

    places.use_backend(ctx.obj.backend)  # gs:// plans are reached through it (made on first use)


@cli.command("playbooks")
@click.argument("name", required=False)
@pass_env
def playbooks_cmd(env: Env, name: str | None) -> None:
    """List the playbooks, or explain one (its parameters and steps).

    \b
    Examples:
      rotator playbooks
      rotator playbooks replace-key
    """
    from rotator.steps import REGISTRY

    names = [name] if name else playbooks.available()
    docs: list[dict[str, Any]] = []
    for n in names:
        pb = playbooks.load(n)
        docs.append(
            {
                "name": pb.name,
                "summary": pb.summary,
                "description": pb.description,
                "parameters": {
                    p.name: {"type": p.type, "required": p.required, "help": p.help}
                    for p in pb.parameters.values()
                },
                "steps": [
                    {
                        "id": s.id,
                        "kind": s.kind,
                        "summary": REGISTRY[s.kind].summary,
                        "rules": REGISTRY[s.kind].rules,
                        "when": s.when,
                    }
                    for s in pb.steps
                ],
            }
        )
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
        if name:
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
    env.result(stamp("rotator.playbooks", {"playbooks": docs}), "\n".join(lines))


@cli.command("rules")
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
    from rotator.steps import REGISTRY

    chosen = [rules.lookup(rule)] if rule is not None else list(rules.RULES)
    kinds_of = {n: {s.kind for s in playbooks.load(n).steps} for n in playbooks.available()}
    docs = []
    for r in chosen:
        # the step kinds that cite the rule -> the playbooks that run them
        cited_by = {
            kind: [n for n, kinds in kinds_of.items() if kind in kinds]
            for kind, step in REGISTRY.items()
            if r.id in step.rules
        }
        docs.append({**r.to_json(), "cited_by": cited_by})
    text = rules.explain_text(chosen[0], docs[0]["cited_by"]) if rule is not None else rules.list_text(chosen)
    env.result(stamp("rotator.rules", {"rules": docs}), text, rules.markdown(chosen))


@cli.command()
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


@cli.command()
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
    chosen = list(dict.fromkeys(projects)) or list(env.projects())
    for project in chosen:
        check_project(backend, project)
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


@cli.command()
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
    from rotator.plan import build_plan, dumps, resolve_params
    from rotator.planfiles import check_out, move_old_journal, warn_unfinished
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
    if out:
        refuse_state_under_plan_key(open_place(out), doc)
    for warning in warn_unfinished(params["key"], out):
        env.say(warning)
    if out:
        moved = move_old_journal(out)
        if moved:
            env.say(f"the journal of the plan {out} replaces was moved to {moved}")
        open_place(out).write_plan(dumps(doc).encode("utf-8"))
        env.say(
            f"plan written to {out}; apply it with: rotator "
            f"{'--world ' + env.world + ' ' if env.world else ''}apply {out}"
        )
    env.result(doc, plan_text(doc), plan_markdown(doc, out))


@cli.command()
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
      rotator apply plan.json --yes --watch 30m     # re-enable if anything fails (R13.4)
      rotator apply gs://ops-state/plans/rk.json --yes   # state beside the plan, in the bucket
    """
    from rotator.engine import apply_plan
    from rotator.interrupts import StopRequest, stop_on_signals
    from rotator.plan import load_plan
    from rotator.progress import factory_for
    from rotator.render import plan_text
    from rotator.steps import REGISTRY, PlannedStep

    doc, sha = load_plan(plan_file)
    wait = parse_duration(wait_for, field="--wait") if wait_for is not None else None
    watch = parse_duration(watch_for, field="--watch") if watch_for is not None else None
    if engine == "batch" and not manifest_bucket:
        raise BadInput(
            "--engine batch needs --manifest-bucket BUCKET (where the manifest of objects is written)"
        )
    backend = env.backend()
    if not yes:
        if not sys.stdin.isatty():
            raise BadInput("refusing to apply without --yes in a non-interactive run; nothing was changed")
        click.echo(plan_text(doc), err=True)
        grave = [
            s["id"] for s in doc["steps"] if REGISTRY[s["kind"]].asks_for_key_id(PlannedStep.from_json(s))
        ]
        key_id = doc["params"]["key"].rsplit("/", 1)[-1]
        if grave:
            typed = click.prompt(
                f"Step {', '.join(grave)} disables or destroys versions of {key_id} whatever they "
                f"protect. Type the key's id ({key_id}) to apply",
                default="",
                show_default=False,
                err=True,
            )
            if typed.strip() != key_id:
                raise BadInput(f"typed {typed.strip()!r}, not the key's id {key_id}; nothing was changed")
        elif not click.confirm("Apply this plan?", err=True):
            raise BadInput("not confirmed; nothing was changed")
    with stop_on_signals(StopRequest()) as stop:
        result = apply_plan(
            backend,
            doc,
            sha,
            plan_file,
            concurrency=concurrency,
            max_rps=max_rps,
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


@cli.command()
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
    from rotator.journal import APPLYING, plan_life
    from rotator.plan import load_plan
    from rotator.planfiles import place_alive, unfinished_applies
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
    life = plan_life(events, alive=place_alive(place))
    states = step_states(events)
    steps = []
    for s in doc["steps"]:
        state = dict(states.get(s["id"], {"state": "pending"}))
        if state["state"] == "running" and life["state"] != APPLYING:
            state["state"] = "stopped"  # its process is gone: the next apply resumes it
        steps.append({"id": s["id"], "kind": s["kind"], **state})
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


@cli.command()
@click.argument("plan_file", metavar="PLAN")
@pass_env
def show(env: Env, plan_file: str) -> None:
    """Render a saved plan offline (text, json or markdown), after checking its digest.

    \b
    Examples:
      rotator show plan.json
      rotator show plan.json --output markdown > ticket.md
    """
    from rotator.plan import load_plan
    from rotator.render import plan_markdown, plan_text

    doc, _ = load_plan(plan_file)
    env.result(doc, plan_text(doc), plan_markdown(doc, plan_file))


@cli.group()
def world() -> None:
    """The fake backend's world (needs --world FILE).

    \b
    Examples:
      rotator --world demo.yaml world dump
      rotator --world demo.yaml world advance 6h
      rotator --world demo.yaml world reset
    """


@world.command("dump")
@pass_env
def world_dump(env: Env) -> None:
    """Print the world, in the world file's schema.

    \b
    Example:
      rotator --world demo.yaml world dump
    """
    doc = env.fake().dump()
    env.result(doc, yaml.safe_dump(doc, sort_keys=False, width=120).rstrip())


@world.command("advance")
@click.argument("duration")
@pass_env
def world_advance(env: Env, duration: str) -> None:
    """Move the fake clock by DURATION (e.g. 2h, 30m, 7d).

    \b
    Example:
      rotator --world demo.yaml world advance 31d
    """
    delta = parse_duration(duration, field="DURATION")
    from rotator.timeutil import format_time

    now = env.fake().advance(delta)
    env.result(stamp("rotator.clock", {"now": format_time(now)}), f"now {format_time(now)}")


@world.command("reset")
@pass_env
def world_reset(env: Env) -> None:
    """Discard the world's state and load the world file again.

    \b
    Example:
      rotator --world demo.yaml world reset
    """
    from rotator.backends.fake import reset_world

    if not env.world:
        raise BadInput("world reset needs --world FILE")
    backend = reset_world(env.world)
    env.result(
        stamp("rotator.clock", {"world": env.world, "now": backend.store.get_meta("now")}),
        f"{env.world}: state reloaded from the file",
    )


@cli.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL.

    \b
    Examples:
      eval "$(rotator completion bash)"        # in ~/.bashrc
      rotator completion fish > ~/.config/fish/completions/rotator.fish
    """
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    if cls is None:  # pragma: no cover - click ships all three
        raise BadInput(f"no completion for {shell}")
    click.echo(cls(cli, {}, "rotator", "_ROTATOR_COMPLETE").source())


# -- global options after the subcommand ---------------------------------------------------
# `rotator plan rotate-key --key K --output json` works as `rotator --output json plan ...`
# does (gcloud, kubectl and terraform users type flags last). Each command gets a copy
# of the global options that writes into the same Env the group made.
def _into_env(attr: str) -> Any:
    def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> None:
        if value in (None, False, 0, ()):
            return  # not given here: the value given before the subcommand stands
        env = ctx.find_object(Env)
        if env is None:
            return
        if attr == "verbose":
            env.verbose += value
        elif attr == "project" and env._backend is None:
            env.project, env.more_projects = value[0], tuple(value[1:])
        else:
            setattr(env, attr, value)

    return callback


def _global_options() -> list[click.Option]:
    return [
        click.Option(
            ["--world"],
            metavar="FILE",
            expose_value=False,
            callback=_into_env("world"),
            help="As before the subcommand: the fake backend with its state in FILE.",
        ),
        click.Option(
            ["--project"],
            metavar="ID",
            multiple=True,
            expose_value=False,
            callback=_into_env("project"),
            help="As before the subcommand: the project.",
        ),
        click.Option(
            ["-o", "--output"],
            type=click.Choice(OUTPUT_FORMATS),
            expose_value=False,
            callback=_into_env("output"),
            help="As before the subcommand: text, json, markdown (csv: report only).",
        ),
        click.Option(
            ["-v", "--verbose"],
            count=True,
            expose_value=False,
            callback=_into_env("verbose"),
            help="More detail.",
        ),
        click.Option(
            ["-q", "--quiet"],
            is_flag=True,
            expose_value=False,
            callback=_into_env("quiet"),
            help="No progress or messages on stderr.",
        ),
    ]


# The commands that render csv; any other refuses `--output csv` before it does anything.
CSV_COMMANDS = ("report",)


def _refuse_csv(command: click.Command) -> None:
    callback = command.callback
    if callback is None or command.name in CSV_COMMANDS:
        return

    def checked(*args: Any, **kwargs: Any) -> Any:
        env = click.get_current_context().find_object(Env)
        if env is not None and env.output == "csv":
            raise BadInput(
                f"--output csv is for report; {command.name} prints text, json or markdown; nothing was done",
                resource="--output",
            )
        return callback(*args, **kwargs)

    command.callback = checked


def _accept_global_options(group: click.Group) -> None:
    for command in group.commands.values():
        if isinstance(command, click.Group):
            _accept_global_options(command)
            continue
        taken = {o for p in command.params for o in getattr(p, "opts", [])}
        command.params += [o for o in _global_options() if not taken & set(o.opts)]
        _refuse_csv(command)


_accept_global_options(cli)


def _emit_error(err: RotatorError, output: str) -> None:
    if output == "json":
        click.echo(json.dumps(stamp("rotator.error", {"error": err.to_json()}), indent=2))
    colours = {"error": "red", "refused": "red", "stale": "yellow", "waiting": "cyan"}
    no_colour = bool(os.environ.get("NO_COLOR"))
    click.echo(
        err.line() if no_colour else click.style(err.line(), fg=colours.get(err.prefix, "red")), err=True
    )


def _credentials_account() -> str:
    """The account of GOOGLE_APPLICATION_CREDENTIALS (its client_email; never the key)."""
    path = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    try:
        with open(path or "", encoding="utf-8") as fh:
            return str(json.load(fh).get("client_email") or "the Application Default Credentials")
    except (OSError, ValueError, AttributeError):
        return "the Application Default Credentials"


def _output(args: list[str]) -> str:
    if _PARSED:
        return _PARSED[-1].output
    for i, a in enumerate(args):  # the error came before click parsed the options
        if a in ("--output=json", "-ojson") or (a in ("--output", "-o") and args[i + 1 : i + 2] == ["json"]):
            return "json"
    return "text"


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    # `--wait[=DURATION]` (SPEC): a bare --wait means one hour. Expanded here because
    # click mis-parses an optional value that starts with '-' (--wait=-1h).
    args = ["--wait=1h" if a == "--wait" else a for a in args]
    _PARSED.clear()
    try:
        cli.main(args=args, prog_name="rotator", standalone_mode=False)
    except RotatorError as e:
        _emit_error(e, _output(args))
        sys.exit(e.exit_code)
    except click.exceptions.Abort:  # Ctrl-C at a prompt: nothing was started
        _emit_error(Failure("interrupted at the prompt; nothing was changed"), _output(args))
        sys.exit(130)
    except click.UsageError as e:
        hint = f" (try `{e.ctx.command_path} --help`)" if e.ctx else ""
        _emit_error(BadInput(e.format_message() + hint), _output(args))
        sys.exit(2)
    except click.ClickException as e:
        _emit_error(BadInput(e.format_message()), _output(args))
        sys.exit(2)
    except api.ApiError as e:
        _emit_error(Failure(str(e), resource=e.resource, rule=e.rule), _output(args))
        sys.exit(1)
    except KeyboardInterrupt:  # outside an apply (which turns it into Interrupted)
        _emit_error(Failure("interrupted by SIGINT; nothing was being changed"), _output(args))
        sys.exit(130)
    except Exception as e:  # a bug: one line, the traceback only with -v
        if type(e).__name__ == "RefreshError":  # google.auth: the credentials were refused
            _emit_error(
                BadInput(
                    f"Google Cloud refused the credentials of {_credentials_account()}: "
                    f"{str(e).splitlines()[0][:200]}; "
                    "run `gcloud auth application-default login` or check "
                    "GOOGLE_APPLICATION_CREDENTIALS",
                    resource="credentials",
                ),
                _output(args),
            )
            sys.exit(2)
        if _PARSED[-1].verbose if _PARSED else any(a.startswith("-v") for a in args):
            traceback.print_exc()
        _emit_error(
            Failure(f"internal error: {type(e).__name__}: {e} (run with -v for details)"), _output(args)
        )
        sys.exit(1)
