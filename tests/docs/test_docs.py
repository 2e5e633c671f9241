"""Everything a user can type is documented: every command and option in README.md,
every playbook and step kind, and an example in every --help.

Backends: none (the documents and the commands' --help)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from rotator import playbooks
from rotator.cli import cli
from rotator.steps import REGISTRY

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def commands(
    group: click.Group = cli, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, group
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))
        else:
            yield (*path, name), command


ALL = list(commands())


@pytest.mark.parametrize("path", [p for p, _ in ALL if p], ids=lambda p: " ".join(p))
def test_every_command_is_in_the_readme(path: tuple[str, ...]) -> None:
    import re

    # `rotator plan`, `rotator [GLOBAL] plan`, `rotator --world W world dump` ...
    pattern = rf"rotator (\[GLOBAL\] |--world \S+ )?{re.escape(' '.join(path))}\b"
    assert re.search(pattern, README), path


@pytest.mark.parametrize(
    "option",
    sorted({o for _, c in ALL for p in c.params for o in p.opts if o.startswith("--") and o != "--help"}),
)
def test_every_option_is_in_the_readme(option: str) -> None:
    assert option in README


@pytest.mark.parametrize("name", playbooks.available())
def test_every_playbook_is_explained_in_the_readme(name: str) -> None:
    assert f"`{name}`" in README
    for step in playbooks.load(name).steps:
        assert step.kind in README, f"{name}: step kind {step.kind} is not in the README"


def test_every_step_kind_is_used_by_a_playbook() -> None:
    used = {s.kind for n in playbooks.available() for s in playbooks.load(n).steps}
    assert used == set(REGISTRY)


@pytest.mark.parametrize("path", [p for p, _ in ALL], ids=lambda p: " ".join(p) or "rotator")
def test_every_help_has_an_example(path: tuple[str, ...]) -> None:
    r = CliRunner().invoke(cli, [*path, "--help"])
    assert r.exit_code == 0
    assert "Example" in r.output


def test_the_plan_digest_is_documented_as_unkeyed_not_a_signature() -> None:
    """The digest catches edits and corruption; docs/plan.md must not let a reader take it
    for a signature against someone who can rewrite the plan."""
    text = " ".join((Path(__file__).resolve().parents[2] / "docs" / "plan.md").read_text().split())
    assert "unkeyed SHA-256" in text
    assert "catches hand edits and corruption" in text
    assert "not a malicious editor" in text and "not a signature" in text
