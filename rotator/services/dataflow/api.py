"""Dataflow as rotator calls it: jobs are listed and read while planning, snapshotted
while applying (SPEC.api)."""

from __future__ import annotations

from typing import Protocol

from rotator.model import DataflowJob, DataflowSnapshot


class DataflowReads(Protocol):
    def list_jobs(self) -> list[DataflowJob]: ...

    def get_job(self, job: str) -> DataflowJob: ...


class DataflowApi(DataflowReads, Protocol):
    def snapshot_job(self, job: str) -> DataflowSnapshot: ...
