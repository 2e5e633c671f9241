"""The apply lock of a gs:// plan: PLAN.json.lock, a lease. Created only if absent
(ifGenerationMatch=0), holding who owns it and until when; renewed in the background
while the apply runs; taken over when it expired or its process is gone (liveness.py
decides); a holder that cannot renew fences itself before its lease may be taken."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from rotator import apierrors as api
from rotator.errors import Refused, RotatorError
from rotator.liveness import expiry_text, lock_dead_because

if TYPE_CHECKING:
    from rotator.services.storage.api import StorageApi

# How long a lock holds without renewal; a running apply renews it every third of that.
LOCK_TTL_SECONDS = 120.0
# A holder whose renewals keep failing stops (fences itself) this share of the TTL before
# the lock it last wrote expires, i.e. before another machine may take it over.
FENCE_MARGIN = 0.25


class LeasedPlace(Protocol):
    """What the lock needs of the gs:// place it guards: where it is, and its objects."""

    name: str
    bucket: str
    object: str
    storage: StorageApi
    held_lock: GcsLock | None

    def create(self, name: str, data: bytes) -> int: ...

    def get(self, name: str) -> tuple[bytes, int] | None: ...


class GcsLock:
    """PLAN.json.lock: created only if absent (ifGenerationMatch=0), holding who owns it
    and until when; renewed in the background while the apply runs; taken over (with a
    message) when it expired or its process is gone; a live one refuses (exit 3)."""

    def __init__(
        self,
        place: LeasedPlace,
        emit: Callable[[str], None],
        ttl: float | None = None,
        on_lost: Callable[[RotatorError], None] | None = None,
    ):
        # None: LOCK_TTL_SECONDS as it is when the lock is made (tests shorten it).
        self.place, self.emit = place, emit
        self.ttl = LOCK_TTL_SECONDS if ttl is None else ttl
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
                got = self.place.get(self.name)
                if got is None:
                    continue  # released meanwhile: try again
                held = parse_lock(got[0])
                why = lock_dead_because(held)
                if why is None:
                    raise Refused(
                        f"{self.place.name} is being applied by pid {held.get('pid')} on "
                        f"{held.get('host')} (lock {where}, renewed until "
                        f"{expiry_text(held.get('expires'))}); wait for it or check `rotator status "
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
                    got = self.place.get(self.name)
                except api.ApiError as e:
                    self._failed(e)
                    continue  # transient: look again at the next renewal, until the fence
                if got is not None and parse_lock(got[0]).get("owner") == self.owner:
                    self.generation = got[1]
                    continue
                self._lose(parse_lock(got[0]) if got is not None else None)
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
            since = (
                expiry_text(self._failing_since) if self._failing_since is not None else "its last renewal"
            )
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


def parse_lock(data: bytes) -> dict[str, Any]:
    try:
        held = json.loads(data)
    except ValueError:
        return {}
    return held if isinstance(held, dict) else {}
