"""Shared setup for the benchmarks in tests/benchmarks (see README.md there).

A benchmark writes a fake world file with `generate:` (thousands of objects in one
line), serves it with tests/wire's servers (the Cloud Storage JSON API over HTTP with
an injected latency on every request, the gRPC APIs for KMS and the rest), runs the
tool under test in its own process (so the server and the client do not share one
GIL), and reads the server's request log: what was asked, how often, and when.
"""

from __future__ import annotations

import compileall
import os
import platform
import re
import resource
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

ROOT = Path(__file__).resolve().parents[2]
WIRE = ROOT / "tests" / "wire"
for _folder in (WIRE, ROOT / "tests"):  # tests/wire's modules and tests/worlds.py, as pytest sees them
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))

from harness import serve_world_file  # noqa: E402
from storage_http import Fault, StorageServer, parse_route  # noqa: E402

# The benchmarks' world is built with every other test's (tests/worlds.py); re-exported
# here under the names the benchmarks use.
from worlds import APP_KEY as KEY  # noqa: E402
from worlds import BENCH_BUCKET as BUCKET  # noqa: E402, F401
from worlds import BENCH_OTHER_KEY as OTHER_KEY  # noqa: E402, F401
from worlds import CURRENT_PREFIX, OLD_PREFIX, PROJECT  # noqa: E402, F401
from worlds import STORAGE_AGENT as AGENT  # noqa: E402, F401
from worlds import generated_world as world  # noqa: E402, F401

# rotator byte-compiled, as a pip install leaves it: a checkout run with
# PYTHONDONTWRITEBYTECODE (this machine's setting) would compile its ~100 modules at
# every process start (about 0.1 s measured), which no installed copy does.
compileall.compile_dir(ROOT / "rotator", quiet=1)

RESULTS = Path(__file__).resolve().parent / "results.md"
ROTATOR = [sys.executable, "-m", "rotator"]  # the same interpreter and sys.path (PYTHONPATH) as this one
LATENCY = 0.05  # seconds added to every Cloud Storage request
BACKLOG = 1024  # the servers' listen queue
LOAD_AT_START = os.getloadavg()[0]  # other work on the machine skews the figures: say how much


