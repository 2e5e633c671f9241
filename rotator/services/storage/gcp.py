"""Cloud Storage through google-cloud-storage (JSON API).

Listing uses a `fields` projection with everything the inventory needs, so no object
ever needs its own GET (R17). A rewrite names the destination key without a version
(the library drops a versioned name, and the service uses the primary, R2) and always
carries the object's generation as a precondition, which is what makes retrying it
safe.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import storage

from rotator.backends.gcp import lean_http
from rotator.backends.gcp.connect import STORAGE_EMULATOR
from rotator.backends.gcp.errors import translated
from rotator.backends.gcp.retry import RetryPolicy
from rotator.backends.gcp.shared import GcpWorld
from rotator.model import (
    LIVE,
    NONCURRENT,
    SOFT_DELETED,
    Bucket,
    BucketRetention,
    ObjectInfo,
    ObjectPage,
    RewriteResult,
)
from rotator.ratelimit import PACED_FIRST_BACKOFF

LIST_FIELDS = (
    "items(name,generation,kmsKeyName,size,timeCreated,timeDeleted,temporaryHold,eventBasedHold,"
    "retention,retentionExpirationTime,softDeleteTime,hardDeleteTime,customerEncryption),nextPageToken"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# A live object's resource with only these keys has nothing else to read (no hold,
# retention, deletion time or customer-supplied key): from_resource's short way.
_PLAIN = frozenset({"name", "generation", "kmsKeyName", "size", "timeCreated"})
# Answers Cloud Storage's request-rate guidance says to back off from: 408, 429, 5xx.
THROTTLING = (gexc.TooManyRequests, gexc.ServerError)


def connect(backend: GcpWorld) -> GcpStorage:
    """The adapter over a JSON API client whose every answer sets the backend's clock
    from Google's Date header (retention and hard-delete times are judged by the
    service's time, R16)."""
    local = bool(os.environ.get(STORAGE_EMULATOR))
    # google-cloud-storage 3.x otherwise GETs each bucket's metadata in the background
    # for tracing: one extra request per bucket that rotator never needs.
    os.environ.setdefault("DISABLE_GCS_PYTHON_CLIENT_OTEL_BUCKET_METADATA", "true")
    client = storage.Client(project=backend.project, credentials=backend.credentials.for_api(local))
    client._http.hooks.setdefault("response", []).append(
        lambda response, *_a, **_k: backend.clock.observe(response.headers.get("Date"))
    )
    return GcpStorage(client, backend.project, backend.retry)


class _Alone:
    """What `connect` needs, for an adapter on its own (a rewrite worker process): the
    credentials and endpoint found as the backend finds them, no clock to set (the
    worker judges retention by the apply process's time)."""

    def __init__(self, project: str, retry: RetryPolicy):
        from rotator.backends.gcp.connect import Credentials

        self.project, self.retry = project, retry
        self.credentials = Credentials(project)
        self.clock = self

    def observe(self, _date_header: str | None) -> None:
        pass


def connect_alone(recipe: dict[str, Any], on_retry: Callable[[BaseException, int], None]) -> GcpStorage:
    """The adapter a rewrite worker process sends its rewrites through (rotator.rewrite_workers),
    from the apply process's `worker_recipe()`: the same project, the same retries."""
    alone: Any = _Alone(recipe["project"], RetryPolicy(**recipe["retry"], on_retry=on_retry))  # a GcpWorld
    return connect(alone)


def throttling(error: BaseException) -> bool:
    return isinstance(error, THROTTLING) or getattr(error, "code", None) == 408


def _location(b: storage.Bucket) -> str:
    """A configurable dual-region reads as its multi-region (`location: US`) plus its two
    regions in customPlacementConfig.dataLocations; rotator names it by the regions
    (US-EAST1+US-WEST1), as the world file does. Its key sits in the multi-region (R7)."""
    regions = (b._properties.get("customPlacementConfig") or {}).get("dataLocations") or []
    return "+".join(r.upper() for r in regions) if len(regions) > 1 else (b.location or "").upper()


