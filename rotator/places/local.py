"""A plan on local disk: PLAN.json, PLAN.json.journal, PLAN.json.audit.jsonl; its apply
lock is the backend's per-machine lock on the key (keylock.py)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rotator.errors import BadInput, RotatorError
from rotator.places.kinds import JournalWriter, stamp


class _FileWriter:
    def __init__(self, path: str):
        _drop_torn_tail(path)
        self._fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 - lives with the journal

    def write(self, line: str, *, sync: bool) -> None:
        self._fh.write(line + "\n")
        self._fh.flush()
        if sync:
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()


def _drop_torn_tail(path: str) -> None:
    """A run killed mid-write leaves half a line; cut it so the next event starts clean."""
    if not os.path.exists(path):
        return
    with open(path, "rb+") as fh:
        data = fh.read()
        if data and not data.endswith(b"\n"):
            fh.truncate(data.rfind(b"\n") + 1)


class LocalPlace:
    def __init__(self, path: str):
        self.name = path

    def read_plan(self) -> bytes:
        try:
            with open(self.name, "rb") as fh:
                return fh.read()
        except FileNotFoundError:
            raise BadInput(f"plan file {self.name} not found", resource=self.name) from None
        except IsADirectoryError:
            raise BadInput(f"plan file {self.name} is a directory", resource=self.name) from None
        except OSError as e:
            raise BadInput(f"plan file {self.name}: {e.strerror}", resource=self.name) from None

    def write_plan(self, data: bytes) -> None:
        tmp = f"{self.name}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, self.name)

    def journal_name(self) -> str:
        return f"{self.name}.journal"

    def journal_lines(self) -> list[str] | None:
        path = self.journal_name()
        if not os.path.exists(path):
            return None
        with open(path, encoding="utf-8") as fh:
            return fh.read().splitlines()

    def journal_writer(self) -> JournalWriter:
        return _FileWriter(self.journal_name())

    def append_audit(self, record: dict[str, Any]) -> None:
        with open(f"{self.name}.audit.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, sort_keys=True, default=str) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def move_old_journal(self) -> str | None:
        path = self.journal_name()
        if not os.path.exists(path):
            return None
        dest = f"{path}.{stamp().replace(':', '')}.old"
        os.replace(path, dest)
        return dest

    def lock_holder(self) -> dict[str, Any] | None:
        return None  # the kernel's file lock keeps no record of its holder

    @contextmanager
    def lock(
        self, emit: Callable[[str], None], on_lost: Callable[[RotatorError], None] | None = None
    ) -> Iterator[None]:
        yield  # the backend's per-key lock is the local one
