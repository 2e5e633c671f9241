"""`rotator world` (the fake backend's world: dump, advance its clock, reset) and
`rotator completion`."""

from __future__ import annotations

import click
import yaml

from rotator.cli.env import Env, pass_env
from rotator.errors import BadInput
from rotator.output_schemas import stamp
from rotator.timeutil import parse_duration


@click.group()
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


@click.command()
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
    root = click.get_current_context().find_root().command
    click.echo(cls(root, {}, "rotator", "_ROTATOR_COMPLETE").source())
