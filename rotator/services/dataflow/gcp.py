"""Dataflow through google-cloud-dataflow-client (dataflow_v1beta3), as the Backend
protocol needs it: the active jobs read in full, their snapshots, a snapshot taken
before a key is disabled (R31)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from rotator import apierrors as api
from rotator.backends.gcp.connect import grpc_transport
from rotator.backends.gcp.errors import translated
from rotator.backends.gcp.retry import RetryPolicy
from rotator.backends.gcp.shared import EPOCH, GcpWorld
from rotator.model import DataflowJob, DataflowSnapshot, Listing

# Dataflow states that no longer use the key (everything else is treated as running).
_ENDED = {
    "JOB_STATE_DONE",
    "JOB_STATE_FAILED",
    "JOB_STATE_CANCELLED",
    "JOB_STATE_DRAINED",
    "JOB_STATE_STOPPED",
    "JOB_STATE_UPDATED",
}


def connect(backend: GcpWorld) -> GcpDataflow:
    """The adapter over the Jobs and Snapshots clients (their library imported here, on
    first use: a plan that never reads Dataflow never loads it)."""
    from google.cloud import dataflow_v1beta3
    from google.cloud.dataflow_v1beta3.services.jobs_v1_beta3.transports import JobsV1Beta3GrpcTransport
    from google.cloud.dataflow_v1beta3.services.snapshots_v1_beta3.transports import (
        SnapshotsV1Beta3GrpcTransport,
    )

    jobs = dataflow_v1beta3.JobsV1Beta3Client(
        transport=grpc_transport(JobsV1Beta3GrpcTransport, "dataflow", backend.credentials)
    )
    snapshots = dataflow_v1beta3.SnapshotsV1Beta3Client(
        transport=grpc_transport(SnapshotsV1Beta3GrpcTransport, "dataflow", backend.credentials)
    )
    return GcpDataflow(jobs, backend.project, backend.retry, backend.inventory, snapshots)


def _snapshot_state(state: Any) -> str:
    """SnapshotState's name; a state not yet known is a snapshot still PENDING."""
    from google.cloud import dataflow_v1beta3 as df

    name = df.SnapshotState(state).name
    return "PENDING" if name == "UNKNOWN_SNAPSHOT_STATE" else name


class GcpDataflow:
    def __init__(
        self, client: Any, project: str, retry: RetryPolicy, inventory: Any = None, snapshots: Any = None
    ):
        self.client, self.project, self.inventory = client, project, inventory
        self.retry = retry.for_calls_of("dataflow")  # retries as each call's declaration says
        self.snapshots = snapshots
        self._regions: dict[str, str] = {}

    def _job(self, j: Any) -> DataflowJob:
        from google.cloud import dataflow_v1beta3 as df

        state = df.JobState(j.current_state).name
        env = j.environment
        engine = bool(
            env
            and (
                "enable_streaming_engine" in env.experiments
                or "enable_streaming_engine" in env.service_options
            )
        )
        self._regions[j.id] = j.location
        key = (env.service_kms_key_name or None) if env else None
        version = None
        if self.inventory and key:
            name = f"//dataflow.googleapis.com/projects/{self.project}/locations/{j.location}/jobs/{j.id}"
            version = self.inventory.versions_of(key, name)
        return DataflowJob(
            id=j.id,
            name=j.name,
            region=j.location,
            type="STREAMING" if df.JobType(j.type_).name == "JOB_TYPE_STREAMING" else "BATCH",
            streaming_engine=engine,
            state="RUNNING" if state not in _ENDED else state.removeprefix("JOB_STATE_"),
            created=j.create_time or EPOCH,
            kms_key=key,
            # The Jobs API does not record it (R31); KMS Inventory may. None: any version.
            kms_key_version=version,
        )

    def list_jobs(self) -> list[DataflowJob]:
        """Every active job, read in full. AggregatedListJobs "always returns summaries
        now. Use GetJob for other JobViews" (ListJobsRequest.view): a summary has no
        environment, so neither the job's key nor Streaming Engine. Regions that did not
        answer come back in failed_location: those jobs are not inspected (partial)."""
        from google.cloud import dataflow_v1beta3 as df

        summaries: list[Any] = []
        failed: list[str] = []
        with translated("list_jobs", f"projects/{self.project}"):
            pager = self.retry.request(
                "list_jobs",
                self.client.aggregated_list_jobs,
                request={"project_id": self.project, "filter": df.ListJobsRequest.Filter.ACTIVE},
                retry=None,
            )
            for page in pager.pages:
                summaries.extend(page.jobs)
                failed.extend(f.name for f in page.failed_location)
        jobs = []
        for summary in summaries:
            try:
                jobs.append(self._full_job(summary.id, summary.location))
            except api.NotFound:
                continue  # gone between the list and the read: it uses nothing now
        return Listing(jobs, unreachable=failed)

    def _full_job(self, job: str, region: str) -> DataflowJob:
        from google.cloud import dataflow_v1beta3 as df

        with translated("get_job", job):
            return self._job(
                self.retry.request(
                    "get_job",
                    self.client.get_job,
                    request={
                        "project_id": self.project,
                        "job_id": job,
                        "location": region,
                        "view": df.JobView.JOB_VIEW_ALL,
                    },
                    retry=None,
                )
            )

    def _snapshots(self, job: str, region: str) -> tuple[DataflowSnapshot, ...]:
        """The job's snapshots (so a resumed disable-key adopts one it already took)."""
        if self.snapshots is None:
            return ()

        with translated("list_snapshots", job):
            resp = self.retry.request(
                "list_snapshots",
                self.snapshots.list_snapshots,
                request={"project_id": self.project, "job_id": job, "location": region},
                retry=None,
            )
        return tuple(
            DataflowSnapshot(
                s.id,
                job,
                s.creation_time or EPOCH,
                _snapshot_state(s.state),
            )
            for s in resp.snapshots
        )

    def get_job(self, job: str) -> DataflowJob:
        region = self._regions.get(job)
        if region is None:
            self.list_jobs()
            region = self._regions.get(job)
        if region is None:
            raise api.NotFound(f"Dataflow job {job} not found", resource=job)
        found = self._full_job(job, region)
        return replace(found, snapshots=self._snapshots(found.id, found.region))

    def snapshot_job(self, job: str) -> DataflowSnapshot:
        region = self._regions.get(job) or self.get_job(job).region
        with translated("snapshot_job", job):
            snap = self.retry.request(
                "snapshot_job",
                self.client.snapshot_job,
                request={
                    "project_id": self.project,
                    "job_id": job,
                    "location": region,
                    "ttl": {"seconds": 7 * 86400},
                    "description": "rotator: before disabling its key (R31)",
                },
                retry=None,
            )

        return DataflowSnapshot(
            snap.id,
            job,
            snap.creation_time or EPOCH,
            _snapshot_state(snap.state),
        )
