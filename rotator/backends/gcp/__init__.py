"""The real backend: Google Cloud through the official google-cloud-* clients.

Every client call goes through RetryPolicy (tenacity) and errors.translated, so the
engine sees rotator.apierrors only. Each API can be pointed at a local server (SPEC
"The real backend's endpoints").
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future
from contextlib import AbstractContextManager
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rotator.backends.gcp.batch import GcpStorageBatch
from rotator.backends.gcp.connect import Credentials, grpc_transport
from rotator.backends.gcp.inventory import GcpKeyInventory
from rotator.backends.gcp.kms import GcpKms
from rotator.backends.gcp.logs import GcpLogs
from rotator.backends.gcp.retry import RetryPolicy
from rotator.backends.gcp.shared import GcpWorld
from rotator.keylock import one_apply_per_key
from rotator.kms_inventory import ORGANIZATION_ENV
from rotator.services import SERVICES, part

if TYPE_CHECKING:
    from rotator.services.storage.gcp import GcpStorage


class ServiceClock:
    """The service's time, not this machine's: anchored on the Date header of Google's
    last HTTP answer and carried forward with a monotonic clock. Retention expiry and
    hard-delete times are judged by it, so a skewed local clock can never make a
    retained object look free (R16). Before any answer: the local UTC time."""

    def __init__(self) -> None:
        self._anchor: tuple[datetime, float] | None = None

    def observe(self, date_header: str | None) -> None:
        if not date_header:
            return
        try:
            when = parsedate_to_datetime(date_header)
        except (TypeError, ValueError):
            return
        self._anchor = (when.astimezone(timezone.utc), time.monotonic())

    def now(self) -> datetime:
        if self._anchor is None:
            return datetime.now(timezone.utc)
        when, at = self._anchor
        return when + timedelta(seconds=time.monotonic() - at)


class GcpBackend:
    kind = "gcp"

    def __init__(self, project: str | None, *, retry: RetryPolicy | None = None):
        self.credentials = Credentials(project)
        self.project = self.credentials.project()
        self.retry = retry or RetryPolicy()
        self.clock = ServiceClock()
        self.kms = GcpKms(self._kms_client(), self.retry)
        # Made at once, unlike the other services' (below): every run reads Cloud Storage.
        self.storage: GcpStorage = part("storage", "gcp").connect(self)
        # One cheap call that also sets the clock from Google's Date header.
        number = self.storage.project_number()
        self.project_number = os.environ.get("ROTATOR_PROJECT_NUMBER") or number
        self.organization: str | None = os.environ.get(ORGANIZATION_ENV) or None
        self.inventory = self._key_inventory()
        self._batch: GcpStorageBatch | None = None
        self._logs: GcpLogs | None = None

    # Each other service's adapter (rotator/services/<name>/gcp.py) under the service's
    # name, made (and its client library imported) on first use: a plan with --services
    # storage, or a step that touches only Cloud Storage and KMS, never pays for the
    # others' imports (about 0.3 s per process start together). Typed where it is used,
    # by the service's spec (`SPEC.api(backend)`).
    def __getattr__(self, name: str) -> object:
        """Called only for an attribute not set yet: a service's adapter, made once (or
        taken from `prepare`'s thread, waiting for it if it is still being made)."""
        if name not in SERVICES:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        coming = self.__dict__.get("_coming", {}).pop(name, None)
        adapter = coming.result() if coming is not None else None
        if adapter is None:  # not prepared, or the thread failed: made here, as without it
            adapter = self._connect(name)
        setattr(self, name, adapter)
        return adapter

    def _connect(self, name: str) -> object:
        world: GcpWorld = self  # what each adapter is made from (checked here by mypy)
        return part(name, "gcp").connect(world)

    def prepare(self, services: Iterable[str]) -> None:
        """Make the adapters of `services` on a thread of their own, in the order given:
        a scan calls this before it lists Cloud Storage, so importing the other services'
        client libraries (about 0.3 s of CPU together) runs while the listing waits on
        the network, not after it. Made once each. Where the thread fails (an error of
        the service, or an import that clashed with one on the caller's thread), the
        adapter is made again where it is first used, and an error raised there, as
        without this."""
        coming: dict[str, Future[object | None]] = self.__dict__.setdefault("_coming", {})
        todo = [n for n in services if n in SERVICES and n not in self.__dict__ and n not in coming]
        if not todo:
            return
        made: dict[str, Future[object | None]] = {name: Future() for name in todo}
        coming.update(made)

        def connect_all() -> None:
            for name, future in made.items():
                future.set_running_or_notify_cancel()
                try:
                    future.set_result(self._connect(name))
                except BaseException:  # made again on the thread that uses it
                    future.set_result(None)

        # Not a daemon: a run that ends meanwhile waits for the imports (well under a
        # second) rather than interrupting them at interpreter shutdown.
        threading.Thread(target=connect_all, name="rotator-connect").start()

    # -- clients -------------------------------------------------------------------------
    def _kms_client(self) -> Any:
        from google.cloud import kms_v1
        from google.cloud.kms_v1.services.key_management_service.transports import (
            KeyManagementServiceGrpcTransport,
        )

        return kms_v1.KeyManagementServiceClient(
            transport=grpc_transport(KeyManagementServiceGrpcTransport, "kms", self.credentials)
        )

    def _key_inventory(self) -> GcpKeyInventory:
        """Cloud KMS Inventory: the per-key summary needs no organization; the search
        needs one (ROTATOR_ORGANIZATION) and is skipped without it (the plan says so)."""
        from google.cloud import kms_inventory_v1
        from google.cloud.kms_inventory_v1.services.key_dashboard_service.transports import (
            KeyDashboardServiceGrpcTransport,
        )
        from google.cloud.kms_inventory_v1.services.key_tracking_service.transports import (
            KeyTrackingServiceGrpcTransport,
        )

        tracking = kms_inventory_v1.KeyTrackingServiceClient(
            transport=grpc_transport(KeyTrackingServiceGrpcTransport, "inventory", self.credentials)
        )
        dashboard = kms_inventory_v1.KeyDashboardServiceClient(
            transport=grpc_transport(KeyDashboardServiceGrpcTransport, "inventory", self.credentials)
        )
        return GcpKeyInventory(tracking, dashboard, self.organization, self.retry)

    @property
    def logs(self) -> GcpLogs:
        """Cloud Logging, made on first use (only apply --watch reads it)."""
        if self._logs is None:
            from google.cloud import logging as cloud_logging

            client = cloud_logging.Client(project=self.project, credentials=self.credentials.adc())
            self._logs = GcpLogs(client, self.project, self.retry)
        return self._logs

    @property
    def batch(self) -> GcpStorageBatch:
        """Made on first use: only --engine batch needs it (and its credentials)."""
        if self._batch is None:
            self._batch = GcpStorageBatch(self._batch_client(), self.storage.client, self.project, self.retry)
        return self._batch

    def _batch_client(self) -> Any:
        from google.cloud import storagebatchoperations_v1
        from google.cloud.storagebatchoperations_v1.services.storage_batch_operations.transports import (
            StorageBatchOperationsGrpcTransport,
        )

        return storagebatchoperations_v1.StorageBatchOperationsClient(
            transport=grpc_transport(StorageBatchOperationsGrpcTransport, "storage_batch", self.credentials)
        )

    def primary_of(self, key: str) -> int | None:
        return self.kms.get_crypto_key(key).primary

    # -- Backend protocol ---------------------------------------------------------------
    def identity(self) -> str:
        """The ADC account (a service account's email), or what kind of credentials."""
        creds = self.credentials._adc
        if creds is None:
            return "anonymous (local endpoints)"
        email = getattr(creds, "service_account_email", None)
        return str(email) if email and email != "default" else f"ADC {type(creds).__name__}"

    def for_project(self, project: str) -> GcpBackend:
        """The same credentials and endpoints, another project (made once)."""
        if project == self.project:
            return self
        views: dict[str, GcpBackend] = self.__dict__.setdefault("_projects", {})
        if project not in views:
            views[project] = GcpBackend(project, retry=self.retry)
        return views[project]

    def describe(self) -> dict[str, str]:
        return {"backend": "gcp", "project": self.project}

    def apply_lock(self, key: str) -> AbstractContextManager[None]:
        """One apply per key at a time on this machine: a file lock in the user's cache.
        Runs on several machines coordinate through a plan kept in a bucket (its lock)."""
        folder = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rotator" / "locks"
        folder.mkdir(parents=True, exist_ok=True)
        return one_apply_per_key(key, lambda digest: folder / digest)
