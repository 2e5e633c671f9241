"""One project's scan for one key, as each service's scanner sees it
(rotator/services/<name>/uses.py: `scan(s)`), and what `report` reads once for all its
keys (ScanCache)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar, cast

from rotator.backends.base import ReadOnlyBackend
from rotator.model import Bucket, Listing, unreachable_of
from rotator.pins import VersionUse
from rotator.services import REGISTRY
from rotator.windows import Windows

ProgressFn = Callable[[str, int], None]
T = TypeVar("T")


@dataclass
class Scan:
    """What a service's scanner reads (the project, the key and its windows) and fills
    (the key's uses; Cloud Storage also the buckets it listed)."""

    backend: ReadOnlyBackend
    key: str
    uses: dict[int, VersionUse]
    primary: int | None
    now: datetime
    windows: Windows
    progress: ProgressFn | None = None
    cache: ScanCache | None = None
    buckets: list[Bucket] = field(default_factory=list)
    default_for: list[str] = field(default_factory=list)  # buckets whose default key is the key


def elsewhere(name: str, backend: ReadOnlyBackend) -> bool:
    """A resource named under another project than the one inspected: that project's
    own inspection (--project) accounts for it, not this one's."""
    parts = name.split("/")
    return (
        len(parts) > 1
        and parts[0] == "projects"
        and parts[1] not in (backend.project, backend.project_number)
    )


class ScanCache:
    """What `report` reads once per project for all its keys, not once per key: each
    bucket's objects (as bucket_uses groups, bounded by versions, not objects) and each
    list of the other services. A plan reads the world afresh (no cache)."""

    def __init__(self) -> None:
        self._views: dict[str, _ListedOnce] = {}
        self._answers: dict[tuple[str, ...], Any] = {}

    def view(self, backend: ReadOnlyBackend) -> ReadOnlyBackend:
        if backend.project not in self._views:
            self._views[backend.project] = _ListedOnce(backend)
        return cast(ReadOnlyBackend, self._views[backend.project])

    def memo(self, backend: ReadOnlyBackend, what: tuple[str, ...], read: Callable[[], T]) -> T:
        """`read()` once per project and `what` (e.g. one bucket's objects)."""
        key = (backend.project, *what)
        if key not in self._answers:
            self._answers[key] = read()
        return cast(T, self._answers[key])


class _Once:
    """A service whose `names` calls are made once per arguments; the rest pass through."""

    def __init__(self, inner: Any, names: frozenset[str]):
        self._inner, self._names = inner, names
        self._answers: dict[tuple[str, tuple[Any, ...]], Any] = {}

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if name not in self._names:
            return value

        def once(*args: Any) -> Any:
            if (name, args) not in self._answers:
                found = value(*args)
                if name.startswith("list_"):  # an iterator is read once: keep what it gave
                    found = Listing(list(found), unreachable=unreachable_of(found))
                self._answers[(name, args)] = found
            return self._answers[(name, args)]

        return once


class _ListedOnce:
    """A project as ScanCache shows it: the same, with every list a scan makes read once
    (each service's spec names its own: `listed_once`)."""

    def __init__(self, backend: ReadOnlyBackend):
        self._backend = backend
        for service in REGISTRY:
            setattr(self, service.name, _Once(getattr(backend, service.name), service.listed_once))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)
