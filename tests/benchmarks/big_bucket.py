"""One bucket of 20,000 objects over the wire, rotator at its defaults.

    .venv/bin/python tests/benchmarks/big_bucket.py [--objects 20000] [--current 1000]
        [--latency 0.05] [--profile]

A fresh world of OBJECTS objects under version 1 of the key and CURRENT under another
key, served over the Cloud Storage JSON API with LATENCY seconds added to every request;
`rotator plan rotate-key` and `rotator apply --yes` (no --concurrency, no --max-rps)
through the gcp backend, each in its own process. Reported: objects/s over the whole
apply (its wall time, process start and the disable step included) and over the
rewrites alone (first rewrite's arrival to the last one's answer at the server), the
apply's CPU per rewrite (its rewrite worker processes' included), how many worker
processes it started, the peak number of requests in flight, and the server's count
of rewrites per object (exactly one for each object under the retiring version, none
for the others). --profile then rewrites --profile-objects more objects in this process,
one after another through the gcp backend's rewrite path (rewrite_one, as the engine
calls it), under cProfile with a thread-CPU timer: the client's CPU per rewrite and
the functions it goes to (the server's threads are not counted). Target (issue 14):
>= 700 objects/s over the whole apply.
"""

from __future__ import annotations

import argparse
import pstats
import re
import sys
import tempfile
from pathlib import Path

from common import (
    BUCKET,
    CURRENT_PREFIX,
    KEY,
    LATENCY,
    OLD_PREFIX,
    PROJECT,
    ROTATOR,
    check,
    machine,
    run,
    served,
    table,
    world,
    write_section,
    write_world,
)

TARGET_RATE = 700


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--objects", type=int, default=20000)
    ap.add_argument("--current", type=int, default=1000)
    ap.add_argument("--latency", type=float, default=LATENCY)
    ap.add_argument("--profile", action="store_true", help="also profile the CPU per rewrite")
    ap.add_argument("--profile-objects", type=int, default=2000)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="rotator-big-") as tmp:
        path = write_world(Path(tmp), world(a.objects, a.current))
        plan = path.parent / "plan.json"
        with served(path, a.latency) as s:
            planned = check(
                run([*ROTATOR, "plan", "rotate-key", "--key", KEY, "--out", str(plan)], s.env), "plan"
            )
            at = s.mark()
            applied = check(run([*ROTATOR, "apply", str(plan), "--yes"], s.env), "apply")
            n, span = s.span("objects.rewrite")
            per = s.per_object("objects.rewrite", at)
            width = len(str(a.objects - 1))
            once = sum(1 for i in range(a.objects) if per.get(f"{OLD_PREFIX}{i:0{width}d}") == 1)
            to_current = sum(c for name, c in per.items() if name and name.startswith(CURRENT_PREFIX))
            ops = s.ops(at)
            peak = s.peak_inflight()
            errors = sum(1 for st in s.storage.statuses if st >= 400)
        top = profile(Path(tmp) / "profile", a.profile_objects) if a.profile else ""
    whole = a.objects / applied.seconds
    said = re.search(r"starting (\d+) rewrite worker", applied.stderr)
    row = [
        f"{a.objects:,} + {a.current:,} current",
        f"{planned.seconds:.1f}",
        f"{applied.seconds:.1f}",
        f"{whole:.0f}",
        f"{n / span:.0f}" if span else "-",
        f"{1000 * applied.cpu / a.objects:.2f}",
        said.group(1) if said else "0",
        peak,
        f"{once:,}/{a.objects:,}",
        to_current,
        f"{ops['objects.list']}",
        errors,
    ]
    print(row, flush=True)
    header = [
        "objects",
        "plan s",
        "apply s",
        "objects/s (whole apply)",
        "rewrites/s (steady)",
        "apply CPU ms / object",
        "rewrite worker processes",
        "peak in flight",
        "rewritten exactly once",
        "rewrites to current objects",
        "list requests in apply",
        "error answers",
    ]
    met = "met" if whole >= TARGET_RATE else "NOT met"
    body = "\n\n".join(
        part
        for part in [
            "## One bucket at rotator's defaults (tests/benchmarks/big_bucket.py)",
            f"Machine: {machine()}",
            f"{a.objects:,} objects of 1 KiB under version 1 of the key and {a.current:,} under another key "
            f"in one bucket, {a.latency * 1000:.0f} ms added to every Cloud Storage request; "
            "`rotator plan rotate-key` and `rotator apply --yes` with no other option.",
            table(header, [row]),
            f"Target (issue 14) >= {TARGET_RATE} objects/s over the whole apply: {met} ({whole:.0f}/s).",
            top,
        ]
        if part
    )
    write_section("big-bucket", body)