def write_world(folder: Path, doc: dict[str, Any], name: str = "world.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@dataclass
class Served:
    """A world being served: the environment for rotator's gcp backend, the Storage
    server (with its request log) and the start and end time of every request."""

    env: dict[str, str]
    storage: StorageServer
    times: list[tuple[str | None, float, float]] = field(default_factory=list)  # (op, start, end)

    def mark(self) -> int:
        """A position in the request log, to count what happened after it."""
        return len(self.storage.requests)

    def ops(self, since: int = 0, until: int | None = None) -> Counter[str | None]:
        return Counter(r.op for r in self.storage.requests[since:until])

    def per_object(self, op: str, since: int = 0) -> Counter[str | None]:
        """How many `op` requests each object got."""
        return Counter(r.object for r in self.storage.requests[since:] if r.op == op)

    def span(self, op: str) -> tuple[int, float]:
        """How many `op` requests were answered, and the seconds from the first one's
        arrival to the last one's answer."""
        hits = [(t0, t1) for o, t0, t1 in self.times if o == op]
        if not hits:
            return 0, 0.0
        return len(hits), max(t1 for _, t1 in hits) - min(t0 for t0, _ in hits)

    def mean_seconds(self, op: str) -> float:
        """The mean time the server took to answer an `op` request (injected delay included)."""
        spans = [t1 - t0 for o, t0, t1 in self.times if o == op]
        return sum(spans) / len(spans) if spans else 0.0

    def peak_inflight(self) -> int:
        """The most requests the server was answering at one time."""
        edges = sorted([(t0, 1) for _, t0, _ in self.times] + [(t1, -1) for _, _, t1 in self.times])
        peak = now = 0
        for _, step in edges:
            now += step
            peak = max(peak, now)
        return peak


def _record_times(storage: StorageServer, times: list[tuple[str | None, float, float]]) -> None:
    inner = storage.handle

    def handle(method: str, target: str, body: bytes) -> Any:
        start = time.monotonic()
        try:
            return inner(method, target, body)
        finally:
            times.append((parse_route(method, urlsplit(target).path).op, start, time.monotonic()))

    storage.handle = handle  # type: ignore[method-assign]


def rewrite_faults(latency: float, seed: int = 14) -> list[Fault]:
    """5% of rewrites answered 503 and 5% answered 429 (each after the same latency)."""
    return [
        Fault(op="objects.rewrite", status=503, rate=0.05, seed=seed, delay=latency),
        # Drawn only for the 95% the first rule let through: 5% of all rewrites.
        Fault(op="objects.rewrite", status=429, rate=0.05 / 0.95, seed=seed + 1, delay=latency),
    ]


@contextmanager
def served(world_path: Path, latency: float = LATENCY, faults: list[Fault] | None = None) -> Iterator[Served]:
    with serve_world_file(world_path, world_path.parent / "cache") as (env, storage, _grpc):
        # socketserver listens with a backlog of 5: 64 clients connecting at once overflow it
        # and some connections are reset, which no Google front end does. A deeper queue.
        storage._httpd.socket.listen(BACKLOG)
        storage.faults.extend(faults or [])  # the first rule that fires answers
        if latency:
            storage.faults.append(Fault(delay=latency, status=None))
        s = Served(dict(os.environ, **env, DISABLE_GCS_PYTHON_CLIENT_OTEL_BUCKET_METADATA="true"), storage)
        _record_times(storage, s.times)
        yield s


@dataclass
class Run:
    seconds: float
    cpu: float  # user + system seconds of the command and the children it waited for
    returncode: int
    stdout: str
    stderr: str


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(cmd: list[str], env: dict[str, str], *, timeout: float = 1800, cwd: Path | None = None) -> Run:
    """Run a command to its end; its wall time and CPU time."""
    start, cpu = time.monotonic(), _children_cpu()
    p = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    return Run(time.monotonic() - start, _children_cpu() - cpu, p.returncode, p.stdout, p.stderr)


def check(r: Run, what: str) -> Run:
    if r.returncode != 0:
        raise SystemExit(f"{what} failed (exit {r.returncode}):\n{r.stderr[-3000:]}")
    return r


def rotator_rotate(
    served: Served, plan: Path, concurrency: int | None, *, max_rps: int | None = 100000
) -> tuple[Run, Run, int]:
    """`rotator plan rotate-key` then `rotator apply` over the wire (gcp backend, own
    process); concurrency and max_rps None: rotator's defaults. Returns both runs and
    the request-log position where apply began."""
    planned = check(
        run([*ROTATOR, "plan", "rotate-key", "--key", KEY, "--out", str(plan)], served.env), "rotator plan"
    )
    at = served.mark()
    args = ["apply", str(plan), "--yes"]
    if concurrency is not None:
        args += ["--concurrency", str(concurrency)]
    if max_rps is not None:
        args += ["--max-rps", str(max_rps)]
    applied = check(run([*ROTATOR, *args], served.env), "rotator apply")
    return planned, applied, at


def machine() -> str:
    cpu = ""
    try:
        text = Path("/proc/cpuinfo").read_text()
        cpu = re.search(r"model name\s*:\s*(.*)", text).group(1)  # type: ignore[union-attr]
    except (OSError, AttributeError):
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"{when}; rotator {revision()}; nproc {len(os.sched_getaffinity(0))} ({cpu}); {mem:.1f} GiB RAM; "
        f"Python {platform.python_version()}; {platform.system()} {platform.release()}; "
        f"1-min load average {LOAD_AT_START:.2f} at the start, {os.getloadavg()[0]:.2f} at the end"
    )


def revision() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD")
    if not commit:  # e.g. a `git archive` export: say which in BENCH_REVISION
        return os.environ.get("BENCH_REVISION", f"from {ROOT} (not a git checkout)")
    dirty = " + uncommitted changes in rotator/" if git("status", "--porcelain", "rotator") else ""
    return f"commit {commit}{dirty}"


def write_section(name: str, body: str) -> None:
    """Replace (or add) the section `name` of results.md, between its markers."""
    begin, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\nWritten by the benchmarks.\n"
    block = f"{begin}\n{body.rstrip()}\n{end}"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(text)
    print(f"results written to {RESULTS.relative_to(ROOT)} ({name})")


def table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


@contextmanager
def tls_front(storage: StorageServer, folder: Path) -> Iterator[int]:
    """The same Storage server on a second port, over TLS with a self-signed certificate:
    gsutil speaks only https (gslib/gcs_json_api.py: `self.http_base = 'https://'`)."""
    import ssl
    import threading
    from http.server import ThreadingHTTPServer

    from storage_http import _make_handler

    cert, key = folder / "tls.crt", folder / "tls.key"
    if not cert.exists():
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True,
        )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(storage))
    httpd.daemon_threads = True
    httpd.socket.listen(BACKLOG)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()
