"""What a place is (the plan, its journal, its audit record, the apply lock), whatever
holds it: the protocols the local and the Cloud Storage places meet."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, Protocol

from rotator.errors import RotatorError


def is_gcs(path: str) -> bool:
    return path.startswith("gs://")


def stamp() -> str:
    """Now, in UTC to the microsecond: names of moved journals and audit records."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class JournalWriter(Protocol):
    def write(self, line: str, *, sync: bool) -> None: ...

    def close(self) -> None: ...


class Place(Protocol):
    name: str

    def read_plan(self) -> bytes: ...

    def write_plan(self, data: bytes) -> None: ...

    def journal_name(self) -> str: ...

    def journal_lines(self) -> list[str] | None:
        """The journal's lines, oldest first (None: no journal)."""
        ...

    def journal_writer(self) -> JournalWriter: ...

    def append_audit(self, record: dict[str, Any]) -> None: ...

    def move_old_journal(self) -> str | None: ...

    def lock(self, emit: Callable[[str], None], on_lost: Callable[[RotatorError], None] | None = None) -> Any:
        """The plan's apply lock, held for the block; `on_lost` is called (from another
        thread) if it is lost to another apply while held."""
        ...

    def lock_holder(self) -> dict[str, Any] | None:
        """Who holds the apply lock, by the lock's own record, if held and not expired
        (None: not held, or a lock that keeps no record, such as a local file lock)."""
        ...
