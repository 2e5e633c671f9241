"""What every command gets: the global options as parsed (the backend they choose is made
on first use), and how a result is printed (stdout) apart from messages (stderr)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import click

from rotator.backends.base import Backend
from rotator.backends.opening import open_backend, projects_to_inspect
from rotator.errors import BadInput
from rotator.render import colour
from rotator.services import SERVICES

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
    _backend: Backend | None = field(default=None, repr=False)

    def projects(self) -> tuple[str, ...]:
        """Every project to inspect, the backend's first, each once."""
        return projects_to_inspect(self.backend(), self.more_projects)

    def backend(self) -> Backend:
        if self._backend is None:
            self._backend = open_backend(self.world, self.project, on_retry=self._retried)
        return self._backend

    def close(self) -> None:
        """Release what the backend holds open (the fake's state database)."""
        close = getattr(self._backend, "close", None)
        if close is not None:
            close()
        self._backend = None

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


pass_env = click.make_pass_decorator(Env)


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
