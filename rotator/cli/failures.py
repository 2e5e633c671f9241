"""How an error reaches the user: one line on stderr (coloured by kind unless NO_COLOR),
and with `--output json` also one JSON document on stdout."""

from __future__ import annotations

import json
import os

import click

from rotator.errors import BadInput, RotatorError
from rotator.output_schemas import stamp


def emit_error(err: RotatorError, output: str) -> None:
    if output == "json":
        click.echo(json.dumps(stamp("rotator.error", {"error": err.to_json()}), indent=2))
    colours = {"error": "red", "refused": "red", "stale": "yellow", "waiting": "cyan"}
    no_colour = bool(os.environ.get("NO_COLOR"))
    click.echo(
        err.line() if no_colour else click.style(err.line(), fg=colours.get(err.prefix, "red")), err=True
    )


def output_asked(args: list[str]) -> str:
    """The output format `args` ask for, when the error came before click parsed them."""
    for i, a in enumerate(args):
        if a in ("--output=json", "-ojson") or (a in ("--output", "-o") and args[i + 1 : i + 2] == ["json"]):
            return "json"
    return "text"


def credentials_refused(error: Exception) -> BadInput:
    """google.auth refused the credentials (a RefreshError): bad input naming whose."""
    return BadInput(
        f"Google Cloud refused the credentials of {_credentials_account()}: "
        f"{str(error).splitlines()[0][:200]}; "
        "run `gcloud auth application-default login` or check "
        "GOOGLE_APPLICATION_CREDENTIALS",
        resource="credentials",
    )


def _credentials_account() -> str:
    """The account of GOOGLE_APPLICATION_CREDENTIALS (its client_email; never the key)."""
    path = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    try:
        with open(path or "", encoding="utf-8") as fh:
            return str(json.load(fh).get("client_email") or "the Application Default Credentials")
    except (OSError, ValueError, AttributeError):
        return "the Application Default Credentials"
