"""The fake's event log: what a service's own log would show when it fails because of
its key (R14, R15, R22, R41), recorded when an application call fails. `apply --watch`
reads it as the real backend reads Cloud Logging (R13.4)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from rotator import apierrors as api
from rotator.backends.fake.store import Store
from rotator.model import LogEntry
from rotator.timeutil import format_time, parse_time

F = TypeVar("F", bound=Callable[..., Any])
CMEK_RULES = {"R5", "R14", "R15", "R22", "R41"}


def logs_key_failures(
    service: str, where: Callable[..., str] = lambda name, *_a, **_k: name
) -> Callable[[F], F]:
    """Wrap an application call of a fake service: a key-caused failure is logged, then
    raised. `where` names the resource from the call's arguments."""

    def wrap(method: F) -> F:
        @functools.wraps(method)
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, *args, **kwargs)
            except api.ApiError as e:
                if e.rule in CMEK_RULES:
                    record(self.store, service, where(*args, **kwargs), e.message)
                raise

        return call  # type: ignore[return-value]

    return wrap


def record(store: Store, service: str, resource: str, message: str) -> None:
    with store.write() as c:
        c.execute(
            "INSERT INTO events(time, service, resource, message) VALUES(?,?,?,?)",
            (format_time(store.now()), service, resource, message),
        )


class FakeLogs:
    def __init__(self, store: Store):
        self.store = store

    def key_failures(self, since: datetime) -> list[LogEntry]:
        with self.store.read() as c:
            rows = c.execute(
                "SELECT * FROM events WHERE time >= ? ORDER BY rowid", (format_time(since),)
            ).fetchall()
        return [LogEntry(parse_time(r["time"]), r["service"], r["resource"], r["message"]) for r in rows]
