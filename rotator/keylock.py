"""One apply per key at a time on a machine: the backends' apply lock (`Backend.apply_lock`).

A file lock (flock) is released by the kernel when a killed apply dies, so a crash
never leaves a stale lock; a world kept only in memory (tests) locks in memory. Only
where the lock file lives differs between backends. Across machines, the gs:// plan's
lock object (places/gcslock.py) is the lock.
"""

from __future__ import annotations

import fcntl
import hashlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rotator.errors import Refused

_memory_locks: dict[tuple[int, str], threading.Lock] = {}


def _busy(key: str) -> Refused:
    return Refused(
        f"another rotator apply is running on {key}; wait for it to finish "
        "(`rotator status PLAN.json`) before starting a second one",
        resource=key,
    )


@contextmanager
def one_apply_per_key(
    key: str, lock_file: Callable[[str], str | Path] | None, scope: int = 0
) -> Iterator[None]:
    """Hold the lock of `key` for the block, or refuse (exit 3) when another apply holds it.
    `lock_file(digest)` names the file to flock; None locks in memory, per `scope`."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    if lock_file is None:
        lock = _memory_locks.setdefault((scope, digest), threading.Lock())
        if not lock.acquire(blocking=False):
            raise _busy(key)
        try:
            yield
        finally:
            lock.release()
        return
    with open(lock_file(digest), "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _busy(key) from None
        yield
