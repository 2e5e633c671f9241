"""Cloud Run through google-cloud-run (run_v2), as the Backend protocol needs it:
services with their revisions, each revision's key and (for revisions rotator deployed)
the key version it records; a new revision deployed under a key's primary (R43)."""

from __future__ import annotations

from typing import Any

from rotator.backends.gcp.connect import grpc_transport
from rotator.backends.gcp.errors import tested_permissions, translated
from rotator.backends.gcp.retry import RetryPolicy
from rotator.backends.gcp.shared import (
    EPOCH,
    OPERATION_TIMEOUT,
    UNSET,
    GcpWorld,
    PrimaryOf,
    output_time,
    recorded_version,
)
from rotator.model import RunRevision, RunService

RUN_VERSION_ANNOTATION = "rotator.kms-key-version"


def connect(backend: GcpWorld) -> GcpRun:
    """The adapter over the Services and Revisions clients (their library imported here,
    on first use: a plan that never reads Cloud Run never loads it)."""
    from google.cloud import run_v2
    from google.cloud.run_v2.services.revisions.transports import RevisionsGrpcTransport
    from google.cloud.run_v2.services.services.transports import ServicesGrpcTransport

    services = run_v2.ServicesClient(
        transport=grpc_transport(ServicesGrpcTransport, "run", backend.credentials)
    )
    revisions = run_v2.RevisionsClient(
        transport=grpc_transport(RevisionsGrpcTransport, "run", backend.credentials)
    )
    return GcpRun(services, revisions, backend.project, backend.retry, backend.primary_of)


class GcpRun:
    def __init__(
        self, services: Any, revisions: Any, project: str, retry: RetryPolicy, primary_of: PrimaryOf
    ):
        self.services, self.revisions, self.project = services, revisions, project
        self.retry = retry.for_calls_of("run")  # retries as each call's declaration says
        self.primary_of = primary_of

    def _service(self, s: Any) -> RunService:
        # A revision may be listed more than once (its share by "latest" and its tag at
        # 0%): shares add up, and a tag serves through its own URL whatever its share.
        latest = s.latest_ready_revision.rsplit("/", 1)[-1]
        traffic: dict[str, int] = {}
        tags: dict[str, list[str]] = {}
        by_name: set[str] = set()
        for t in s.traffic_statuses:
            name = t.revision.rsplit("/", 1)[-1] or latest
            traffic[name] = traffic.get(name, 0) + t.percent
            if t.tag:
                tags.setdefault(name, []).append(t.tag)
            elif t.percent and "REVISION" in str(t.type_):
                by_name.add(name)
        with translated("list_revisions", s.name):
            revs = list(
                self.retry.request("list_revisions", self.revisions.list_revisions, parent=s.name, retry=None)
            )
        revs.sort(key=lambda r: r.create_time or EPOCH)
        out = []
        for r in revs:
            short = r.name.rsplit("/", 1)[1]
            key = r.encryption_key or None
            out.append(
                RunRevision(
                    short,
                    key,
                    recorded_version(key, r.annotations.get(RUN_VERSION_ANNOTATION)),
                    traffic.get(short, 0),
                    tags=tuple(tags.get(short, ())),
                    pinned=short in by_name,
                    deployed=output_time(r.create_time),  # "The creation time."
                )
            )
        action = (
            "SHUTDOWN" if "SHUTDOWN" in str(s.template.encryption_key_revocation_action) else "PREVENT_NEW"
        )
        return RunService(s.name, action, tuple(out))

    def list_services(self, region: str) -> list[RunService]:
        # "Location must be a valid Google Cloud region, and cannot be the "-" wildcard."
        parent = f"projects/{self.project}/locations/{region}"
        with translated("list_services", parent):
            services = list(
                self.retry.request("list_services", self.services.list_services, parent=parent, retry=None)
            )
        return [self._service(s) for s in services]

    def get_service(self, name: str) -> RunService:
        with translated("get_service", name):
            return self._service(
                self.retry.request("get_service", self.services.get_service, name=name, retry=None)
            )

    def test_iam_permissions(self, resource: str, permissions: list[str]) -> list[str]:
        return tested_permissions(self.retry, self.services, resource, permissions)

    def update_service(self, name: str, *, kms_key: str | None = UNSET) -> RunService:
        """A new revision: the template changes (key, and the primary it is deployed
        under, recorded in an annotation so the inventory knows the version, R43)."""
        with translated("get_service", name):
            svc = self.retry.request("get_service", self.services.get_service, name=name, retry=None)
        template = svc.template
        if kms_key is not UNSET:
            template.encryption_key = kms_key or ""
        key = template.encryption_key or None
        primary = self.primary_of(key) if key else None
        if primary is not None:
            template.annotations[RUN_VERSION_ANNOTATION] = str(primary)
        template.revision = ""  # let Cloud Run name the new revision
        with translated("update_service", name):
            op = self.retry.request("update_service", self.services.update_service, service=svc, retry=None)
            op.result(timeout=OPERATION_TIMEOUT)
        return self.get_service(name)
