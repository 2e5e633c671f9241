"""Cloud Storage batch operations through google-cloud-storagebatchoperations
(storagebatchoperations_v1), for `--engine batch`: a manifest of exactly the objects to
move, and a RewriteObject(kms_key) job over it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from typing import Any

from rotator.backends.gcp.errors import translated
from rotator.backends.gcp.retry import RetryPolicy
from rotator.model import BatchJob


class GcpStorageBatch:
    """Cloud Storage batch operations (google-cloud-storagebatchoperations): a
    RewriteObject(kms_key) job over a manifest of exactly the objects to move."""

    def __init__(self, client: Any, storage_client: Any, project: str, retry: RetryPolicy):
        self.client, self.storage_client, self.project = client, storage_client, project
        self.retry = retry.for_calls_of("batch")  # retries as each call's declaration says

    def write_manifest(self, bucket: str, name: str, rows: Iterable[tuple[str, str, int]]) -> str:
        """Streamed to a temporary file first: a million rows never sit in memory."""
        with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as fh:
            for b, n, g in rows:
                fh.write(f"{b},{n},{g}\n")
            path = fh.name
        try:
            blob = self.storage_client.bucket(bucket).blob(name)
            with translated("write_manifest", f"gs://{bucket}/{name}"):
                # Re-uploading the same manifest is harmless: safe to retry.
                self.retry.request(
                    "write_manifest",
                    blob.upload_from_filename,
                    path,
                    content_type="text/csv",
                    retry=None,
                )
        finally:
            os.unlink(path)
        return f"gs://{bucket}/{name}"

    def job_name(self, job_id: str) -> str:
        return f"projects/{self.project}/locations/global/jobs/{job_id}"

    def create_job(self, job_id: str, bucket: str, manifest_uri: str, kms_key: str) -> BatchJob:
        from google.cloud import storagebatchoperations_v1 as sb

        job = sb.Job(
            bucket_list=sb.BucketList(
                buckets=[
                    sb.BucketList.Bucket(bucket=bucket, manifest=sb.Manifest(manifest_location=manifest_uri))
                ]
            ),
            rewrite_object=sb.RewriteObject(kms_key=kms_key),
            description="rotator: re-encrypt objects under a new key version",
        )
        parent = f"projects/{self.project}/locations/global"
        with translated("create_batch_job", parent):
            # Not retried blindly: the engine records the job id and resumes it instead.
            self.retry.request(
                "create_job",
                self.client.create_job,
                parent=parent,
                job_id=job_id,
                job=job,
                retry=None,
            )
        return self.get_job(self.job_name(job_id))

    def get_job(self, name: str) -> BatchJob:
        from google.cloud import storagebatchoperations_v1 as sb

        with translated("get_batch_job", name):
            j = self.retry.request("get_job", self.client.get_job, name=name, retry=None)
        errors = tuple(
            (
                e.object_uri,
                e.error_details[0]
                if e.error_details
                else s.error_code.name
                if hasattr(s.error_code, "name")
                else str(s.error_code),
            )
            for s in j.error_summaries
            for e in s.error_log_entries
        )
        bucket = j.bucket_list.buckets[0].bucket if j.bucket_list.buckets else ""
        counters = j.counters
        return BatchJob(
            j.name,
            bucket,
            sb.Job.State(j.state).name,
            int(counters.total_object_count),
            int(counters.succeeded_object_count),
            int(counters.failed_object_count),
            errors,
        )
