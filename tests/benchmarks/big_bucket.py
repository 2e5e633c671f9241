"""One bucket of 20,000 objects over the wire, rotator at its defaults.

    .venv/bin/python tests/benchmarks/big_bucket.py [--objects 20000] [--current 1000]
        [--latency 0.05] [--profile]

A fresh world of OBJECTS objects under version 1 of the key and CURRENT under another
key, served over the Cloud Storage JSON API with LATENCY seconds added to every request;
`rotator plan rotate-key` and `rotator apply --yes` (no --concurrency, no --max-rps)
through the gcp backend, each in its own process. Reported: objects/s over the whole
apply (its wall time, process start and the disable step included) and over the
rewrites alone (first rewrite's arrival to the last one's answer at the server), the
apply's CPU per rewrite, the peak number of requests in flight, and the server's count
of rewrites per object (exactly one for each object under the retiring version, none
for the others). --profile runs the apply under cProfile and adds its top functions by
own CPU time. Target (issue 14): >= 700 objects/s over the whole apply.
"""

from __future__ import annotations

import argparse
import pstats
import sys
import tempfile
from pathlib import Path

from common import (
    CURRENT_PREFIX,
    KEY,
    LATENCY,
    OLD_PREFIX,
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
    ap.add_argument("--profile", action="store_true", help="run apply under cProfile")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="rotator-big-") as tmp:
        path = write_world(Path(tmp), world(a.objects, a.current))
        plan, prof = path.parent / "plan.json", path.parent / "apply.prof"
        with served(path, a.latency) as s:
            planned = check(
                run([*ROTATOR, "plan", "rotate-key", "--key", KEY, "--out", str(plan)], s.env), "plan"
            )
            at = s.mark()
            profiler = (
                [sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "rotator"] if a.profile else ROTATOR
            )
            applied = check(run([*profiler, "apply", str(plan), "--yes"], s.env), "apply")
            n, span = s.span("objects.rewrite")
            per = s.per_object("objects.rewrite", at)
            width = len(str(a.objects - 1))
            once = sum(1 for i in range(a.objects) if per.get(f"{OLD_PREFIX}{i:0{width}d}") == 1)
            to_current = sum(c for name, c in per.items() if name and name.startswith(CURRENT_PREFIX))
            ops = s.ops(at)
            peak = s.peak_inflight()
            errors = sum(1 for st in s.storage.statuses if st >= 400)
        top = ""
        if a.profile:
            stats = pstats.Stats(str(prof))
            rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:15]  # type: ignore[attr-defined]
            total = sum(v[2] for v in stats.stats.values())  # type: ignore[attr-defined]
            top = table(
                ["function", "own CPU s", "share", "calls"],
                [
                    [f"`{Path(f).name}:{line} {fn}`", f"{v[2]:.2f}", f"{100 * v[2] / total:.0f}%", v[1]]
                    for (f, line, fn), v in rows
                ],
            )
    whole = a.objects / applied.seconds
    row = [
        f"{a.objects:,} + {a.current:,} current",
        f"{planned.seconds:.1f}",
        f"{applied.seconds:.1f}",
        f"{whole:.0f}",
        f"{n / span:.0f}" if span else "-",
        f"{1000 * applied.cpu / a.objects:.2f}",
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
            "`rotator plan rotate-key` and `rotator apply --yes` with no other option"
            + (", apply under cProfile (slower)" if a.profile else "")
            + ".",
            table(header, [row]),
            f"Target (issue 14) >= {TARGET_RATE} objects/s over the whole apply: {met} ({whole:.0f}/s).",
            ("Top functions by own CPU time in apply (cProfile):\n\n" + top) if top else "",
        ]
        if part
    )
    write_section("big-bucket-profile" if a.profile else "big-bucket", body)


if __name__ == "__main__":
    sys.exit(main())
