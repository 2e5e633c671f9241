"""rotator against `gsutil -m rewrite -k` and `gcloud storage objects update
--encryption-key`, on the same server, the same objects and the same concurrency.

    .venv/bin/python tests/benchmarks/versus_gsutil_gcloud.py [--objects 2000]
        [--concurrency 16 | --defaults [--faults]] [--latency 0.05] [--tools rotator,gsutil,gcloud]

--defaults runs every tool at its own defaults (rotator: no --concurrency or --max-rps;
gsutil: `-m` without thread or process counts; gcloud: no thread or process counts).
--faults (with --defaults) runs each tool twice in the same run: fault-free, then with
5% of rewrites answered 503 and 5% answered 429 (issue 14's targets: rotator 5x faster
than gsutil at defaults; under faults at most 1.5x its own fault-free time and 3x faster
than gsutil under the same faults).

Each tool gets a fresh world of OBJECTS objects under version 1 of the key (primary 2),
served over the Cloud Storage JSON API with LATENCY seconds added to every request,
and moves them all off version 1:
- rotator: `rotator plan rotate-key` + `rotator apply --concurrency C` (gcp backend);
- gsutil (the Cloud SDK's, `which gsutil`): `gsutil -m -o GSUtil:parallel_thread_count=C
  -o GSUtil:parallel_process_count=1 rewrite -k -O gs://BUCKET/**` with a BOTO_CONFIG
  naming the key (`[GSUtil] encryption_key`) and the server (`gs_json_host/port`). gsutil
  speaks only https (gslib/gcs_json_api.py hard-codes `https://`), so it talks to the same
  server through a TLS listener with a self-signed certificate
  (`https_validate_certificates = False`). `-O`: the server keeps no ACLs (as a bucket
  with uniform bucket-level access), and gsutil refuses to rewrite without them;
- gcloud: `gcloud storage objects update gs://BUCKET/** --encryption-key=KEY` in a
  throwaway CLOUDSDK_CONFIG, with the properties as environment variables:
  api_endpoint_overrides/storage=http://127.0.0.1:PORT/storage/v1/,
  auth/disable_credentials, storage/process_count=1, storage/thread_count=C.
Wall time is the tool's whole run (process start included; for rotator plan + apply).
The server's request log gives requests per object, the peak number in flight and
whether each rewrite carried a generation precondition. Target (issue 5): rotator >= 3x
faster than the faster of gsutil and gcloud.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import (
    BUCKET,
    KEY,
    LATENCY,
    PROJECT,
    Run,
    Served,
    check,
    machine,
    rewrite_faults,
    rotator_rotate,
    run,
    served,
    table,
    tls_front,
    world,
    write_section,
    write_world,
)

from rotator.services.storage.api import iter_objects

TARGET_SPEEDUP = 3.0


def gsutil(folder: Path, s: Served, port: int, concurrency: int | None) -> Run:
    boto = folder / "boto"
    boto.write_text(
        "[Credentials]\ngs_json_host = 127.0.0.1\n"
        f"gs_json_port = {port}\n"
        "[Boto]\nhttps_validate_certificates = False\n"
        f"[GSUtil]\nencryption_key = {KEY}\ndefault_project_id = {PROJECT}\n"
    )
    env = dict(
        s.env,
        BOTO_CONFIG=str(boto),
        CLOUDSDK_CONFIG=str(folder / "gcloud"),
        CLOUDSDK_CORE_PASS_CREDENTIALS_TO_GSUTIL="false",
    )
    options: list[str] = []
    if concurrency is not None:
        options = [
            "-o",
            f"GSUtil:parallel_thread_count={concurrency}",
            "-o",
            "GSUtil:parallel_process_count=1",
        ]
    cmd = ["gsutil", "-m", *options, "rewrite", "-k", "-O", f"gs://{BUCKET}/**"]
    return run(cmd, env, cwd=folder)


def gcloud(folder: Path, s: Served, concurrency: int | None) -> Run:
    env = dict(
        s.env,
        CLOUDSDK_CONFIG=str(folder / "gcloud"),
        CLOUDSDK_CORE_PROJECT=PROJECT,
        CLOUDSDK_AUTH_DISABLE_CREDENTIALS="true",
        CLOUDSDK_API_ENDPOINT_OVERRIDES_STORAGE=f"{s.storage.url}/storage/v1/",
        CLOUDSDK_CORE_DISABLE_PROMPTS="1",
        CLOUDSDK_CORE_DISABLE_USAGE_REPORTING="true",
    )
    if concurrency is not None:
        env.update(CLOUDSDK_STORAGE_PROCESS_COUNT="1", CLOUDSDK_STORAGE_THREAD_COUNT=str(concurrency))
    cmd = ["gcloud", "storage", "objects", "update", f"gs://{BUCKET}/**", f"--encryption-key={KEY}"]
    return run(cmd, env, cwd=folder)


def measure(
    tool: str, objects: int, concurrency: int | None, latency: float, folder: Path, faults: bool = False
) -> dict[str, Any]:
    path = write_world(folder / (tool + ("-faults" if faults else "")), world(objects))
    exit_code = 0
    with served(path, latency, rewrite_faults(latency) if faults else None) as s:
        if tool == "rotator":
            max_rps = None if concurrency is None else 100000
            planned, applied, _ = rotator_rotate(s, path.parent / "plan.json", concurrency, max_rps=max_rps)
            seconds, cpu = planned.seconds + applied.seconds, planned.cpu + applied.cpu
        else:
            if tool == "gsutil":
                with tls_front(s.storage, path.parent) as port:
                    done = gsutil(path.parent, s, port, concurrency)
            else:
                done = gcloud(path.parent, s, concurrency)
            if not faults:
                check(done, tool)  # without faults a failure is the benchmark's own
            exit_code = done.returncode
            seconds, cpu = done.seconds, done.cpu
        ops = s.ops()
        rewrites = [r for r in s.storage.requests if r.op == "objects.rewrite"]
        n, span = s.span("objects.rewrite")
        left = sum(
            1 for o in iter_objects(s.storage.backend.storage, BUCKET) if o.kms_key_version.endswith("/1")
        )
        return {
            "tool": tool + (" (5% 503 + 5% 429)" if faults else ""),
            "name": tool,
            "faults": faults,
            "answered_errors": sum(1 for st in s.storage.statuses if st >= 400),
            "wall": seconds,
            "cpu": cpu,
            "rate": n / span if span else 0.0,
            "requests": sum(ops.values()) / objects,
            "get": ops["objects.get"] / objects,
            "rewrite": ops["objects.rewrite"] / objects,
            "list": ops["objects.list"],
            "peak": s.peak_inflight(),
            "guarded": sum(1 for r in rewrites if "ifGenerationMatch" in r.query) / max(1, len(rewrites)),
            "left": left,
            "exit": exit_code,
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--objects", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--defaults", action="store_true", help="every tool at its own defaults")
    ap.add_argument("--faults", action="store_true", help="with --defaults: also under 5%% 503 + 5%% 429")
    ap.add_argument("--latency", type=float, default=LATENCY)
    ap.add_argument("--tools", default="rotator,gsutil,gcloud")
    a = ap.parse_args()
    if a.faults and not a.defaults:
        raise SystemExit("--faults goes with --defaults")
    tools = a.tools.split(",")
    for tool in tools:
        if tool != "rotator" and not shutil.which(tool):
            raise SystemExit(f"{tool} is not on PATH (it comes with the Google Cloud SDK)")
    concurrency = None if a.defaults else a.concurrency
    with tempfile.TemporaryDirectory(prefix="rotator-versus-") as tmp:
        results = []
        for faults in (False, True) if a.faults else (False,):
            for tool in tools:
                r = measure(tool, a.objects, concurrency, a.latency, Path(tmp), faults)
                print({k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()}, flush=True)
                results.append(r)
    rows = [
        [
            r["tool"],
            f"{r['wall']:.1f}",
            f"{r['cpu']:.1f}",
            f"{r['rate']:.0f}",
            f"{r['requests']:.3f}",
            f"{r['get']:.2f} / {r['rewrite']:.2f}",
            r["list"],
            r["peak"],
            r["answered_errors"],
            f"{r['guarded']:.0%}",
            r["left"],
            r["exit"],
        ]
        for r in results
    ]
    header = [
        "tool",
        "wall s",
        "tool CPU s",
        "rewrites/s (steady)",
        "requests / object",
        "GET / rewrite per object",
        "list requests",
        "peak in flight",
        "error answers",
        "rewrites with ifGenerationMatch",
        "objects left under v1",
        "exit code",
    ]
    body = "\n\n".join(
        [
            f"## rotator vs gsutil and gcloud{', at their defaults' if a.defaults else ''}"
            f"{', fault-free and under 5% 503 + 5% 429 on rewrites' if a.faults else ''} "
            f"(tests/benchmarks/versus_gsutil_gcloud.py{' --defaults' if a.defaults else ''}"
            f"{' --faults' if a.faults else ''})",
            f"Machine: {machine()}",
            f"{a.objects} objects of 1 KiB under version 1 of the key, a fresh world per run, "
            f"{a.latency * 1000:.0f} ms added to every Cloud Storage request, "
            + (
                "every tool at its defaults. "
                if a.defaults
                else f"concurrency {a.concurrency} for every tool. "
            )
            + "Wall: the whole run (rotator: plan + apply). gsutil through a TLS listener of "
            "the same server (it speaks only https). steady rewrites/s: from the first rewrite's arrival to "
            "the last one's answer at the server.",
            table(header, rows),
            *verdicts(results, a.defaults),
        ]
    )
    write_section("versus-defaults" if a.defaults else "versus", body)


def verdicts(results: list[dict[str, Any]], defaults: bool) -> list[str]:
    def wall(tool: str, faults: bool) -> float | None:
        return next((r["wall"] for r in results if r["name"] == tool and r["faults"] == faults), None)

    out = [
        f"{r['tool']} did not finish the job: exit {r['exit']}, {r['left']} object(s) left under version 1."
        for r in results
        if r["exit"] or r["left"]
    ]
    mine, gs = wall("rotator", False), wall("gsutil", False)
    others = [(w, t) for t in ("gsutil", "gcloud") if (w := wall(t, False)) is not None]
    if not defaults and mine and others:
        fastest, name = min(others)
        speedup = fastest / mine
        met = "met" if speedup >= TARGET_SPEEDUP else "NOT met"
        out.append(
            f"rotator is {speedup:.1f}x faster (wall) than the faster of the others, {name} "
            f"({fastest:.1f} s vs {mine:.1f} s). Target (issue 5) >= {TARGET_SPEEDUP:.0f}x: {met}."
        )
    if defaults and mine and gs:
        met = "met" if gs / mine >= 5 else "NOT met"
        out.append(
            f"At defaults rotator is {gs / mine:.1f}x faster than gsutil. Target (issue 14) >= 5x: {met}."
        )
    mine_f, gs_f = wall("rotator", True), wall("gsutil", True)
    if mine and mine_f:
        met = "met" if mine_f <= 1.5 * mine else "NOT met"
        out.append(
            f"Under faults rotator takes {mine_f / mine:.2f}x its fault-free time. "
            f"Target (issue 14) <= 1.5x: {met}."
        )
    if mine_f and gs_f:
        met = "met" if gs_f / mine_f >= 3 else "NOT met"
        out.append(
            f"Under faults rotator is {gs_f / mine_f:.1f}x faster than gsutil under the same faults. "
            f"Target (issue 14) >= 3x: {met}."
        )
    return out


if __name__ == "__main__":
    sys.exit(main())