def to_bucket(b: storage.Bucket) -> Bucket:
    soft = b.soft_delete_policy.retention_duration_seconds if b.soft_delete_policy else 0
    period = b.retention_period
    return Bucket(
        name=b.name,
        location=_location(b),
        default_kms_key=b.default_kms_key_name or None,
        versioning=bool(b.versioning_enabled),
        soft_delete=timedelta(seconds=int(soft or 0)),
        retention=BucketRetention(timedelta(seconds=int(period)), bool(b.retention_policy_locked))
        if period
        else None,
    )


def to_object(blob: storage.Blob, *, state: str | None = None) -> ObjectInfo:
    return from_resource(blob.bucket.name, blob._properties, state=state, name=blob.name)


def from_resource(
    bucket: str, props: dict[str, Any], *, state: str | None = None, name: str | None = None
) -> ObjectInfo:
    """An object from its JSON resource, as listed (no Blob in between: a listing of a
    million objects would spend a dozen seconds building them)."""
    get = props.get
    if state is None and props.keys() <= _PLAIN:  # most listed objects: nothing else to read
        return ObjectInfo(
            bucket,
            name if name is not None else props["name"],
            int(get("generation", 0)),
            get("kmsKeyName") or None,
            int(get("size", 0)),
            _time(get("timeCreated")) or _EPOCH,
        )
    retention = get("retention") or {}
    if state is None:
        state = NONCURRENT if get("timeDeleted") else LIVE
    return ObjectInfo(
        bucket=bucket,
        name=name if name is not None else props["name"],
        generation=int(get("generation", 0)),
        kms_key_version=get("kmsKeyName") or None,
        size=int(get("size", 0)),
        created=_time(get("timeCreated")) or _EPOCH,
        state=state,
        temporary_hold=bool(get("temporaryHold")),
        event_based_hold=bool(get("eventBasedHold")),
        retention_mode=retention.get("mode"),
        retain_until=_time(retention.get("retainUntilTime")),
        hard_delete_time=_time(get("hardDeleteTime")),
        customer_supplied_key=bool(get("customerEncryption")),
        retention_expires=_time(get("retentionExpirationTime")),
    )


def _time(text: str | None) -> datetime | None:
    """RFC 3339 as the JSON API writes it. datetime.fromisoformat takes it in a
    microsecond; the client library's strptime path takes 30 (per listed object)."""
    if not text:
        return None
    try:
        # Python 3.10's fromisoformat does not read a trailing Z.
        value = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:  # more than microseconds, or another shape: the library's parser
        from google.cloud._helpers import _rfc3339_nanos_to_datetime

        return _rfc3339_nanos_to_datetime(text)
    return value if value.tzinfo is timezone.utc else value.astimezone(timezone.utc)


def _raw(_iterator: Any, item: dict[str, Any]) -> dict[str, Any]:
    return item


