"""Fake Cloud Storage batch operations: a RewriteObject(kms_key) job over a manifest of
objects. It runs on the fake clock: BATCH_DURATION after creation it is due, and the
next look at it performs every rewrite as Cloud Storage would (each one a rewrite with
the manifest's generation as precondition, so held, retained or changed objects fail
per object, R16)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from rotator import apierrors as api
from rotator.backends.fake.documents import check_key_name, find, load_docs, save_docs
from rotator.backends.fake.store import Store
from rotator.model import BatchJob
from rotator.names import is_version_of
from rotator.timeutil import format_time, parse_time

if TYPE_CHECKING:
    from rotator.services.storage.fake import FakeStorage

BATCH_DURATION = timedelta(minutes=10)
ERROR_SAMPLE = 20


class FakeStorageBatch:
    def __init__(self, store: Store, storage: FakeStorage, project: str):
        self.store, self.storage, self.project = store, storage, project

    def write_manifest(self, bucket: str, name: str, rows: Iterable[tuple[str, str, int]]) -> str:
        """The manifest as an object in `bucket` (its rows kept for the job to read)."""
        uri = f"gs://{bucket}/{name}"
        count = size = 0
        with self.store.write() as c:
            c.execute("DELETE FROM manifest_rows WHERE uri=?", (uri,))
            for count, (b, n, g) in enumerate(rows, 1):
                c.execute(
                    "INSERT INTO manifest_rows(uri, seq, bucket, name, generation) VALUES(?,?,?,?,?)",
                    (uri, count, b, n, g),
                )
                size += len(f"{b},{n},{g}\n")
        self.storage.upload(bucket, name, size)
        return uri

    @staticmethod
    def _job(d: dict[str, Any]) -> BatchJob:
        return BatchJob(
            d["name"],
            d["bucket"],
            d["state"],
            d["total"],
            d["succeeded"],
            d["failed"],
            tuple((e[0], e[1]) for e in d.get("errors", [])),
        )

    def job_name(self, job_id: str) -> str:
        return f"projects/{self.project}/locations/global/jobs/{job_id}"

    def create_job(self, job_id: str, bucket: str, manifest_uri: str, kms_key: str) -> BatchJob:
        key = check_key_name(kms_key, service="Storage batch operations")
        name = self.job_name(job_id)
        with self.store.write() as c:
            jobs = load_docs(c, "storage_batch")
            if any(j["name"] == name for j in jobs):
                raise api.AlreadyExists(f"batch job {name} exists", resource=name)
            (total,) = c.execute("SELECT COUNT(*) FROM manifest_rows WHERE uri=?", (manifest_uri,)).fetchone()
            manifest_bucket, _, manifest_name = manifest_uri.removeprefix("gs://").partition("/")
            if not c.execute(
                "SELECT 1 FROM objects WHERE bucket=? AND name=? AND state='live'",
                (manifest_bucket, manifest_name),
            ).fetchone():
                raise api.NotFound(f"manifest {manifest_uri} not found", resource=manifest_uri)
            due = self.store.now() + BATCH_DURATION
            jobs.append(
                {
                    "name": name,
                    "bucket": bucket,
                    "manifest": manifest_uri,
                    "kms_key": key,
                    "state": "RUNNING",
                    "due": format_time(due),
                    "total": total,
                    "succeeded": 0,
                    "failed": 0,
                    "errors": [],
                }
            )
            save_docs(c, "storage_batch", jobs)
            return self._job(jobs[-1])

    def get_job(self, name: str) -> BatchJob:
        with self.store.read() as c:
            job = find(load_docs(c, "storage_batch"), "name", name, "batch job")
        if job["state"] == "RUNNING" and parse_time(job["due"]) <= self.store.now():
            job = self._run(job)
        return self._job(job)

    def _run(self, job: dict[str, Any]) -> dict[str, Any]:
        with self.store.read() as c:
            rows = c.execute(
                "SELECT bucket, name, generation FROM manifest_rows WHERE uri=? ORDER BY seq",
                (job["manifest"],),
            ).fetchall()
        succeeded, errors = 0, []
        for bucket, name, generation in rows:
            try:
                self.storage.rewrite_object(
                    bucket,
                    name,
                    destination_kms_key=job["kms_key"],
                    if_generation_match=generation,
                    max_bytes_rewritten_per_call=1 << 62,
                )
                succeeded += 1
            except api.ApiError as e:
                # A resumed run finds its own earlier rewrite: that object is done.
                if self._already_done(bucket, name, job["kms_key"], generation):
                    succeeded += 1
                else:
                    errors.append((f"gs://{bucket}/{name}", str(e)))
        with self.store.write() as c:
            jobs = load_docs(c, "storage_batch")
            d = find(jobs, "name", job["name"], "batch job")
            d.update(
                state="FAILED" if errors and not succeeded else "SUCCEEDED",
                succeeded=succeeded,
                failed=len(errors),
                errors=errors[:ERROR_SAMPLE],
            )
            save_docs(c, "storage_batch", jobs)
            return d

    def _already_done(self, bucket: str, name: str, key: str, generation: int) -> bool:
        """Rewritten since the manifest was written, under the job's key."""
        try:
            obj = self.storage.get_object(bucket, name)
        except api.NotFound:
            return False
        return obj.generation > generation and is_version_of(obj.kms_key_version, key)
