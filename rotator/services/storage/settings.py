"""How an apply rewrites Cloud Storage objects: the command line's --engine,
--manifest-bucket, --max-rps and --workers, and the journal checkpoints of a bucket's rewrite.

The engine carries these as options it does not read (ApplyContext.options): they are
Cloud Storage's, so they are typed and interpreted here, on the storage side.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rotator.ratelimit import AdaptiveRate
from rotator.rewrite_workers import auto_workers

if TYPE_CHECKING:
    from rotator.steps.base import ApplyContext

# --engine auto hands a bucket to Cloud Storage batch operations from this many objects.
BATCH_THRESHOLD = 1_000_000
# A bucket's progress is checkpointed in the journal at most this often.
CHECKPOINT_EVERY_OBJECTS = 1000
CHECKPOINT_EVERY_SECONDS = 2.0

Progress = Callable[..., None]


@dataclass(frozen=True)
class RewriteSettings:
    engine: str = "local"  # --engine: local | batch | auto
    manifest_bucket: str | None = None  # --manifest-bucket: where batch manifests are written
    batch_threshold: int = BATCH_THRESHOLD
    max_rps: int | None = None  # --max-rps: cap on each bucket's write rate
    workers: int | None = None  # --workers: rewrite worker processes (None: auto_workers)

    @classmethod
    def of(cls, ctx: ApplyContext) -> RewriteSettings:
        """The settings an apply was given (apply_plan's engine=, manifest_bucket=, ...)."""
        given = ctx.options
        return cls(
            engine=given.get("engine") or "local",
            manifest_bucket=given.get("manifest_bucket"),
            batch_threshold=given.get("batch_threshold", BATCH_THRESHOLD),
            max_rps=given.get("max_rps"),
            workers=given.get("workers"),
        )

    def engine_for(self, objects: int) -> str:
        """local: rewrites from this machine; batch: Cloud Storage batch operations.
        auto takes batch above the threshold, when a manifest bucket was given."""
        if self.engine == "auto":
            return "batch" if self.manifest_bucket and objects >= self.batch_threshold else "local"
        return self.engine

    def workers_for(self, objects: int) -> int:
        """Worker processes for a local rewrite of `objects` objects: --workers, or by
        default one per CPU for a big job (rotator.rewrite_workers.auto_workers)."""
        return auto_workers(objects) if self.workers is None else self.workers

    def bucket_rate(self, start: float) -> AdaptiveRate:
        """A bucket's write rate: Cloud Storage's ramp-up guidance, capped by --max-rps."""
        return AdaptiveRate(start, cap=self.max_rps)


def bucket_progress(ctx: ApplyContext, step_id: str, bucket: str) -> Progress:
    """A callback for per-object counters: a journal checkpoint at most every
    CHECKPOINT_EVERY_* (never a disk sync per object), and the bucket's outcome once
    at the end. Progress while it runs is the progress bar's (one line format in a
    log, rotator/progress.py)."""
    last = {"t": time.monotonic(), "n": 0}

    def report(counts: dict[str, Any], final: bool = False) -> None:
        n = counts.get("rewritten", 0) + counts.get("already_current", 0)
        now = time.monotonic()
        if final or n - last["n"] >= CHECKPOINT_EVERY_OBJECTS or now - last["t"] >= CHECKPOINT_EVERY_SECONDS:
            last.update(t=now, n=n)
            ctx.journal.checkpoint(step_id, bucket=bucket, **counts)
        if final:
            ctx.emit(
                f"gs://{bucket} done: {counts.get('rewritten', 0)} rewritten, "
                f"{counts.get('already_current', 0)} already current, "
                f"{counts.get('skipped_pinned', 0)} pinned"
            )

    return report
