"""Where a plan and its apply state live: a local path, or Cloud Storage objects beside a
`gs://BUCKET/PATH.json` plan, so an apply started on one machine can be resumed on
another (docs/state.md).

A place holds four things: the plan, its journal, its audit record and the apply lock.
Locally they are files (PLAN.json, PLAN.json.journal, PLAN.json.audit.jsonl; the lock is
the backend's per-machine file lock). In a bucket they are objects:

    PLAN.json                        the plan
    PLAN.json.journal/00000001.jsonl journal events, one object per synced batch, each
                                     created with ifGenerationMatch=0: two writers can
                                     never both add the same batch
    PLAN.json.audit/<time>-<id>.json one audit record each
    PLAN.json.lock                   the apply lock: owner, host, pid, expiry; created with
                                     ifGenerationMatch=0, renewed by a running apply,
                                     taken over when expired or its process is gone
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol

from rotator import apierrors as api
from rotator.errors import BadInput, Refused, RotatorError

if TYPE_CHECKING:
    from rotator.backends.base import Backend, StorageApi

# How long a lock holds without renewal; a running apply renews it every third of that.
LOCK_TTL_SECONDS = 120.0
# A holder whose renewals keep failing stops (fences itself) this share of the TTL before
# the lock it last wrote expires, i.e. before another machine may take it over.
FENCE_MARGIN = 0.25
# Unsynced journal events (rewrite checkpoints) are written at least this often.
GCS_FLUSH_SECONDS = 2.0


def is_gcs(path: str) -> bool:
    return path.startswith("gs://")


def _stamp() -> str:
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


# -- local files -------------------------------------------------------------------------------
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
        dest = f"{path}.{_stamp().replace(':', '')}.old"
        os.replace(path, dest)
        return dest

    @contextmanager
    def lock(
        self, emit: Callable[[str], None], on_lost: Callable[[RotatorError], None] | None = None
    ) -> Iterator[None]:
        yield  # the backend's per-key lock is the local one


# -- Cloud Storage objects ----------------------------------------------------------------------
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
            got = self._get(name)
            if got is not None and got[0] == data:
                return got[1]
            raise

    def _get(self, name: str) -> tuple[bytes, int] | None:
        try:
            return self.storage.download_bytes(self.bucket, name)
        except api.NotFound:
            return None

    def read_plan(self) -> bytes:
        try:
            got = self._get(self.object)
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
        return sorted(
            n
            for n in names
            if n.endswith(".jsonl") and "/" not in n[len(self.journal_prefix()) :]
        )

    def journal_lines(self) -> list[str] | None:
        names = self._journal_objects()
        if not names:
            return None
        lines: list[str] = []
        for name in names:
            got = self._get(name)
            if got is not None:
                lines += got[0].decode("utf-8").splitlines()
        return lines

    def journal_writer(self) -> JournalWriter:
        names = self._journal_objects()
        last = int(names[-1].rsplit("/", 1)[1].split(".")[0]) if names else 0
        return _GcsWriter(self, last + 1)

    def append_audit(self, record: dict[str, Any]) -> None:
        name = f"{self.object}.audit/{_stamp().replace(':', '')}-{uuid.uuid4().hex[:8]}.json"
        self.create(name, json.dumps(record, sort_keys=True, default=str).encode())

    def move_old_journal(self) -> str | None:
        names = self._journal_objects()
        if not names:
            return None
        dest = f"{self.object}.journal.{_stamp().replace(':', '')}.old/"
        for name in names:
            got = self._get(name)
            if got is None:
                continue
            self.create(dest + name.rsplit("/", 1)[1], got[0])
            self.storage.delete_object(self.bucket, name, if_generation_match=got[1])
        return f"gs://{self.bucket}/{dest}"

    def lock_holder(self) -> dict[str, Any] | None:
        """Who holds the apply lock, if it is held and not expired."""
        got = self._get(f"{self.object}.lock")
        if got is None:
            return None
        held = _parse_lock(got[0])
        try:
            return held if float(held.get("expires", 0)) >= time.time() else None
        except (TypeError, ValueError):
            return None

    @contextmanager
    def lock(
        self, emit: Callable[[str], None], on_lost: Callable[[RotatorError], None] | None = None
    ) -> Iterator[None]:
        lock = GcsLock(self, emit, ttl=LOCK_TTL_SECONDS, on_lost=on_lost)
        lock.acquire()
        try:
            yield
        finally:
            lock.release()


class GcsLock:
    """PLAN.json.lock: created only if absent (ifGenerationMatch=0), holding who owns it
    and until when; renewed in the background while the apply runs; taken over (with a
    message) when it expired or its process is gone; a live one refuses (exit 3)."""

    def __init__(
        self,
        place: GcsPlace,
        emit: Callable[[str], None],
        ttl: float = LOCK_TTL_SECONDS,
        on_lost: Callable[[RotatorError], None] | None = None,
    ):
        self.place, self.emit, self.ttl = place, emit, ttl
        self.on_lost = on_lost
        self.name = f"{place.object}.lock"
        self.owner = uuid.uuid4().hex
        self.generation: int | None = None
        # Set once renewal found the lock owned by another apply (or deleted): the apply
        # must stop, and every journal write from then on raises it.
        self.lost: Refused | None = None
        # Self-fencing. Renewal errors are retried, but not for ever: once the lock this
        # apply last wrote may have expired, another machine may take it over (it goes by
        # `expires`), so this apply stops first, at `_fence_at` (monotonic seconds): the
        # start of the last successful write plus the TTL, less FENCE_MARGIN of the TTL.
        # The written `expires` is at least that write's start plus the TTL, so the fence
        # comes before any taker may take over, by the margin: room for the calls in
        # flight to end and for the takers' clocks to run ahead of this one (docs/state.md
        # bounds that skew). Monotonic: a jump of this machine's clock does not move it.
        self._fence_at = float("inf")
        self._failing_since: float | None = None  # wall time of the first failed renewal
        self._last_error: str = ""
        self._fence_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _body(self) -> bytes:
        return json.dumps(
            {
                "owner": self.owner,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "expires": time.time() + self.ttl,
                "plan": self.place.name,
            }
        ).encode()

    def _put(self, match: int) -> None:
        started = time.monotonic()  # before the body's `expires` is taken: never later
        body = self._body()
        if match == 0:
            self.generation = self.place.create(self.name, body)
        else:
            self.generation = self.place.storage.upload_bytes(
                self.place.bucket, self.name, body, if_generation_match=match
            )
        self._fence_at = started + self.ttl * (1 - FENCE_MARGIN)
        self._failing_since = None

    def acquire(self) -> None:
        where = f"gs://{self.place.bucket}/{self.name}"
        for _ in range(3):
            try:
                self._put(0)
                break
            except api.PreconditionFailed:
                got = self.place._get(self.name)
                if got is None:
                    continue  # released meanwhile: try again
                held = _parse_lock(got[0])
                why = _dead_because(held)
                if why is None:
                    raise Refused(
                        f"{self.place.name} is being applied by pid {held.get('pid')} on "
                        f"{held.get('host')} (lock {where}, renewed until "
                        f"{_when(held.get('expires'))}); wait for it or check `rotator status "
                        f"{self.place.name}`",
                        resource=where,
                    ) from None
                try:
                    self._put(got[1])
                except api.PreconditionFailed:
                    continue  # someone else took it over first: look again
                self.emit(f"took over the lock {where} of pid {held.get('pid')} on {held.get('host')}: {why}")
                break
        else:
            raise Refused(f"{self.place.name}: could not take the lock {where}; try again", resource=where)
        self.place.held_lock = self
        self._thread = threading.Thread(target=self._renew, name="rotator-lock-renewal", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(max(0.0, min(self.ttl / 3, self._fence_at - time.monotonic()))):
            if self.check_fence():
                return
            try:
                self._put(self.generation or 0)
            except api.PreconditionFailed:
                # Rewritten under us (e.g. by a rewrite of the bucket) or taken over: only
                # the owner field tells.
                try:
                    got = self.place._get(self.name)
                except api.ApiError as e:
                    self._failed(e)
                    continue  # transient: look again at the next renewal, until the fence
                if got is not None and _parse_lock(got[0]).get("owner") == self.owner:
                    self.generation = got[1]
                    continue
                self._lose(_parse_lock(got[0]) if got is not None else None)
                return
            except api.ApiError as e:
                self._failed(e)
                continue  # transient: the next renewal tries again, until the fence

    def _failed(self, error: api.ApiError) -> None:
        if self._failing_since is None:
            self._failing_since = time.time()
        self._last_error = str(error)

    def check_fence(self) -> bool:
        """Has the lock gone unrenewed so long that another apply may soon take it over?
        Then this apply stops as if it had lost the lock (once). Called by the renewal
        and before every journal write, so a renewal stuck in a call does not delay it."""
        if self.lost is not None:
            return True
        if time.monotonic() < self._fence_at:
            return False
        with self._fence_lock:
            if self.lost is not None:
                return True
            where = f"gs://{self.place.bucket}/{self.name}"
            since = _when(self._failing_since) if self._failing_since is not None else "its last renewal"
            why = f" (last error: {self._last_error})" if self._last_error else ""
            self._stop_apply(
                Refused(
                    f"{self.place.name}: could not renew the lock {where} since {since}{why}; it "
                    "expires soon and another apply may then take it over, so this apply stopped "
                    "(no new work, no more journal writes); check `rotator status "
                    f"{self.place.name}` before running it again",
                    resource=where,
                ),
                f"could not renew the lock {where} since {since}: stopping before it expires",
            )
        return True

    def _lose(self, holder: dict[str, Any] | None) -> None:
        """Another apply holds the lock now (it took it over): this one stops. No new work
        starts, the next journal write is refused, and the apply exits 3 naming both."""
        where = f"gs://{self.place.bucket}/{self.name}"
        who = (
            f"pid {holder.get('pid')} on {holder.get('host')} (owner {holder.get('owner')})"
            if holder
            else "nobody: it was deleted"
        )
        lost = Refused(
            f"{self.place.name}: lost the lock {where}; it is now held by {who}; this apply "
            "stopped (no new work, no more journal writes); check `rotator status "
            f"{self.place.name}` before running it again",
            resource=where,
        )
        self._stop_apply(lost, f"lost the lock {where} to {who}: stopping")

    def _stop_apply(self, refused: Refused, message: str) -> None:
        """The one stop path, for a lock lost and a lock fenced: every journal write from
        now on raises `refused`, and the apply is told to stop (no new work, exit 3)."""
        self.lost = refused
        self.emit(message)
        if self.on_lost is not None:
            self.on_lost(refused)

    def release(self) -> None:
        if self.place.held_lock is self:
            self.place.held_lock = None
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.generation is not None:
            try:
                self.place.storage.delete_object(
                    self.place.bucket, self.name, if_generation_match=self.generation
                )
            except api.ApiError:
                pass  # taken over, or gone: it expires by itself


def _parse_lock(data: bytes) -> dict[str, Any]:
    try:
        held = json.loads(data)
    except ValueError:
        return {}
    return held if isinstance(held, dict) else {}


def _when(expires: Any) -> str:
    try:
        return datetime.fromtimestamp(float(expires), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (TypeError, ValueError):
        return "?"


def lock_is_live(held: dict[str, Any]) -> bool:
    """May the apply holding this lock be running (not expired, not a dead process here)?"""
    return _dead_because(held) is None


def _dead_because(held: dict[str, Any]) -> str | None:
    """Why a held lock may be taken over, or None when its apply may be alive."""
    from rotator.journal import process_alive

    try:
        expires = float(held.get("expires", 0))
    except (TypeError, ValueError):
        expires = 0.0
    if expires < time.time():
        return f"it expired at {_when(expires)}"
    if held.get("host") == socket.gethostname() and not process_alive(
        int(held.get("pid") or 0), held["host"]
    ):
        return "its process is gone"
    return None


def keys_put_at_risk(plan: dict[str, Any]) -> set[str]:
    """The keys a plan acts on and whose versions it disables or destroys."""
    keys = {str(plan["params"]["key"])}
    for step in plan.get("steps", []):
        for change in step.get("changes", []):
            if change.get("action") in ("disable", "destroy") and change.get("version"):
                keys.add(str(change["version"]).split("/cryptoKeyVersions/")[0])
    return keys


def refuse_state_under_plan_key(place: Place, plan: dict[str, Any]) -> None:
    """R14: a plan's state must not live in a bucket protected by the key the plan
    disables or destroys: the version would be disabled, then the journal write fail and
    status and rollback could no longer read the plan. Checked before anything changes."""
    if not isinstance(place, GcsPlace):
        return
    try:
        default = place.storage.get_bucket(place.bucket).default_kms_key
    except api.NotFound:
        raise BadInput(f"{place.name}: bucket {place.bucket} not found", resource=place.name) from None
    if not default:
        return
    default_key = default.split("/cryptoKeyVersions/")[0]
    if default_key in keys_put_at_risk(plan):
        raise BadInput(
            f"{place.name}: bucket gs://{place.bucket} is protected by {default_key} (its default "
            "key), the key this plan acts on: once its versions are disabled the plan, its journal "
            "and its lock there become unreadable; keep plans in a bucket no key you rotate "
            "protects (docs/state.md); nothing was changed",
            resource=f"gs://{place.bucket}",
            rule="R14",
        )


# -- opening a place -----------------------------------------------------------------------------
# The command line sets how a gs:// place reaches Cloud Storage: through the backend it
# uses (the real one, or the fake world's buckets), made only when a gs:// path needs it.
_backend: list[Callable[[], Backend]] = []


def use_backend(provider: Callable[[], Backend]) -> None:
    _backend[:] = [provider]


def open_place(path: str, backend: Callable[[], Backend] | None = None) -> Place:
    """A local path, or a gs:// URL (whose objects are reached through the backend's
    Cloud Storage)."""
    if not is_gcs(path):
        return LocalPlace(path)
    provider = backend or (_backend[0] if _backend else None)
    if provider is None:
        raise BadInput(f"{path}: a plan in Cloud Storage needs a backend", resource=path)
    return GcsPlace(path, provider().storage)