def profile(folder: Path, objects: int) -> str:
    """The client's CPU per rewrite: rewrite_one over the gcp backend in this thread,
    under cProfile timed by this thread's CPU clock (server threads excluded)."""
    import cProfile
    import os
    import time

    from rotator.backends.gcp import GcpBackend
    from rotator.rewrites import rewrite_one
    from rotator.services.storage.api import iter_objects

    path = write_world(folder, world(objects))
    with served(path, 0.0) as s:
        saved = dict(os.environ)
        os.environ.update(s.env)
        try:
            backend = GcpBackend(PROJECT)
        finally:
            os.environ.clear()
            os.environ.update(saved)
        storage = backend.storage
        storage.size_pool(8)
        bucket = storage.get_bucket(BUCKET)
        todo = list(iter_objects(storage, BUCKET))
        retiring, now = {f"{KEY}/cryptoKeyVersions/1"}, backend.clock.now()
        half = len(todo) // 2
        start = time.thread_time()  # first half unprofiled: the CPU per rewrite itself
        for obj in todo[:half]:
            rewrite_one(storage, obj, retiring, KEY, bucket, now)
        cpu = (time.thread_time() - start) / half
        profiler = cProfile.Profile(time.thread_time)  # second half: where it goes
        profiler.enable()
        for obj in todo[half:]:
            rewrite_one(storage, obj, retiring, KEY, bucket, now)
        profiler.disable()
    raw = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    by_layer: dict[str, float] = {}
    for (f, _line, fn), (_cc, _nc, own, _ct, callers) in raw.items():
        if f == "~" and callers:  # a builtin: its time goes to the layers that called it
            for (cf, _cl, cfn), (*_counts, from_there, _c) in callers.items():
                by_layer[_layer(cf, cfn)] = by_layer.get(_layer(cf, cfn), 0.0) + from_there
        else:
            by_layer[_layer(f, fn)] = by_layer.get(_layer(f, fn), 0.0) + own
    total = sum(by_layer.values())
    lines = table(
        ["layer (own CPU, under the profiler)", "share"],
        [[name, f"{100 * t / total:.0f}%"] for name, t in sorted(by_layer.items(), key=lambda kv: -kv[1])],
    )
    print(f"client CPU per rewrite: {1000 * cpu:.2f} ms", flush=True)
    return (
        f"Profile (`--profile`): {len(todo):,} rewrites one after another in the benchmark's process "
        f"(rewrite_one through the gcp backend): client CPU {1000 * cpu:.2f} ms per rewrite (thread CPU "
        "time of the first half, unprofiled; the server's threads excluded). Where it goes (the second "
        "half under cProfile with a thread-CPU timer, own time by layer):\n\n" + lines
    )


LAYERS = [
    ("/rotator/", "rotator"),
    ("/tenacity/", "tenacity (retry)"),
    ("/google/cloud/storage/", "google-cloud-storage"),
    ("/google/cloud/_http/", "google-cloud-core HTTP"),
    ("/google/auth/", "google-auth"),
    ("/google/api_core/", "google-api-core"),
    ("/requests/", "requests"),
    ("/urllib3/", "urllib3"),
    ("/http/client.py", "http.client"),
    ("/json/", "json"),
    ("/urllib/", "urllib.parse"),
    ("/typing.py", "typing (requests' runtime protocols)"),
]


def _layer(path: str, fn: str) -> str:
    for needle, name in LAYERS:
        if needle in path:
            return name
    if "/ssl.py" in path or "/socket.py" in path or "socket" in fn:
        return "sockets"
    return "other (stdlib)"


if __name__ == "__main__":
    sys.exit(main())
