"""Dataflow: running jobs launched with the key (R30-R34)."""

from __future__ import annotations

from rotator.services.dataflow.api import DataflowApi, DataflowReads
from rotator.services.spec import Call, PinKind, Repeat, ServiceSpec

DATAFLOW_KEY = "dataflow_job_key"
DATAFLOW_JOB = "dataflow_running_job"

_CANCELLED = "the job is cancelled, for good (R31)"

SPEC: ServiceSpec[DataflowApi, DataflowReads] = ServiceSpec(
    name="dataflow",
    title="Dataflow",
    agents=(
        "service-{n}@dataflow-service-producer-prod.iam.gserviceaccount.com",
        "{n}-compute@developer.gserviceaccount.com",
    ),
    pin_kinds=(
        PinKind(
            DATAFLOW_KEY,
            "R31",
            True,
            True,
            "the job ends, or is relaunched under another key (R34)",
            _CANCELLED,
            "{resource} runs with this key",
            key_level=True,
        ),
        PinKind(
            DATAFLOW_JOB,
            "R31",
            True,
            True,
            "the job ends or is replaced (snapshot or drain, relaunch)",
            _CANCELLED,
            "{resource} started under this version",
        ),
    ),
    products=("dataflow.googleapis.com",),
    calls={
        "list_jobs": Call("dataflow.jobs.list"),
        "get_job": Call("dataflow.jobs.get"),
        "snapshot_job": Call("dataflow.snapshots.create", Repeat.ONCE),
        "list_snapshots": Call("dataflow.snapshots.list"),  # the gcp adapter's, for get_job
    },
    endpoint_env="ROTATOR_ENDPOINT_DATAFLOW",
    listed_once=frozenset({"list_jobs"}),
)
