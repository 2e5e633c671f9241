"""Is an apply still running? Decided here only, for the journal (`status`, which
other plans are unfinished), and for the gs:// apply lock (may it be taken over).

Only this host can look at a process; an apply on another host is alive while its lock
in the bucket is live (docs/state.md).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, Protocol


def process_alive(pid: int, host: str | None) -> bool:
    """Is the apply process `pid` on `host` still running? Only this host can tell."""
    if host != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def _expires(held: dict[str, Any]) -> float:
    try:
        return float(held.get("expires", 0))
    except (TypeError, ValueError):
        return 0.0  # unreadable: long expired


def lock_expired(held: dict[str, Any]) -> bool:
    """Has the lock record's `expires` passed (an unreadable one counts as passed)?"""
    return _expires(held) < time.time()


def lock_dead_because(held: dict[str, Any]) -> str | None:
    """Why a held apply lock may be taken over (it expired, or its process on this host
    is gone), or None when its apply may be alive."""
    if lock_expired(held):
        return f"it expired at {expiry_text(_expires(held))}"
    host = held.get("host")
    if host == socket.gethostname() and not process_alive(int(held.get("pid") or 0), host):
        return "its process is gone"
    return None


def lock_is_live(held: dict[str, Any]) -> bool:
    """May the apply holding this lock be running (not expired, not a dead process here)?"""
    return lock_dead_because(held) is None


def expiry_text(expires: Any) -> str:
    """A lock's `expires` (seconds since the epoch) as UTC time, '?' when unreadable."""
    try:
        return datetime.fromtimestamp(float(expires), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (TypeError, ValueError):
        return "?"


class LockRecords(Protocol):
    def lock_holder(self) -> dict[str, Any] | None:
        """Who holds the plan's apply lock, if a lock record says so and it has not expired."""
        ...


def apply_alive(place: LockRecords) -> Callable[[int, str | None], bool]:
    """Is the apply that last ran the plan at `place` alive? This host can look at the
    process; for another host only a live lock record beside the plan tells."""

    def alive(pid: int, host: str | None) -> bool:
        if host == socket.gethostname():
            return process_alive(pid, host)
        held = place.lock_holder()
        return held is not None and held.get("pid") == pid and held.get("host") == host

    return alive
