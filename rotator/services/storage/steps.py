"""Cloud Storage steps: location preflight (R7), bucket defaults (R13.1), and the
rewrite of every live object from retiring versions (R11, R13.3, R14)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

from rotator import apierrors as api
from rotator import guards
from rotator.changes import Change
from rotator.errors import BadInput, Failure, Stale, Waiting
from rotator.model import BatchJob, Bucket
from rotator.names import version_name
from rotator.ratelimit import GCS_START_RPS, KMS_QUOTA_START_RPS
from rotator.rewrites import Rewriter, RewriteTally, planned_changes
from rotator.services.storage.api import StorageApi, iter_objects
from rotator.services.storage.settings import RewriteSettings
from rotator.services.storage.spec import BUCKET_DEFAULT, LIVE_OBJECT
from rotator.services.storage.spec import SPEC as STORAGE
from rotator.steps.base import PARAM_REF, PlannedStep, StepKind, register, strict
from rotator.storage_rules import overwrite_blocker

if TYPE_CHECKING:
    from rotator.steps.base import ApplyContext, PlanContext


def buckets_using(ctx: PlanContext, key: str) -> list[Bucket]:
    inv = ctx.inventory(key)
    used = {
        g.resource.removeprefix("gs://")
        for use in inv.versions.values()
        for g in use.pins()
        if g.resource.startswith("gs://")
    }
    return [b for b in inv.buckets if b.name in used or b.name in inv.default_for]


@register
class SetBucketDefaults(StepKind):
    name = "storage.set_bucket_defaults"
    summary = "Point every bucket whose default key is the old key at the new key"
    rules = ["R13", "R10", "R15"]
    with_schema = strict({"key": PARAM_REF, "new_key": PARAM_REF}, ["key", "new_key"])
    param_fields = ("key", "new_key")

    def plan(self, ctx: PlanContext, step_id: str, params: dict[str, Any]) -> PlannedStep | None:
        key, new_key = ctx.key(params["key"]), ctx.key(params["new_key"])
        buckets = ctx.inventory(key).default_for
        ctx.resolved.add(BUCKET_DEFAULT)
        return PlannedStep(
            id=step_id,
            kind=self.name,
            title=f"set the default key of {len(buckets)} bucket(s) to {new_key} (R13.1)",
            rules=self.rules,
            targets=[f"gs://{b}" for b in buckets],
            changes=[
                {"action": Change.SET_DEFAULT_KMS_KEY, "bucket": f"gs://{b}", "from": key, "to": new_key}
                for b in buckets
            ],
            data={"key": key, "new_key": new_key, "buckets": buckets},
        )

    def apply(self, ctx: ApplyContext, step: PlannedStep) -> dict[str, Any]:
        storage, key, new_key = STORAGE.api(ctx.backend), step.data["key"], step.data["new_key"]
        changed = 0
        for name in step.data["buckets"]:
            current = storage.get_bucket(name).default_kms_key
            if current == new_key:
                continue
            if current != key:
                raise Stale(
                    f"gs://{name}: default key is now {current}, the plan saw {key}; plan again",
                    resource=f"gs://{name}",
                    rule="R13",
                )
            storage.patch_bucket_default_kms_key(name, new_key)
            changed += 1
            ctx.emit(f"gs://{name}: default key -> {new_key}")
        return {"buckets_changed": changed}

    verifies = True

    def verify(self, ctx: ApplyContext, step: PlannedStep, result: dict[str, Any]) -> list[str]:
        new_key = step.data["new_key"]
        drift = []
        for name in step.data["buckets"]:
            current = STORAGE.api(ctx.backend).get_bucket(name).default_kms_key
            if current != new_key:
                drift.append(f"gs://{name}: default key is {current}, not {new_key} as applied")
        return drift


@register
class RewriteObjects(StepKind):
    name = "storage.rewrite_objects"
    summary = (
        "Rewrite every live object under a retiring version of the key, in place, "
        "under the destination key's primary version"
    )
    rules = ["R11", "R13", "R14", "R16", "R18"]
    with_schema = strict({"key": PARAM_REF, "to": PARAM_REF}, ["key", "to"])
    param_fields = ("key", "to")

    def plan(self, ctx: PlanContext, step_id: str, params: dict[str, Any]) -> PlannedStep:
        key, dest = ctx.key(params["key"]), ctx.key(params["to"])
        inv = ctx.inventory(key)
        # Retiring: every version that exists now. For a rotation the new primary is
        # made later and is not among them; for a replacement the whole key retires.
        retiring = sorted(inv.versions)
        work = inv.rewrite_work(retiring)
        changes, objects, size = [], 0, 0
        for bucket, per_version in work.items():
            for n, (count, nbytes) in sorted(per_version.items()):
                changes.append(
                    {
                        "action": Change.REWRITE,
                        "bucket": f"gs://{bucket}",
                        "from_version": version_name(key, n),
                        "to_key": dest,
                        "objects": count,
                        "bytes": nbytes,
                    }
                )
                objects += count
                size += nbytes
        notes = []
        for n in retiring:
            for g in inv.version(n).pins():
                if g.kind != LIVE_OBJECT and g.resource.startswith("gs://") and g.kind != BUCKET_DEFAULT:
                    notes.append(f"version {n}: not rewritten: {guards.describe_pin(g)}")
        start_rps = GCS_START_RPS
        quota_keys = [k for k in {key, dest} if _kms_quota_level(ctx, k)]
        if quota_keys and objects:
            start_rps = KMS_QUOTA_START_RPS
            notes.append(
                f"{', '.join(quota_keys)} is an HSM or external key: each rewrite spends the key "
                f"project's Cloud HSM / Cloud EKM quota (R6), so rewrites start at {start_rps:.0f}/s "
                "per bucket and slow down on RESOURCE_EXHAUSTED"
            )
        ctx.resolved.add(LIVE_OBJECT)
        return PlannedStep(
            id=step_id,
            kind=self.name,
            title=f"rewrite {objects} object(s) under {key} to {dest}",
            rules=self.rules,
            targets=[f"gs://{b}" for b in work],
            changes=changes,
            notes=notes,
            data={
                "key": key,
                "to": dest,
                "retiring": retiring,
                "buckets": list(work),
                "start_rps": start_rps,
                "objects": objects,
                "bytes": size,
            },
        )

    def resume_note(self, step: PlannedStep, progress: dict[str, Any]) -> str:
        planned = step.data.get("objects")
        return f", {progress.get('rewritten', 0):,} of {planned:,} objects done" if planned else ""

    def apply(self, ctx: ApplyContext, step: PlannedStep) -> dict[str, Any]:
        key, dest = step.data["key"], step.data["to"]
        retiring = {version_name(key, n) for n in step.data["retiring"]}
        tallies: list[RewriteTally] = []
        local: list[Bucket] = []
        for bucket_name in step.data["buckets"]:
            bucket = STORAGE.api(ctx.backend).get_bucket(bucket_name)
            planned = sum(c["objects"] for c in planned_changes(step, bucket_name))
            if RewriteSettings.of(ctx).engine_for(planned) == "batch":
                tallies.append(RewriteTally())
                self._rewrite_bucket_batch(ctx, step, bucket, retiring, dest, tallies[-1])
            else:
                local.append(bucket)
        tallies += Rewriter(ctx, step, retiring, dest).run(local)
        total: dict[str, Any] = {}
        failures: list[str] = []
        for tally in tallies:
            for k, v in tally.to_json().items():
                total[k] = total.get(k, 0) + v
            failures += tally.failures
        for failure in failures:  # every one, not just the first (the summary follows)
            ctx.emit(f"failed: {failure}")
            ctx.journal.record(step.id, failed_object=failure)
        ctx.raise_if_stopping(step.id)  # after the rewrites in flight ended and were journaled
        if failures:
            raise Failure(
                f"{len(failures)} object(s) could not be rewritten, e.g. {failures[0]}; "
                "their versions stay enabled; fix the cause and run apply again",
                resource=step.id,
            )
        return total

    verifies = True

    def verify(self, ctx: ApplyContext, step: PlannedStep, result: dict[str, Any]) -> list[str]:
        key, storage = step.data["key"], STORAGE.api(ctx.backend)
        retiring = {version_name(key, n) for n in step.data["retiring"]}
        now = ctx.backend.clock.now()
        drift = []
        for name in step.data["buckets"]:
            left = sum(1 for _ in _manifest_rows(storage, storage.get_bucket(name), retiring, now))
            if left:
                drift.append(f"gs://{name}: {left} live object(s) under versions the apply rewrote away from")
        return drift

    def _rewrite_bucket_batch(
        self,
        ctx: ApplyContext,
        step: PlannedStep,
        bucket: Bucket,
        retiring: set[str],
        dest: str,
        tally: RewriteTally,
    ) -> None:
        """Hand the bucket to Cloud Storage batch operations: a manifest of exactly the
        objects to move, one RewriteObject(kms_key) job, its counters polled; the job is
        journaled, so a re-run polls it instead of starting another."""
        batch = ctx.backend.batch
        recorded = ctx.journal.value(step.id, f"batch:{bucket.name}")
        if recorded is None:
            if not RewriteSettings.of(ctx).manifest_bucket:
                raise BadInput(
                    "--engine batch needs --manifest-bucket BUCKET (where the manifest is written)"
                )
            job_id = _batch_job_id(ctx, step, bucket.name)
            # The job may exist though the journal does not say so: its create's answer was
            # lost (DEADLINE_EXCEEDED), or rotator was killed before the journal line. The
            # id is this plan's own: take that job, never start a second over the bucket.
            job = _existing_job(batch, job_id)
            if job is not None:
                ctx.emit(f"gs://{bucket.name}: batch job {job.name} exists (this plan's): following it")
            else:
                job = self._start_batch_job(ctx, step, bucket, retiring, dest, job_id)
            ctx.journal.record(step.id, **{f"batch:{bucket.name}": job.name})
            recorded = job.name
        latest: list[BatchJob] = []

        def finished() -> bool:
            latest[:] = [batch.get_job(recorded)]
            return latest[0].done

        if ctx.wait_until(finished):
            job = latest[0]
            raise Waiting(
                f"gs://{bucket.name}: batch job {job.name} is {job.state} ({job.succeeded:,} of "
                f"{job.total:,} objects done); run apply again later, or pass --wait",
                resource=job.name,
            )
        job = latest[0]
        rows = ctx.journal.value(step.id, f"batch-rows:{bucket.name}")
        if rows is not None and job.total != rows:
            # A job that "succeeded" over fewer objects than its manifest was written with
            # would leave some under the old version with the step done: never go on.
            raise Failure(
                f"gs://{bucket.name}: batch job {job.name} went over {job.total:,} objects but its "
                f"manifest was written with {rows:,}; the old versions stay enabled; make a new plan "
                "to move the rest",
                resource=job.name,
            )
        tally.rewritten += job.succeeded
        tally.failures += [f"{uri}: {error}" for uri, error in job.errors] or (
            [f"{job.failed} object(s) failed in batch job {job.name}"] if job.failed else []
        )
        ctx.emit(
            f"gs://{bucket.name}: batch job {job.state}: {job.succeeded:,} rewritten, {job.failed:,} failed"
        )

    def _start_batch_job(
        self, ctx: ApplyContext, step: PlannedStep, bucket: Bucket, retiring: set[str], dest: str, job_id: str
    ) -> BatchJob:
        batch = ctx.backend.batch
        manifest_bucket = RewriteSettings.of(ctx).manifest_bucket
        assert manifest_bucket is not None
        rows = _Counted(_manifest_rows(STORAGE.api(ctx.backend), bucket, retiring, ctx.backend.clock.now()))
        uri = batch.write_manifest(manifest_bucket, f"rotator/{job_id}.csv", rows)
        try:
            job = batch.create_job(job_id, bucket.name, uri, dest)
        except api.AlreadyExists:  # made between our look and our create: the same job
            job = batch.get_job(batch.job_name(job_id))
        ctx.journal.record(step.id, **{f"batch-rows:{bucket.name}": rows.count})
        ctx.emit(f"gs://{bucket.name}: batch job {job.name} over {uri} ({rows.count:,} objects)")
        return job


class _Counted:
    """An iterator that counts what went through it."""

    def __init__(self, rows: Iterator[tuple[str, str, int]]):
        self.rows, self.count = rows, 0

    def __iter__(self) -> Iterator[tuple[str, str, int]]:
        for row in self.rows:
            self.count += 1
            yield row


def _existing_job(batch: Any, job_id: str) -> BatchJob | None:
    try:
        return cast(BatchJob, batch.get_job(batch.job_name(job_id)))
    except api.NotFound:
        return None


def _batch_job_id(ctx: ApplyContext, step: PlannedStep, bucket: str) -> str:
    """Stable per plan, step and bucket (so a resumed apply finds its job), and within
    the API's id rules."""
    import hashlib

    digest = hashlib.sha256(f"{ctx.journal.plan_sha256}/{step.id}/{bucket}".encode()).hexdigest()[:12]
    return f"rotator-{digest}"


def _kms_quota_level(ctx: PlanContext, key: str) -> bool:
    return ctx.backend.kms.get_crypto_key(key).protection_level in ("HSM", "EXTERNAL", "EXTERNAL_VPC")


def _manifest_rows(
    storage: StorageApi, bucket: Bucket, retiring: set[str], now: Any
) -> Iterator[tuple[str, str, int]]:
    """Exactly the objects to move: live, under a retiring version, not held or retained
    (those are pins, R16), each with its generation so a changed object is left alone."""
    for obj in iter_objects(storage, bucket.name):
        if obj.kms_key_version in retiring and not obj.held and not overwrite_blocker(obj, bucket, now):
            yield (bucket.name, obj.name, obj.generation)
