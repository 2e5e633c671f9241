"""Dataflow steps: report running jobs that pin a version or the old key (R31, R34),
and snapshot Streaming Engine jobs before an emergency disable (R31, R32)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from rotator.changes import Change
from rotator.errors import Failure, Waiting
from rotator.model import DataflowJob
from rotator.names import is_version_of
from rotator.services.dataflow.spec import SPEC as DATAFLOW
from rotator.steps.base import PARAM_REF, PlannedStep, ReportStep, StepKind, register, strict
from rotator.timeutil import format_time, parse_time

if TYPE_CHECKING:
    from rotator.steps.base import ApplyContext, PlanContext

# Streaming jobs created before this keep key-based transform data outside CMEK (R32).
R32_CUTOFF = datetime(2024, 3, 7, tzinfo=timezone.utc)
# Snapshot states that are, or will be, a usable snapshot (SnapshotState).
_USABLE = ("PENDING", "RUNNING", "READY")


def uses_key(job: DataflowJob, key: str) -> bool:
    return job.kms_key == key or is_version_of(job.kms_key_version, key)


def r32_note(job: DataflowJob) -> str | None:
    if job.type == "STREAMING" and job.created < R32_CUTOFF:
        return (
            f"job {job.id} ({job.name}) was created {format_time(job.created)}, before 2024-03-07: "
            "its key-based transform data is outside CMEK; drain or cancel and restart it to "
            "protect it (R32)"
        )
    return None


def relaunch_path(job: DataflowJob, new_key: str) -> str:
    first = (
        f"gcloud dataflow snapshots create --job-id={job.id} --region={job.region}"
        if job.type == "STREAMING"
        else f"gcloud dataflow jobs drain {job.id} --region={job.region}"
    )
    return (
        f"job {job.id} ({job.name}) keeps its key while it runs (R34): {first}; relaunch the "
        f"pipeline{' from the snapshot' if job.type == 'STREAMING' else ''} with "
        f"--dataflowKmsKey={new_key} in {job.region}; then drain/cancel the old job"
    )


@register
class ReportJobs(ReportStep):
    name = "dataflow.report_jobs"
    summary = (
        "Report running Dataflow jobs that use the key: they keep their version or key "
        "until they end or are relaunched; never stopped by rotator"
    )
    rules = ["R31", "R32", "R34"]
    with_schema = strict({"key": PARAM_REF, "new_key": PARAM_REF}, ["key"])
    param_fields = ("key", "new_key")

    def plan(self, ctx: PlanContext, step_id: str, params: dict[str, Any]) -> PlannedStep:
        key = ctx.key(params["key"])
        new_key = ctx.params.get(params["new_key"]) if "new_key" in params else None
        inv = ctx.inventory(key)
        jobs = (
            []
            if "dataflow" in inv.uninspected
            else [j for j in DATAFLOW.reads(ctx.backend).list_jobs() if j.running and uses_key(j, key)]
        )
        notes = []
        for j in jobs:
            notes.append(
                relaunch_path(j, new_key)
                if new_key
                else f"job {j.id} ({j.name}) runs under {j.kms_key_version}: that version stays "
                "enabled until the job ends or is relaunched (R31, R34)"
            )
            if n := r32_note(j):
                notes.append(n)
        return PlannedStep(
            id=step_id,
            kind=self.name,
            title=f"{len(jobs)} running Dataflow job(s) keep their key version",
            rules=self.rules,
            targets=[j.id for j in jobs],
            notes=notes,
            data={"jobs": [j.id for j in jobs]},
        )


@register
class SnapshotJobs(StepKind):
    name = "dataflow.snapshot_jobs"
    summary = "Snapshot every running Streaming Engine job that uses the key, before it is disabled"
    rules = ["R31", "R32"]
    with_schema = strict({"key": PARAM_REF}, ["key"])
    param_fields = ("key",)

    def plan(self, ctx: PlanContext, step_id: str, params: dict[str, Any]) -> PlannedStep:
        key = ctx.key(params["key"])
        jobs = [
            j
            for j in DATAFLOW.reads(ctx.backend).list_jobs()
            if j.running and j.type == "STREAMING" and j.streaming_engine and uses_key(j, key)
        ]
        notes = [n for j in jobs if (n := r32_note(j))]
        notes.append(
            "disabling the key cancels every job that uses it, for good; a snapshot lets "
            "the pipeline be relaunched later (R31)"
        )
        return PlannedStep(
            id=step_id,
            kind=self.name,
            title=f"snapshot {len(jobs)} Streaming Engine job(s)",
            rules=self.rules,
            targets=[j.id for j in jobs],
            changes=[{"action": Change.SNAPSHOT_JOB, "job": j.id, "region": j.region} for j in jobs],
            notes=notes,
            data={"jobs": [j.id for j in jobs]},
        )

    def apply(self, ctx: ApplyContext, step: PlannedStep) -> dict[str, Any]:
        """Take each snapshot, then wait until every one is READY: a snapshot still being
        taken when the key goes away can fail, and the job's state with it (R31). The
        key is disabled by a later step, so nothing is disabled while one is pending."""
        since = parse_time(ctx.plan["created"])
        taken: dict[str, str] = {}
        for job_id in step.data["jobs"]:
            job = DATAFLOW.api(ctx.backend).get_job(job_id)
            recorded = ctx.journal.value(step.id, f"snapshot:{job_id}")
            # Killed after the snapshot but before the journal line: adopt it, take no second one.
            usable = [
                s for s in job.snapshots if s.state in _USABLE and (s.id == recorded or s.created >= since)
            ]
            if usable:
                taken[job_id] = usable[-1].id
                if usable[-1].id != recorded:
                    ctx.journal.record(step.id, **{f"snapshot:{job_id}": usable[-1].id})
                continue
            if not job.running:
                ctx.emit(f"job {job_id} is {job.state}; nothing to snapshot")
                continue
            if recorded:
                ctx.emit(f"job {job_id}: snapshot {recorded} did not become READY; taking another")
            snap = DATAFLOW.api(ctx.backend).snapshot_job(job_id)
            ctx.journal.record(step.id, **{f"snapshot:{job_id}": snap.id})
            taken[job_id] = snap.id
            ctx.emit(f"job {job_id}: snapshot {snap.id} {snap.state}")

        def not_ready() -> list[tuple[str, str, str]]:
            out = []
            for job_id, snap_id in taken.items():
                found = {s.id: s.state for s in DATAFLOW.api(ctx.backend).get_job(job_id).snapshots}
                state = found.get(snap_id, "MISSING")
                if state != "READY":
                    out.append((job_id, snap_id, state))
            return out

        if ctx.wait_until(lambda: not not_ready()):
            job_id, snap_id, state = not_ready()[0]
            if state not in _USABLE:
                raise Failure(
                    f"dataflow job {job_id}: snapshot {snap_id} is {state}, not READY; nothing was "
                    "disabled; run apply again to take another snapshot (R31)",
                    resource=job_id,
                    rule="R31",
                )
            raise Waiting(
                f"dataflow job {job_id}: snapshot {snap_id} is {state}, not READY yet; the key is "
                "disabled only once every snapshot is READY (R31); run apply again later, or pass --wait",
                resource=job_id,
                rule="R31",
            )
        return {"snapshots": taken}
