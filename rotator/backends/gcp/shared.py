"""What the services' gcp adapters (rotator/services/<service>/gcp.py) share: the
unset-argument marker, how long a long-running operation may take, and how the
Google resources' timestamps, locations and recorded key versions are read.

Where an API does not say which key version a resource was encrypted under, the
version is left None and the inventory treats the resource as pinning every version
of its key (the safe side). Revisions and functions that rotator itself deploys carry
the version in an annotation / label, so they pin exactly one.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, Protocol

from rotator.backends.gcp.connect import Credentials
from rotator.backends.gcp.inventory import GcpKeyInventory
from rotator.backends.gcp.retry import RetryPolicy
from rotator.names import is_version_of, version_name

OPERATION_TIMEOUT = 900.0
UNSET: Any = object()
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

PrimaryOf = Callable[[str], int | None]


def output_time(value: Any) -> datetime | None:
    """An output-only timestamp; an unset one (None, or the epoch) is not known."""
    return value if value and value.timestamp() > 0 else None


def recorded_version(key: str | None, recorded: str | None) -> str | None:
    """The version an annotation/label records: a number, or a full version name."""
    if not key or not recorded:
        return None
    if recorded.isdigit():
        return version_name(key, recorded)
    return recorded if is_version_of(recorded, key) else None


class DateObserver(Protocol):
    """The backend's clock, set from the Date header of Google's answers (ServiceClock)."""

    def observe(self, date_header: str | None) -> None: ...


class GcpWorld(Protocol):
    """What each service's adapter is made from (its `connect`): the parts of the gcp
    backend it shares with the others. GcpBackend has them; the adapters name this
    protocol rather than the backend, so no service imports the backend that loops over it."""

    @property
    def credentials(self) -> Credentials: ...
    @property
    def project(self) -> str: ...
    @property
    def retry(self) -> RetryPolicy: ...
    @property
    def inventory(self) -> GcpKeyInventory: ...
    @property
    def clock(self) -> DateObserver: ...

    def primary_of(self, key: str) -> int | None: ...
