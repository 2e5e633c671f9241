"""Plan and apply on the fake backend at 10k, 100k and 1M objects: wall time and peak RSS.

    .venv/bin/python tests/benchmarks/scale.py [--sizes 10000,100000,1000000]
        [--apply-sizes 10000,100000,1000000] [--apply-timeout 600] [--concurrency 8]

For each size N: a world of N objects under version 1 of the key (`generate:`), loaded
into its SQLite state first (timed apart: that is the world file's cost, not rotator's),
then `rotator --world W plan rotate-key` and `rotator --world W apply --yes`, each under
`/usr/bin/time -f '%e %M'` (wall seconds, peak RSS). An apply that runs past
--apply-timeout is stopped; its rate so far (from the fake's state) is reported and
the full time extrapolated, marked as such.
Targets (issue 5): plan over 1M <= 60 s with peak RSS <= 400 MB; RSS at 1M <= 1.5x RSS at 100k.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from common import KEY, ROTATOR, machine, table, world, write_section, write_world

from rotator.backends.fake import open_world
from rotator.model import LIVE

PLAN_SECONDS, PLAN_MB, RSS_GROWTH = 60, 400, 1.5


def timed(cmd: list[str], timeout: float, env: dict[str, str] | None = None) -> tuple[float, float, bool]:
    """(wall s, peak RSS MB, finished) of `cmd` under /usr/bin/time."""
    out = tempfile.NamedTemporaryFile(suffix=".time", delete=False)
    out.close()
    timer = ["/usr/bin/time", "-o", out.name, "-f", "%e %M", *cmd]
    start = time.monotonic()
    p = subprocess.Popen(timer, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        _, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        # Stop rotator itself (time's child), not time: time then still reports.
        for child in Path(f"/proc/{p.pid}/task/{p.pid}/children").read_text().split():
            os.kill(int(child), signal.SIGTERM)
        _, err = p.communicate()
        finished = False
    else:
        finished = True
        if p.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed (exit {p.returncode}):\n{err[-3000:]}")
    wall = time.monotonic() - start
    fields = Path(out.name).read_text().split()
    os.unlink(out.name)
    return wall, int(fields[-1]) / 1024, finished


def rewritten(world_path: Path) -> int:
    """Objects no longer under version 1, read from the fake's state."""
    backend = open_world(str(world_path))
    try:
        row = backend.store.conn.execute(
            "SELECT COUNT(*) FROM objects WHERE kms_key_version != ? AND state = ?",
            (f"{KEY}/cryptoKeyVersions/1", LIVE),
        ).fetchone()
        return int(row[0])
    finally:
        backend.store.close()


@dataclass
class Size:
    n: int
    load_s: float
    plan_s: float
    plan_mb: float
    apply_s: float | None = None
    apply_mb: float | None = None
    finished: bool = True
    done: int = 0  # objects rewritten when apply ended or was stopped

    def row(self) -> list[str]:
        row = [f"{self.n:,}", f"{self.load_s:.1f}", f"{self.plan_s:.1f}", f"{self.plan_mb:.0f}"]
        if self.apply_s is None or self.apply_mb is None:
            return row + ["not run", "", ""]
        rate = self.done / self.apply_s
        wall = f"{self.apply_s:.1f}"
        if not self.finished:
            guess = f"~{self.n / rate:.0f}" if rate else "?"
            wall = f"**{guess} extrapolated** (stopped after {self.done:,} in {self.apply_s:.0f} s)"
        return row + [wall, f"{self.apply_mb:.0f}", f"{rate:.0f}"]


def one(n: int, folder: Path, apply: bool, timeout: float, concurrency: int) -> Size:
    path = write_world(folder / f"n{n}", world(n))
    start = time.monotonic()
    open_world(str(path)).store.close()  # the world file into its SQLite state
    load = time.monotonic() - start
    plan = path.parent / "plan.json"
    rotator = [*ROTATOR, "--world", str(path), "-q"]
    plan_s, plan_mb, _ = timed([*rotator, "plan", "rotate-key", "--key", KEY, "--out", str(plan)], 3600)
    size = Size(n, load, plan_s, plan_mb)
    print(f"{n} objects: load {load:.1f}s, plan {plan_s:.1f}s {plan_mb:.0f} MB", flush=True)
    if apply:
        cmd = [*rotator, "apply", str(plan), "--yes", "--concurrency", str(concurrency)]
        size.apply_s, size.apply_mb, size.finished = timed(cmd, timeout)
        size.done = n if size.finished else rewritten(path)
        how = "" if size.finished else f" (stopped after {size.done} rewrites)"
        print(f"{n} objects: apply {size.apply_s:.1f}s {size.apply_mb:.0f} MB{how}", flush=True)
    return size


def verdicts(by_n: dict[int, Size]) -> list[str]:
    big, mid = by_n.get(1_000_000), by_n.get(100_000)
    if big is None:
        return []
    ok = big.plan_s <= PLAN_SECONDS and big.plan_mb <= PLAN_MB
    out = [
        f"Plan over 1M: {big.plan_s:.1f} s, {big.plan_mb:.0f} MB peak RSS "
        f"(target <= {PLAN_SECONDS} s, <= {PLAN_MB} MB): {'met' if ok else 'NOT met'}"
    ]
    if mid is not None:
        pairs = [("plan", big.plan_mb, mid.plan_mb), ("apply", big.apply_mb, mid.apply_mb)]
        for what, at_1m, at_100k in pairs:
            if at_1m and at_100k:
                growth = at_1m / at_100k
                met = "met" if growth <= RSS_GROWTH else "NOT met"
                out.append(f"{what} peak RSS at 1M / at 100k: {growth:.2f}x (target <= {RSS_GROWTH}x): {met}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--apply-sizes", default="10000,100000,1000000")
    ap.add_argument("--apply-timeout", type=float, default=600)
    ap.add_argument("--concurrency", type=int, default=8)
    a = ap.parse_args()
    sizes = [int(s) for s in a.sizes.split(",")]
    apply_sizes = {int(s) for s in a.apply_sizes.split(",") if s}
    with tempfile.TemporaryDirectory(prefix="rotator-scale-") as tmp:
        results = [one(n, Path(tmp), n in apply_sizes, a.apply_timeout, a.concurrency) for n in sizes]
    header = ["objects", "world load s", "plan s", "plan peak RSS MB", "apply s", "apply peak RSS MB"]
    body = "\n\n".join(
        [
            "## Plan and apply on the fake at scale (tests/benchmarks/scale.py)",
            f"Machine: {machine()}",
            "N objects of 1 KiB under version 1 of the key in one bucket (`generate:`); "
            "`rotator --world W plan rotate-key` and "
            f"`rotator --world W apply --yes --concurrency {a.concurrency}`, each under "
            "`/usr/bin/time -f '%e %M'` (peak RSS of the rotator process). World load (the world file "
            "into its SQLite state) is timed apart. Apply includes the disable step's fresh re-inventory.",
            table([*header, "apply objects/s"], [r.row() for r in results]),
            "\n".join(f"- {v}" for v in verdicts({r.n: r for r in results})),
        ]
    )
    write_section("scale", body)


if __name__ == "__main__":
    sys.exit(main())
