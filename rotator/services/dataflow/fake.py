"""Fake Dataflow (R30-R34): jobs keep the version that was primary when they started;
disabling or destroying it (or the key's primary) cancels every running job on it, for
good (R31); revoking the agents' role halts them (R33); snapshots only of running
streaming jobs, READY after the job's `snapshot_ready_after` (FAILED if the key goes
first); a running job's key cannot change (R34)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

from rotator import apierrors as api
from rotator.agents import agents
from rotator.backends.fake.documents import (
    check_key_name,
    check_region,
    encrypt_version,
    find,
    load_docs,
    save_docs,
)
from rotator.backends.fake.inventory import versions_of
from rotator.backends.fake.kms import FakeKms
from rotator.backends.fake.shared import FakeWorld
from rotator.backends.fake.store import Store
from rotator.model import ENCRYPTER_DECRYPTER, DataflowJob, DataflowSnapshot, Listing, ProtectedResource
from rotator.names import key_of, location_of
from rotator.services.dataflow.spec import SPEC
from rotator.timeutil import format_time, parse_duration, parse_time

# Snapshot states of one still being taken (SnapshotState: PENDING, RUNNING).
_TAKING = ("PENDING", "RUNNING")


class FakeDataflow:
    def __init__(self, store: Store, kms: FakeKms, project_number: str):
        self.store, self.kms = store, kms
        # Locations an all-locations list cannot reach (tests; see FakeBackend.unreachable).
        self.unreachable: set[str] = set()
        self.agents = agents(SPEC.name, project_number)

    @staticmethod
    def _to_job(d: dict[str, Any]) -> DataflowJob:
        return DataflowJob(
            id=d["job"],
            name=d.get("name", d["job"]),
            region=d.get("region", ""),
            type=d.get("type", "BATCH"),
            streaming_engine=d.get("streaming_engine", False),
            state=d.get("state", "RUNNING"),
            created=parse_time(d.get("created", "1970-01-01T00:00:00Z")),
            kms_key=d.get("kms_key"),
            kms_key_version=d.get("kms_key_version"),
            snapshots=tuple(
                DataflowSnapshot(s["snapshot"], d["job"], parse_time(s["created"]), s.get("state", "READY"))
                for s in d.get("snapshots", [])
            ),
        )

    def list_jobs(self) -> list[DataflowJob]:
        """Every region's jobs, as a partial list when some region is in `unreachable`
        (AggregatedListJobs' failed_location)."""
        with self.store.read() as c:
            jobs = [self._to_job(d) for d in load_docs(c, "dataflow")]
        return Listing([j for j in jobs if j.region not in self.unreachable], unreachable=self.unreachable)

    def protected_resources(self, key: str, home: str) -> Iterator[ProtectedResource]:
        """What Cloud KMS Inventory says its jobs hold of `key` (the fake's inventory,
        rotator/backends/fake/inventory.py), each under its project (`home` if its name
        does not say)."""
        for j in self.list_jobs():
            versions = versions_of(key, [j.kms_key_version])
            if versions or j.kms_key == key:
                yield ProtectedResource(
                    f"//dataflow.googleapis.com/projects/{home}/locations/{j.region}/jobs/{j.id}",
                    "dataflow.googleapis.com/Job",
                    versions,
                    home,
                )

    def get_job(self, job: str) -> DataflowJob:
        with self.store.read() as c:
            return self._to_job(find(load_docs(c, "dataflow"), "job", job, "job"))

    def _mutate(self, c: sqlite3.Connection, job: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        docs = load_docs(c, "dataflow")
        return docs, find(docs, "job", job, "job")

    def snapshot_job(self, job: str) -> DataflowSnapshot:
        """Snapshots exist for running streaming jobs only. A snapshot is PENDING until the
        job's `snapshot_ready_after` has passed on the fake clock (0, the default: READY at
        once); if the key goes away before, it FAILS with the job (R31)."""
        with self.store.write() as c:
            docs, d = self._mutate(c, job)
            if d.get("state", "RUNNING") != "RUNNING" or d.get("type", "BATCH") != "STREAMING":
                raise api.FailedPrecondition(
                    f"job {job} is {d.get('state')} {d.get('type')}: only running streaming jobs "
                    "can be snapshotted (R31)",
                    resource=job,
                    rule="R31",
                )
            now = format_time(self.store.now())
            ready_at_once = not parse_duration(d.get("snapshot_ready_after", 0))
            snap = {
                "snapshot": f"{job}-snapshot-{len(d.get('snapshots', [])) + 1}",
                "created": now,
                "state": "READY" if ready_at_once else "PENDING",
            }
            d.setdefault("snapshots", []).append(snap)
            save_docs(c, "dataflow", docs)
            return DataflowSnapshot(snap["snapshot"], job, parse_time(now), snap["state"])

    def advance_to(self, c: sqlite3.Connection, now: str) -> None:
        """Snapshots whose time has come are READY."""
        moment = parse_time(now)
        docs = load_docs(c, "dataflow")
        for d in docs:
            delay = parse_duration(d.get("snapshot_ready_after", 0))
            for s in d.get("snapshots", []):
                if s.get("state") in _TAKING and parse_time(s["created"]) + delay <= moment:
                    s["state"] = "READY"
        save_docs(c, "dataflow", docs)

    def drain_job(self, job: str) -> DataflowJob:
        with self.store.write() as c:
            docs, d = self._mutate(c, job)
            if d.get("type") != "STREAMING" or d.get("state", "RUNNING") != "RUNNING":
                raise api.FailedPrecondition(
                    f"job {job}: only a running streaming job can be drained", resource=job
                )
            d["state"] = "DRAINED"
            save_docs(c, "dataflow", docs)
            return self._to_job(d)

    def cancel_job(self, job: str) -> DataflowJob:
        with self.store.write() as c:
            docs, d = self._mutate(c, job)
            if d.get("state", "RUNNING") != "RUNNING":
                raise api.FailedPrecondition(f"job {job} is {d.get('state')}", resource=job)
            d["state"] = "CANCELLED"
            save_docs(c, "dataflow", docs)
            return self._to_job(d)

    def update_job_kms_key(self, job: str, kms_key: str) -> DataflowJob:
        j = self.get_job(job)
        raise api.FailedPrecondition(
            f"job {job}: the key is a launch parameter and cannot change on a running job; "
            "snapshot or drain it, then relaunch under the new key (R34)",
            resource=j.id,
            rule="R34",
        )

    def launch_job(
        self,
        job: str,
        *,
        name: str,
        region: str,
        type: str,
        streaming_engine: bool,
        kms_key: str | None,
        from_snapshot: str | None = None,
    ) -> DataflowJob:
        with self.store.write() as c:
            docs = load_docs(c, "dataflow")
            if any(d["job"] == job for d in docs):
                raise api.AlreadyExists(f"job {job} exists", resource=job)
            version = None
            if kms_key:
                kms_key = check_key_name(kms_key, service="Dataflow")
                if location_of(kms_key) in ("global", "us", "eu", "europe", "asia"):
                    raise api.InvalidArgument(
                        f"Dataflow: {kms_key} is not regional; the key must be in {region} (R30)",
                        resource=job,
                        rule="R30",
                    )
                check_region(kms_key, region, service="Dataflow", resource=job)
                version = encrypt_version(c, self.kms, kms_key, self.agents, service="Dataflow")
            if from_snapshot and not any(
                s["snapshot"] == from_snapshot for d in docs for s in d.get("snapshots", [])
            ):
                raise api.NotFound(f"snapshot {from_snapshot} not found", resource=from_snapshot)
            d = {
                "job": job,
                "name": name,
                "region": region,
                "type": type,
                "streaming_engine": streaming_engine,
                "state": "RUNNING",
                "created": format_time(self.store.now()),
                "kms_key": kms_key,
                "kms_key_version": version,
                "snapshots": [],
            }
            docs.append(d)
            save_docs(c, "dataflow", docs)
            return self._to_job(d)

    # -- KMS events ----------------------------------------------------------------------
    def on_version_unusable(self, c: sqlite3.Connection, version: str, primary: str | None) -> None:
        """R31: jobs under the version, or under a key whose primary just went, are cancelled."""
        docs = load_docs(c, "dataflow")
        key = key_of(version)
        for d in docs:
            if d.get("state", "RUNNING") != "RUNNING":
                continue
            if d.get("kms_key_version") == version or (d.get("kms_key") == key and version == primary):
                d["state"] = "CANCELLED"
                for s in d.get("snapshots", []):
                    if s.get("state") in _TAKING:  # the job's state is lost with it
                        s["state"] = "FAILED"
        save_docs(c, "dataflow", docs)

    def on_iam_changed(self, c: sqlite3.Connection, key: str, bindings: dict[str, list[str]]) -> None:
        """R33: without the Dataflow agents' role, jobs on the key halt."""
        members = set(bindings.get(ENCRYPTER_DECRYPTER, []))
        if all(a in members for a in self.agents):
            return
        docs = load_docs(c, "dataflow")
        for d in docs:
            if d.get("state", "RUNNING") == "RUNNING" and d.get("kms_key") == key:
                d["state"] = "CANCELLED"
        save_docs(c, "dataflow", docs)


def connect(backend: FakeWorld) -> FakeDataflow:
    """This service's fake in `backend`'s world (rotator/backends/fake/__init__.py)."""
    fake = FakeDataflow(backend.store, backend.kms, backend.project_number)
    fake.unreachable = backend.unreachable  # one set for every all-locations list (tests)
    return fake
