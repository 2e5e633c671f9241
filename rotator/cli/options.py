"""The global options, written once. Each is accepted before the subcommand (on the
group) and after it: `rotator plan rotate-key --key K --output json` works as
`rotator --output json plan ...` does (gcloud, kubectl and terraform users type flags
last). After the subcommand an option writes into the same Env the group made."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import click

from rotator.cli.env import OUTPUT_FORMATS, Env
from rotator.errors import BadInput


@dataclass(frozen=True)
class GlobalOption:
    decls: tuple[str, ...]
    help: str  # before the subcommand, in `rotator --help`
    help_after: str  # after it, in `rotator COMMAND --help`
    shared: dict[str, Any] = field(default_factory=dict)  # metavar, type, multiple, count...
    # Before the subcommand only: after it, "not given" must stay distinguishable, so the
    # value given before the subcommand (or this default) stands.
    default: dict[str, Any] = field(default_factory=dict)

    @property
    def attr(self) -> str:
        """The Env field the option sets."""
        return self.decls[-1].lstrip("-")

    def before_subcommand(self, f: Callable[..., Any]) -> Callable[..., Any]:
        return click.option(*self.decls, help=self.help, **self.shared, **self.default)(f)

    def after_subcommand(self) -> click.Option:
        return click.Option(
            list(self.decls),
            help=self.help_after,
            expose_value=False,
            callback=_into_env(self.attr),
            **self.shared,
        )


GLOBAL_OPTIONS = (
    GlobalOption(
        ("--world",),
        "Use the fake backend with its state in FILE.",
        "As before the subcommand: the fake backend with its state in FILE.",
        {"metavar": "FILE"},
    ),
    GlobalOption(
        ("--project",),
        "Project (default: from ADC or GOOGLE_CLOUD_PROJECT); again to inspect more projects.",
        "As before the subcommand: the project.",
        {"metavar": "ID", "multiple": True},
    ),
    GlobalOption(
        ("-o", "--output"),
        "json: one JSON document on stdout; messages go to stderr. csv: report only.",
        "As before the subcommand: text, json, markdown (csv: report only).",
        {"type": click.Choice(OUTPUT_FORMATS)},
        {"default": "text", "show_default": True},
    ),
    GlobalOption(
        ("-v", "--verbose"),
        "More detail; tracebacks on internal errors.",
        "More detail.",
        {"count": True},
    ),
    GlobalOption(
        ("-q", "--quiet"),
        "No progress or messages on stderr.",
        "No progress or messages on stderr.",
        {"is_flag": True},
    ),
)


def global_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The group's decorator: every global option, in the order of GLOBAL_OPTIONS."""
    for option in reversed(GLOBAL_OPTIONS):
        f = option.before_subcommand(f)
    return f


def _into_env(attr: str) -> Callable[[click.Context, click.Parameter, Any], None]:
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


def accept_global_options(group: click.Group) -> None:
    """Every command of `group` (and of its subgroups) also takes the global options, but
    not one it defines itself (report's own --project)."""
    for command in group.commands.values():
        if isinstance(command, click.Group):
            accept_global_options(command)
            continue
        taken = {o for p in command.params for o in getattr(p, "opts", [])}
        command.params += [o.after_subcommand() for o in GLOBAL_OPTIONS if not taken & set(o.decls)]
        _refuse_csv(command)
