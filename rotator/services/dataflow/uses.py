"""Dataflow's uses of a key: running jobs launched with it (R31)."""

from __future__ import annotations

from rotator.pins import pin_primary, pin_unlisted, versions_used
from rotator.scan import Scan
from rotator.services.dataflow.spec import DATAFLOW_JOB, DATAFLOW_KEY
from rotator.services.dataflow.spec import SPEC as DATAFLOW


def scan(s: Scan) -> None:
    backend, key, uses, primary = s.backend, s.key, s.uses, s.primary
    jobs = DATAFLOW.reads(backend).list_jobs()
    pin_unlisted(uses, "Dataflow jobs", jobs)
    for job in jobs:
        if not job.running:
            continue
        where = f"dataflow job {job.id} ({job.name}, {job.region})"
        if job.kms_key == key:
            pin_primary(uses, primary, DATAFLOW_KEY, where)
        for use in versions_used(uses, key, job.kms_key_version, job.kms_key):
            use.group(DATAFLOW_JOB, where).add(job.id)
