"""A tiny world builder for tests of the fake backend (and of anything built on it).

    from helpers import APP_KEY, BUCKET, make_backend, make_world, obj, v

`make_world()` is the smallest world most tests need:

* `APP_KEY` (us-east1): versions 1 and 2 ENABLED, primary 2;
* `NEW_KEY` (us-east1): version 1 ENABLED, primary 1 (a replacement key);
* `EU_KEY` (europe-west1): version 1 ENABLED (the wrong location for the bucket, R7);
* bucket `BUCKET` in US-EAST1 defaulting to `APP_KEY`, soft delete 7d, not versioned,
  holding one object `OBJECT` (generation 1, 1024 bytes) under APP_KEY version 1.

Every key grants the Cloud Storage agent Encrypter/Decrypter (R5). Top-level
overrides replace whole sections: `make_world(storage=[bucket("b", objects=[...])])`,
`make_world(now="2027-01-01T00:00:00Z")`. Every call returns a fresh dict, so a test
may mutate it freely.
"""

from __future__ import annotations

import copy
import io
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from rotator.backends.fake import FakeBackend

PROJECT = "demo"
PROJECT_NUMBER = "111111111111"
NOW_TEXT = "2026-11-22T00:00:00Z"
NOW = datetime(2026, 11, 22, tzinfo=timezone.utc)

ENCRYPTER_DECRYPTER = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
STORAGE_AGENT = f"serviceAccount:service-{PROJECT_NUMBER}@gs-project-accounts.iam.gserviceaccount.com"

RING = f"projects/{PROJECT}/locations/us-east1/keyRings/ring"
APP_KEY = f"{RING}/cryptoKeys/app"
NEW_KEY = f"{RING}/cryptoKeys/new"
EU_KEY = f"projects/{PROJECT}/locations/europe-west1/keyRings/ring/cryptoKeys/eu"

BUCKET = "demo-logs"
OBJECT = "reports/2026-01.csv"


def v(key: str, number: int) -> str:
    """The name of version `number` of `key`."""
    return f"{key}/cryptoKeyVersions/{number}"


def key(
    name: str,
    versions: dict[int, str] | None = None,
    primary: int | None | str = "max",
    members: tuple[str, ...] = (STORAGE_AGENT,),
    **extra: Any,
) -> dict[str, Any]:
    """A `kms:` entry; `primary` defaults to the highest version, `members` get
    Encrypter/Decrypter."""
    versions = dict(versions or {1: "ENABLED"})
    entry: dict[str, Any] = {
        "key": name,
        "primary": max(versions) if primary == "max" else primary,
        "versions": versions,
        "iam": {ENCRYPTER_DECRYPTER: list(members)} if members else {},
    }
    entry.update(extra)
    return entry


def obj(name: str, version: str | None = None, size: int = 1024, **extra: Any) -> dict[str, Any]:
    """An `objects:` entry under `version` (None: Google default encryption)."""
    entry: dict[str, Any] = {"name": name, "generation": 1, "kms_key_version": version, "size": size}
    entry.update(extra)
    return entry


def bucket(
    name: str = BUCKET,
    objects: list[dict[str, Any]] | None = None,
    location: str = "US-EAST1",
    default_kms_key: str | None = APP_KEY,
    **extra: Any,
) -> dict[str, Any]:
    """A `storage:` entry (soft delete 7d, not versioned unless `extra` says so)."""
    entry: dict[str, Any] = {
        "bucket": name,
        "location": location,
        "default_kms_key": default_kms_key,
        "versioning": False,
        "soft_delete": "7d",
        "objects": list(objects or []),
    }
    entry.update(extra)
    return entry


_BASE: dict[str, Any] = {
    "project": PROJECT,
    "project_number": PROJECT_NUMBER,
    "now": NOW_TEXT,
    "kms": [
        key(APP_KEY, {1: "ENABLED", 2: "ENABLED"}, primary=2),
        key(NEW_KEY, {1: "ENABLED"}, primary=1),
        key(EU_KEY, {1: "ENABLED"}, primary=1),
    ],
    "storage": [bucket(BUCKET, [obj(OBJECT, v(APP_KEY, 1))])],
}


def make_world(**overrides: Any) -> dict[str, Any]:
    """A fresh world-file dict; keyword arguments replace top-level sections."""
    unknown = set(overrides) - {
        "project",
        "project_number",
        "now",
        "kms",
        "storage",
        "firestore",
        "dataflow",
        "run",
        "functions",
        "other_resources",
    }
    if unknown:
        raise TypeError(f"make_world: not a world-file section: {sorted(unknown)}")
    doc = copy.deepcopy(_BASE)
    doc.update(copy.deepcopy(overrides))
    return doc


def make_backend(**overrides: Any) -> FakeBackend:
    """An in-memory FakeBackend of `make_world(**overrides)`."""
    return FakeBackend.from_dict(make_world(**overrides))


def resealed(doc: dict[str, Any]) -> dict[str, Any]:
    """A plan document with its digest recomputed: what a plan with these values would
    look like had `rotator plan` written it (for tests of checks behind the digest)."""
    from rotator.plandoc import seal

    return seal(doc)


def write_world(path: Path, doc: dict[str, Any]) -> Path:
    """Write a world dict as the YAML world file `path` (returns `path`)."""
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


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
# scenario suites run through the official clients (tests/wire/README in test_contract).
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