class GcpStorage:
    def __init__(self, client: storage.Client, project: str, retry: RetryPolicy):
        self.client, self.project = client, project
        # The client object rewrites go out on (size_pool: a leaner transport, when one
        # behaves as the default would); the others go out on `client`.
        self.rewrites = client
        self.retry = retry.for_calls_of("storage")  # retries as each call's declaration says
        # Told the bucket each time a write is throttled (408/429/5xx), so the engine can
        # judge that bucket's rate (Cloud Storage's guidance) while the retry waits.
        self.on_throttle: Callable[[str], object] | None = None

    def worker_recipe(self) -> dict[str, Any]:
        """How a rewrite worker process connects as this adapter did (connect_alone): the
        credentials and the endpoint come from the same environment."""
        policy = self.retry.policy
        retry = {k: getattr(policy, k) for k in ("initial", "maximum", "deadline", "attempts")}
        return {"connect": f"{__name__}:connect_alone", "project": self.project, "retry": retry}

    def report_retry(self, error: BaseException, attempt: int) -> None:
        """A retry a worker made, told as this adapter's own are (-v)."""
        self.retry.policy.on_retry(error, attempt)

    def size_pool(self, connections: int) -> None:
        """Ready the HTTP session for many rewrites at once: keep `connections`
        connections open (the requests library's default pool keeps 10 per host and
        drops the rest after each request, so at 64 in flight most rewrites would pay a
        new TCP and TLS connection), and read the proxy settings once instead of per
        request: with trust_env, requests scans the whole environment for proxies on
        every request, a quarter of rotator's CPU per rewrite (measured)."""
        import urllib.request

        from requests.adapters import HTTPAdapter

        session = self.client._http
        for scheme in ("https://", "http://"):
            session.mount(scheme, HTTPAdapter(pool_connections=4, pool_maxsize=connections))
        if not urllib.request.getproxies():  # behind a proxy, requests keeps deciding per URL
            bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
            if bundle:
                session.verify = bundle
            session.trust_env = False
        if self.rewrites is not self.client:  # sized again: the old pool's connections go
            self.rewrites.close()
            self.rewrites = self.client
        if lean_http.usable(session):  # a third less CPU per rewrite (backends/gcp/lean_http.py)
            lean = lean_http.LeanHttp(self.client._credentials, connections)
            self.rewrites = storage.Client(
                project=self.project,
                credentials=self.client._credentials,
                _http=lean,
                # The endpoint the listing client found (a local one: STORAGE_EMULATOR_HOST).
                client_options={"api_endpoint": self.client._connection.API_BASE_URL},
            )

    def list_buckets(self) -> Iterator[Bucket]:
        with translated("list_buckets", f"projects/{self.project}"):
            buckets = list(
                self.retry.request(
                    "list_buckets",
                    lambda: list(self.client.list_buckets(project=self.project, retry=None)),
                )
            )
        return iter([to_bucket(b) for b in buckets])

    def get_bucket(self, name: str) -> Bucket:
        with translated("get_bucket", f"gs://{name}"):
            return to_bucket(self.retry.request("get_bucket", self.client.get_bucket, name, retry=None))

    def test_iam_permissions(self, bucket: str, permissions: list[str]) -> list[str]:
        with translated("test_iam_permissions", f"gs://{bucket}"):
            held = self.retry.request(
                "test_iam_permissions",
                self.client.bucket(bucket).test_iam_permissions,
                permissions,
                retry=None,
            )
        return list(held)

    def patch_bucket_default_kms_key(self, name: str, kms_key: str | None) -> Bucket:
        bucket = self.client.bucket(name)
        bucket.default_kms_key_name = kms_key
        with translated("patch_bucket", f"gs://{name}"):
            self.retry.request("patch_bucket_default_kms_key", bucket.patch, retry=None)
        return to_bucket(bucket)

    def list_objects(
        self,
        bucket: str,
        *,
        versions: bool = False,
        soft_deleted: bool = False,
        page_token: str | None = None,
        page_size: int = 1000,
        start_offset: str | None = None,
        end_offset: str | None = None,
    ) -> ObjectPage:
        def one_page() -> ObjectPage:
            blobs = self.client.list_blobs(
                bucket,
                versions=versions or None,
                soft_deleted=soft_deleted or None,
                page_token=page_token,
                page_size=page_size,
                start_offset=start_offset,
                end_offset=end_offset,
                fields=LIST_FIELDS,
                retry=None,
            )
            blobs.item_to_value = _raw  # the JSON resources, not Blobs (see from_resource)
            page = next(blobs.pages)
            state = SOFT_DELETED if soft_deleted else None
            items = [from_resource(bucket, item, state=state) for item in page]
            return ObjectPage(items, blobs.next_page_token or None)

        with translated("list_objects", f"gs://{bucket}"):
            return self.retry.request("list_objects", one_page)

    def get_object(self, bucket: str, name: str, generation: int | None = None) -> ObjectInfo:
        with translated("get_object", f"gs://{bucket}/{name}"):
            blob = self.retry.request(
                "get_object",
                self.client.bucket(bucket).get_blob,
                name,
                generation=generation,
                retry=None,
            )
        if blob is None:
            from rotator import apierrors as api

            raise api.NotFound(f"object gs://{bucket}/{name} not found", resource=f"gs://{bucket}/{name}")
        return to_object(blob)

    def rewrite_object(
        self,
        bucket: str,
        name: str,
        *,
        destination_kms_key: str | None,
        if_generation_match: int | None,
        rewrite_token: str | None = None,
        max_bytes_rewritten_per_call: int | None = None,
    ) -> RewriteResult:
        b = self.rewrites.bucket(bucket)
        source = b.blob(name)
        # The key, never a version: the library drops a versioned kmsKeyName silently.
        dest = b.blob(name, kms_key_name=destination_kms_key)

        def call() -> tuple[str | None, int, int]:
            if if_generation_match is None:
                # Without a precondition a retry could clobber a concurrent write.
                return dest.rewrite(source, token=rewrite_token, retry=None)
            return dest.rewrite(
                source, token=rewrite_token, if_generation_match=if_generation_match, retry=None
            )

        where = f"gs://{bucket}/{name}"
        policy = self.retry
        listener = self.on_throttle
        if listener is not None:

            def on_retry(error: BaseException, attempt: int) -> None:
                self.retry.policy.on_retry(error, attempt)
                if throttling(error):  # "slow down", not a dropped connection
                    listener(bucket)

            # The bucket's rate paces the retries: a short first backoff (PACED_FIRST_BACKOFF),
            # and three more attempts, which make up the seconds it saves: the same patience
            # in a storm (about 200 s of backoff in all, against about 185 s from 0.5 s).
            policy0 = self.retry.policy
            paced = replace(
                policy0, on_retry=on_retry, initial=PACED_FIRST_BACKOFF, attempts=policy0.attempts + 3
            )
            policy = replace(self.retry, policy=paced)
        with translated("rewrite_object", where):
            token, done_bytes, total = policy.request(
                "rewrite_object", call, preconditioned=if_generation_match is not None
            )
        if token:
            return RewriteResult(False, total, done_bytes, token, None)
        return RewriteResult(True, total, done_bytes, None, to_object(dest))

    # -- object contents: what rotator itself keeps in a bucket (plans, journals, locks) ----
    def upload_bytes(self, bucket: str, name: str, data: bytes, *, if_generation_match: int | None) -> int:
        blob = self.client.bucket(bucket).blob(name)
        kwargs: dict[str, Any] = (
            {} if if_generation_match is None else {"if_generation_match": if_generation_match}
        )

        def call() -> None:
            blob.upload_from_string(data, content_type="application/json", retry=None, **kwargs)

        with translated("upload_object", f"gs://{bucket}/{name}"):
            # Retried: a create whose answer was lost answers 412 the second time, and the
            # caller reads the object back to tell its own write from another's.
            self.retry.request("upload_bytes", call)
        return int(blob.generation or 0)

    def download_bytes(self, bucket: str, name: str) -> tuple[bytes, int]:
        where = f"gs://{bucket}/{name}"
        with translated("download_object", where):
            blob = self.retry.request("download_bytes", self.client.bucket(bucket).get_blob, name, retry=None)
            if blob is None:
                from rotator import apierrors as api

                raise api.NotFound(f"object {where} not found", resource=where)
            data = self.retry.request(
                "download_bytes",
                blob.download_as_bytes,
                if_generation_match=blob.generation,
                retry=None,
            )
        return bytes(data), int(blob.generation or 0)

    def delete_object(self, bucket: str, name: str, *, if_generation_match: int | None) -> None:
        kwargs: dict[str, Any] = (
            {} if if_generation_match is None else {"if_generation_match": if_generation_match}
        )
        with translated("delete_object", f"gs://{bucket}/{name}"):
            self.retry.request(
                "delete_object", self.client.bucket(bucket).delete_blob, name, retry=None, **kwargs
            )

    def list_names(self, bucket: str, prefix: str) -> list[str]:
        with translated("list_objects", f"gs://{bucket}/{prefix}"):
            return self.retry.request(
                "list_names",
                lambda: [b.name for b in self.client.list_blobs(bucket, prefix=prefix, retry=None)],
            )

    def project_number(self) -> str:
        """From the project's Cloud Storage service agent, service-N@gs-project-accounts."""
        with translated("get_service_account", f"projects/{self.project}"):
            email = self.retry.request(
                "get_service_account",
                self.client.get_service_account_email,
                project=self.project,
                retry=None,
            )
        return str(email).split("@", 1)[0].removeprefix("service-")
