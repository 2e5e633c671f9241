"""`rotator plan` over the wire at 100,000 and 1,000,000 objects: wall time, peak RSS.

    .venv/bin/python tests/benchmarks/plan_over_wire.py [--sizes 100000,1000000] [--latency 0.05]

For each size N: a world of N objects under version 1 of the key in one bucket,
served over the Cloud Storage JSON API with LATENCY seconds added to every request
(the server runs in this process, the plan in its own: `rotator plan rotate-key`
through the gcp backend under `/usr/bin/time`). The world's SQLite state is built
before the clock starts. Reported: plan wall time and peak RSS, list requests and the
most in flight at once (parallel name ranges), and what a page-after-page listing
would need at the same latency (pages x latency, before any processing).
Targets (issue 14): plan over 1,000,000 objects <= 20 s; peak RSS at 1M <= 1.5x at 100k.
"""

from __future__ import annotations

import argparse
import math
import resource
import sys
import tempfile
from pathlib import Path

from common import KEY, LATENCY, ROTATOR, machine, served, table, world, write_section, write_world
from scale import timed

PLAN_SECONDS, RSS_GROWTH = 20, 1.5


def one(n: int, latency: float, folder: Path) -> dict[str, float]:
    path = write_world(folder / f"n{n}", world(n))
    with served(path, latency) as s:
        plan = path.parent / "plan.json"
        mine, server = _cpu(resource.RUSAGE_CHILDREN), _cpu(resource.RUSAGE_SELF)
        wall, mb, _ = timed(
            [*ROTATOR, "-q", "plan", "rotate-key", "--key", KEY, "--out", str(plan)], 3600, s.env
        )
        mine, server = _cpu(resource.RUSAGE_CHILDREN) - mine, _cpu(resource.RUSAGE_SELF) - server
        lists = s.ops()["objects.list"]
        listing = [(t0, t1) for op, t0, t1 in s.times if op == "objects.list"]
        edges = sorted([(t0, 1) for t0, _ in listing] + [(t1, -1) for _, t1 in listing])
        peak = now = 0
        for _, step in edges:
            now += step
            peak = max(peak, now)
    row = {
        "n": n,
        "wall": wall,
        "mb": mb,
        "cpu": mine,
        "server_cpu": server,
        "lists": lists,
        "peak": peak,
        "serial": math.ceil(n / 1000) * latency,
    }
    print(row, flush=True)
    return row


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--latency", type=float, default=LATENCY)
    a = ap.parse_args()
    sizes = [int(x) for x in a.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="rotator-plan-wire-") as tmp:
        rows = [one(n, a.latency, Path(tmp)) for n in sizes]
    by_n = {int(r["n"]): r for r in rows}
    out = []
    big, mid = by_n.get(1_000_000), by_n.get(100_000)
    if big:
        met = "met" if big["wall"] <= PLAN_SECONDS else "NOT met"
        out.append(f"Plan over 1,000,000 objects: {big['wall']:.1f} s (target <= {PLAN_SECONDS} s): {met}.")
    if big and mid:
        growth = big["mb"] / mid["mb"]
        met = "met" if growth <= RSS_GROWTH else "NOT met"
        out.append(f"Peak RSS at 1M / at 100k: {growth:.2f}x (target <= {RSS_GROWTH}x): {met}.")
    body = "\n\n".join(
        [
            "## Plan over the wire (tests/benchmarks/plan_over_wire.py)",
            f"Machine: {machine()}",
            f"N objects of 1 KiB under version 1 of the key in one bucket, {a.latency * 1000:.0f} ms "
            "added to every Cloud Storage request; `rotator plan rotate-key` (gcp backend, own process) "
            "under `/usr/bin/time`. The test server (Python, in the benchmark's process) shares the "
            "machine's CPUs.",
            table(
                [
                    "objects",
                    "plan s",
                    "plan peak RSS MB",
                    "plan CPU s",
                    "test server CPU s",
                    "list requests",
                    "most list requests in flight",
                    "page after page: latency alone s",
                ],
                [
                    [
                        f"{r['n']:,}",
                        f"{r['wall']:.1f}",
                        f"{r['mb']:.0f}",
                        f"{r['cpu']:.1f}",
                        f"{r['server_cpu']:.1f}",
                        r["lists"],
                        r["peak"],
                        f"{r['serial']:.0f}",
                    ]
                    for r in rows
                ],
            ),
            "\n".join(f"- {v}" for v in out),
        ]
    )
    write_section("plan-over-wire", body)


if __name__ == "__main__":
    sys.exit(main())
