"""The command line: parse, call, render. Error kinds become exit codes here, once.

One module per command family (plans, applies, looks, world); each only parses its
options, calls into the library and renders the result. The global options are
written once (options.py) and accepted before and after the subcommand.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import NoReturn

import click

from rotator import __version__
from rotator import apierrors as api
from rotator.cli.applies import apply, status
from rotator.cli.env import Env
from rotator.cli.failures import credentials_refused, emit_error, output_asked
from rotator.cli.leaving import leave
from rotator.cli.looks import inventory, playbooks_cmd, report, rules_cmd
from rotator.cli.options import accept_global_options, global_options
from rotator.cli.plans import plan, show
from rotator.cli.world import completion, world
from rotator.errors import BadInput, Failure, RotatorError

EPILOG_EXIT = (
    "Exit codes: 0 done, 1 failure, 2 bad input, 3 refused by a guard, 4 stale plan, 75 waiting, "
    "130/143 interrupted (SIGINT/SIGTERM; run the same apply to resume)."
)

# The global options as click parsed them, so errors are rendered the way the user asked
# (an error before parsing falls back to a plain look at argv).
_PARSED: list[Env] = []


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}, epilog=EPILOG_EXIT
)
@global_options
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


for _command in (playbooks_cmd, rules_cmd, inventory, report, plan, apply, status, show, world, completion):
    cli.add_command(_command)
accept_global_options(cli)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    # `--wait[=DURATION]` (SPEC): a bare --wait means one hour. Expanded here because
    # click mis-parses an optional value that starts with '-' (--wait=-1h).
    args = ["--wait=1h" if a == "--wait" else a for a in args]
    _PARSED.clear()

    def output() -> str:
        return _PARSED[-1].output if _PARSED else output_asked(args)

    try:
        cli.main(args=args, prog_name="rotator", standalone_mode=False)
    except RotatorError as e:
        emit_error(e, output())
        sys.exit(e.exit_code)
    except click.exceptions.Abort:  # Ctrl-C at a prompt: nothing was started
        emit_error(Failure("interrupted at the prompt; nothing was changed"), output())
        sys.exit(130)
    except click.UsageError as e:
        hint = f" (try `{e.ctx.command_path} --help`)" if e.ctx else ""
        emit_error(BadInput(e.format_message() + hint), output())
        sys.exit(2)
    except click.ClickException as e:
        emit_error(BadInput(e.format_message()), output())
        sys.exit(2)
    except api.ApiError as e:
        emit_error(Failure(str(e), resource=e.resource, rule=e.rule), output())
        sys.exit(1)
    except KeyboardInterrupt:  # outside an apply (which turns it into Interrupted)
        emit_error(Failure("interrupted by SIGINT; nothing was being changed"), output())
        sys.exit(130)
    except Exception as e:  # a bug: one line, the traceback only with -v
        if type(e).__name__ == "RefreshError":  # google.auth: the credentials were refused
            emit_error(credentials_refused(e), output())
            sys.exit(2)
        if _PARSED[-1].verbose if _PARSED else any(a.startswith("-v") for a in args):
            traceback.print_exc()
        emit_error(Failure(f"internal error: {type(e).__name__}: {e} (run with -v for details)"), output())
        sys.exit(1)
    finally:
        # Whatever the command did, its backend's connections end with it (a script or a
        # test that runs many commands in one process must not pile them up).
        for env in _PARSED:
            env.close()


def run() -> NoReturn:
    """The program (`rotator`, `python -m rotator`): `main`, then the end of the process
    without the interpreter's teardown (rotator.cli.leaving). Callers that go on after
    the command (tests, scripts) call `main`."""
    try:
        main()
    except SystemExit as e:
        leave(e.code)
    leave(0)
