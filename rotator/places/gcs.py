"""A plan in Cloud Storage, `gs://BUCKET/PATH.json`, and its state as objects beside it
(the layout is in rotator/places/__init__.py): an apply started on one machine can be
resumed on another (docs/state.md)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rotator import apierrors as api
from rotator.errors import BadInput, Refused, RotatorError
from rotator.liveness import lock_expired
from rotator.places.gcslock import GcsLock, parse_lock
from rotator.places.kinds import JournalWriter, stamp

if TYPE_CHECKING:
    from rotator.services.storage.api import StorageApi

# Unsynced journal events (rewrite checkpoints) are written at least this often.
GCS_FLUSH_SECONDS = 2.0


class _GcsWriter:
    """Journal lines as objects: each flush creates the next numbered object, only if it
    does not exist yet (ifGenerationMatch=0), so two writers can never interleave."""

    def __init__(self, place: GcsPlace, next_seq: int):
        self.place, self.seq = place, next_seq
        self.buffer: list[str] = []
        self.last_flush = time.monotonic()

    def write(self, line: str, *, sync: bool) -> None:
        self.buffer.append(line)
        if sync or time.monotonic() - self.last_flush >= GCS_FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        self.last_flush = time.monotonic()
        if not self.buffer:
            return
        held = self.place.held_lock
        if held is not None and held.check_fence() and held.lost is not None:
            # Another apply owns the plan now, or may soon (a renewal failed for too long):
            # not one more event from this one.
            raise Refused(held.lost.message, resource=held.lost.resource)
        name = f"{self.place.journal_prefix()}{self.seq:08d}.jsonl"
        data = ("\n".join(self.buffer) + "\n").encode()
        try:
            self.place.create(name, data)
        except api.PreconditionFailed:
            raise Refused(
                f"{self.place.name}: another apply wrote journal batch {self.seq} first; two applies "
                "of one plan never interleave: stop this one and look at `rotator status`",
                resource=self.place.name,
            ) from None
        self.seq += 1
        self.buffer = []

    def close(self) -> None:
        self.flush()


class GcsPlace:
    def __init__(self, url: str, storage: StorageApi):
        bucket, _, obj = url.removeprefix("gs://").partition("/")
        if not bucket or not obj or obj.endswith("/"):
            raise BadInput(f"{url}: a plan in Cloud Storage is gs://BUCKET/PATH.json", resource=url)
        self.name, self.bucket, self.object, self.storage = url, bucket, obj, storage
        # The apply lock this process holds on the plan, while it holds it: a journal
        # write after the lock was lost to another apply is refused.
        self.held_lock: GcsLock | None = None

    def create(self, name: str, data: bytes) -> int:
        """Create an object only if it does not exist (ifGenerationMatch=0). A retried
        create whose first answer was lost finds its own object: the same bytes are ours."""
        try:
            return self.storage.upload_bytes(self.bucket, name, data, if_generation_match=0)
        except api.PreconditionFailed:
            got = self.get(name)
            if got is not None and got[0] == data:
                return got[1]
            raise

    def get(self, name: str) -> tuple[bytes, int] | None:
        try:
            return self.storage.download_bytes(self.bucket, name)
        except api.NotFound:
            return None

    def read_plan(self) -> bytes:
        try:
            got = self.get(self.object)
        except api.ApiError as e:
            raise BadInput(f"plan {self.name}: {e}", resource=self.name) from None
        if got is None:
            raise BadInput(f"plan {self.name} not found", resource=self.name)
        return got[0]

    def write_plan(self, data: bytes) -> None:
        self.storage.upload_bytes(self.bucket, self.object, data, if_generation_match=None)

    def journal_name(self) -> str:
        return f"gs://{self.bucket}/{self.journal_prefix()}"

    def journal_prefix(self) -> str:
        return f"{self.object}.journal/"

    def _journal_objects(self) -> list[str]:
        try:
            names = self.storage.list_names(self.bucket, self.journal_prefix())
        except api.NotFound:
            raise BadInput(f"{self.name}: bucket {self.bucket} not found", resource=self.name) from None
        return sorted(n for n in names if n.endswith(".jsonl") and "/" not in n[len(self.journal_prefix()) :])

    def journal_lines(self) -> list[str] | None:
        names = self._journal_objects()
        if not names:
            return None
        lines: list[str] = []
        for name in names:
            got = self.get(name)
            if got is not None:
                lines += got[0].decode("utf-8").splitlines()
        return lines

    def journal_writer(self) -> JournalWriter:
        names = self._journal_objects()
        last = int(names[-1].rsplit("/", 1)[1].split(".")[0]) if names else 0
        return _GcsWriter(self, last + 1)

    def append_audit(self, record: dict[str, Any]) -> None:
        name = f"{self.object}.audit/{stamp().replace(':', '')}-{uuid.uuid4().hex[:8]}.json"
        self.create(name, json.dumps(record, sort_keys=True, default=str).encode())

    def move_old_journal(self) -> str | None:
        names = self._journal_objects()
        if not names:
            return None
        dest = f"{self.object}.journal.{stamp().replace(':', '')}.old/"
        for name in names:
            got = self.get(name)
            if got is None:
                continue
            self.create(dest + name.rsplit("/", 1)[1], got[0])
            self.storage.delete_object(self.bucket, name, if_generation_match=got[1])
        return f"gs://{self.bucket}/{dest}"

    def lock_holder(self) -> dict[str, Any] | None:
        """Who holds the apply lock, if it is held and not expired."""
        got = self.get(f"{self.object}.lock")
        if got is None:
            return None
        held = parse_lock(got[0])
        return None if lock_expired(held) else held

    @contextmanager
    def lock(
        self, emit: Callable[[str], None], on_lost: Callable[[RotatorError], None] | None = None
    ) -> Iterator[None]:
        lock = GcsLock(self, emit, on_lost=on_lost)
        lock.acquire()
        try:
            yield
        finally:
            lock.release()
