"""Running rotator in tests: the command line in process (`run_cli`, `WorldCli`), the
same runs over the wire with ROTATOR_TEST_BACKEND=gcp, and the exit-code contract
(`assert_failed`). The worlds they run against are built in tests/worlds.py.

    from helpers import WorldCli, assert_failed, run_cli
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from worlds import write_world


def resealed(doc: dict[str, Any]) -> dict[str, Any]:
    """A plan document with its digest recomputed: what a plan with these values would
    look like had `rotator plan` written it (for tests of checks behind the digest)."""
    from rotator.plandoc import seal

    return seal(doc)


# -- the command line, in process ----------------------------------------------------------


class Result:
    """What one `rotator` run produced: exit code, stdout and stderr (kept apart)."""

    def __init__(self, code: int, stdout: str, stderr: str):
        self.code = code
        self.stdout = stdout
        self.stderr = stderr

    @property
    def last_err(self) -> str:
        """The last stderr line (progress lines come before the final message)."""
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        return lines[-1] if lines else ""

    def json(self) -> Any:
        import json

        return json.loads(self.stdout)

    def __repr__(self) -> str:
        return f"Result(code={self.code}, stdout={self.stdout[-2000:]!r}, stderr={self.stderr[-2000:]!r})"


class _Terminal(io.StringIO):
    """Typed input that says it is a terminal (an operator at the keyboard)."""

    def isatty(self) -> bool:
        return True


def run_cli(args: list[str], cwd: Path | str | None = None, stdin: str = "", tty: bool = False) -> Result:
    """Run `rotator ARGS` in this process through rotator.cli.main, as a script would:
    stdin is not a terminal (`stdin` text; `tty=True`: an operator typing it), stdout and
    stderr are captured separately, and SystemExit becomes the exit code (0 when main
    returns)."""
    import contextlib
    import io
    import os
    import sys

    from rotator.cli import main

    out, err = io.StringIO(), io.StringIO()
    old_cwd = os.getcwd()
    old_stdin = sys.stdin
    old_env = dict(os.environ)
    code = 0
    try:
        if cwd is not None:
            os.chdir(cwd)
        args = _over_the_wire(list(args))
        sys.stdin = _Terminal(stdin) if tty else io.StringIO(stdin)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main([str(a) for a in args])
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.stdin = old_stdin
        os.chdir(old_cwd)
        os.environ.clear()
        os.environ.update(old_env)
    return Result(code, out.getvalue(), err.getvalue())


# -- the same CLI tests through the gcp backend over the wire ----------------------------
# With ROTATOR_TEST_BACKEND=gcp, run_cli drops `--world W` from every command except
# `world ...` and points the gcp backend at tests/wire servers serving W's state, so the
# scenario suites run through the official clients (tests/wire/test_suites_over_the_wire.py).
_SERVERS: dict[str, tuple[int, object, dict[str, str]]] = {}


def wire_mode() -> bool:
    import os

    return os.environ.get("ROTATOR_TEST_BACKEND") == "gcp"


def _over_the_wire(args: list[str]) -> list[str]:
    import os

    if not wire_mode() or "--world" not in args:
        return args
    i = args.index("--world")
    world = args[i + 1]
    rest = args[:i] + args[i + 2 :]
    command, skip = "", False
    for a in rest:  # the first word that is neither an option nor an option's value
        if skip:
            skip = False
        elif a in ("--output", "--project"):
            skip = True
        elif not a.startswith("-"):
            command = a
            break
    if command in ("world", ""):
        return args
    env = _serve(os.path.abspath(world))
    if env is None:  # a world the fake refuses: the error is the fake's, as it should be
        return args
    os.environ.update(env)
    return rest


def _serve(world: str) -> dict[str, str] | None:
    import atexit
    import os
    import sys
    import tempfile
    from contextlib import ExitStack

    from rotator.errors import RotatorError

    wire = str(Path(__file__).resolve().parent / "wire")
    if wire not in sys.path:
        sys.path.insert(0, wire)
    from harness import serve_world_file  # type: ignore[import-not-found]

    try:
        from rotator.backends.fake import open_world

        open_world(world).store.close()  # validates, creates the state if needed
    except RotatorError:
        return None
    state = os.stat(world + ".state").st_ino
    cached = _SERVERS.get(world)
    if cached and cached[0] == state:
        return cached[2]
    if cached:
        cached[1].close()  # type: ignore[attr-defined]
    stack = ExitStack()
    env, _storage, _grpc = stack.enter_context(serve_world_file(Path(world), Path(tempfile.mkdtemp())))
    _SERVERS[world] = (state, stack, env)
    atexit.register(stack.close)
    return env


ERROR_PREFIXES = ("error:", "refused:", "stale:", "waiting:")


def assert_failed(r: Result, code: int, prefix: str, *needles: str) -> str:
    """A non-zero exit as SPEC says: exit `code`, exactly one stderr line starting with
    error:/refused:/stale:/waiting:, and it is the last one, starts with `prefix` and
    contains every needle (a rule needle like "R3" as a whole rule). Returns that line."""
    assert r.code == code, r
    final = [line for line in r.stderr.splitlines() if line.startswith(ERROR_PREFIXES)]
    assert len(final) == 1, r
    assert r.last_err == final[0], r
    assert r.last_err.startswith(prefix + ":"), r
    import re

    for needle in needles:
        if re.fullmatch(r"R\d+(\.\d+)?", needle):  # a rule: R3 must not match R31 or R13
            found = re.search(rf"(?<![\w.]){re.escape(needle)}(?!\d)", r.last_err)
        else:
            found = needle in r.last_err
        assert found, (needle, r.last_err)
    return r.last_err


class WorldCli:
    """A world file in `directory` and `rotator --world FILE ...` runs against it
    (in `directory`, so plan files may be relative names)."""

    def __init__(self, directory: Path, doc: dict[str, Any] | None = None, name: str = "world.yaml"):
        self.dir = Path(directory)
        self.path = self.dir / name
        if doc is not None:
            write_world(self.path, doc)

    def __call__(self, *args: str) -> Result:
        return run_cli(["--world", self.path.name, *args], cwd=self.dir)

    def json(self, *args: str) -> Result:
        return self("--output", "json", *args)

    def dump(self) -> dict[str, Any]:
        r = self.json("world", "dump")
        assert r.code == 0, r
        doc: dict[str, Any] = r.json()
        return doc

    def plan(self, playbook: str, key_name: str, *extra: str, out: str = "plan.json") -> Result:
        return self("plan", playbook, "--key", key_name, *extra, "--out", out)

    def plan_json(self, playbook: str, key_name: str, *extra: str, out: str = "plan.json") -> dict[str, Any]:
        r = self.json("plan", playbook, "--key", key_name, *extra, "--out", out)
        assert r.code == 0, r
        doc: dict[str, Any] = r.json()
        return doc

    def apply(self, plan: str = "plan.json", *extra: str) -> Result:
        return self("apply", plan, "--yes", *extra)

    def status(self, plan: str = "plan.json") -> dict[str, Any]:
        r = self.json("status", plan)
        assert r.code == 0, r
        doc: dict[str, Any] = r.json()
        return doc

    def key_of(self, name: str) -> dict[str, Any]:
        """The `kms:` entry of key `name` in the current dump."""
        return next(k for k in self.dump()["kms"] if k["key"] == name)

    def bucket_of(self, name: str) -> dict[str, Any]:
        return next(b for b in self.dump()["storage"] if b["bucket"] == name)

    def object_of(self, bucket_name: str, name: str) -> dict[str, Any]:
        return next(o for o in self.bucket_of(bucket_name)["objects"] if o["name"] == name)

    def change(self, fn: Any) -> None:
        """Change the world behind rotator's back, through the fake's own API:
        `fn(backend)` on open_world of the same file."""
        from rotator.backends.fake import open_world

        backend = open_world(str(self.path))
        try:
            fn(backend)
        finally:
            backend.store.close()
