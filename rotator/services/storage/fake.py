"""Fake Cloud Storage: buckets, objects and their generations, rewrite (R10-R19).

Enforced as the service does: data under a DISABLED/DESTROYED version cannot be read,
copied or rewritten (R14); writes need the key's primary enabled (R15) and the
Storage agent's role (R5); held or retained objects cannot be replaced (R16); an
in-place rewrite leaves the old generation noncurrent or soft-deleted (R18); a CSEK
object cannot be rewritten without its key (R19); a bucket's key sits where R7 says.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import time
from collections.abc import Iterator
from datetime import datetime, timedelta

from rotator import apierrors as api
from rotator.agents import agents
from rotator.backends.fake.events import logs_key_failures
from rotator.backends.fake.kms import FakeKms
from rotator.backends.fake.pages import decode_token, encode_token
from rotator.backends.fake.shared import FakeWorld
from rotator.backends.fake.store import Store
from rotator.errors import BadInput
from rotator.locations import bucket_key_location_ok, key_location_for_bucket
from rotator.model import (
    LIVE,
    NONCURRENT,
    SOFT_DELETED,
    Bucket,
    BucketRetention,
    ObjectInfo,
    ObjectPage,
    ProtectedResource,
    RewriteResult,
)
from rotator.names import is_version, parse_key
from rotator.services.storage.protected import protected_buckets
from rotator.services.storage.spec import SPEC
from rotator.storage_rules import overwrite_blocker
from rotator.timeutil import format_time, parse_time

# Objects above this size take several rewrite calls, as large re-encryptions do.
REWRITE_CHUNK_BYTES = 256 * 1024 * 1024


def remember_purged(c: sqlite3.Connection, where: str, args: tuple[object, ...]) -> None:
    """Keep the highest generation of rows about to be hard-deleted (see _write_generation)."""
    c.execute(
        "INSERT INTO purged(bucket, name, top) "
        f"SELECT bucket, name, MAX(generation) FROM objects WHERE {where} GROUP BY bucket, name "
        "ON CONFLICT(bucket, name) DO UPDATE SET top=MAX(top, excluded.top)",
        args,
    )


@functools.lru_cache(maxsize=4096)
def _stored_time(text: str) -> datetime:
    """A time as the store keeps it. Objects made together share it, and a listing reads
    thousands a page (the test server reads them on the CPUs the client under test uses)."""
    return parse_time(text)


class FakeStorage:
    def __init__(self, store: Store, kms: FakeKms, project_number: str):
        self.store = store
        self.kms = kms
        self.agent = agents(SPEC.name, project_number)[0]
        # Simulated service latency per data call, in seconds (ROTATOR_FAKE_LATENCY_MS):
        # lets crash tests catch an apply mid-rewrite and benchmarks model a network.
        self.latency = float(os.environ.get("ROTATOR_FAKE_LATENCY_MS", "0") or 0) / 1000

    # -- conversions ------------------------------------------------------------------
    @staticmethod
    def _to_bucket(row: sqlite3.Row) -> Bucket:
        period = row["retention_period"]
        return Bucket(
            name=row["name"],
            location=row["location"],
            default_kms_key=row["default_kms_key"],
            versioning=bool(row["versioning"]),
            soft_delete=timedelta(seconds=row["soft_delete"]),
            retention=(
                BucketRetention(timedelta(seconds=period), bool(row["retention_locked"]))
                if period is not None
                else None
            ),
        )

    @staticmethod
    def _to_object(row: sqlite3.Row) -> ObjectInfo:
        ru, hd = row["retain_until"], row["hard_delete_time"]
        return ObjectInfo(
            bucket=row["bucket"],
            name=row["name"],
            generation=row["generation"],
            kms_key_version=row["kms_key_version"],
            size=row["size"],
            created=_stored_time(row["created"]),
            state=row["state"],
            temporary_hold=bool(row["temporary_hold"]),
            event_based_hold=bool(row["event_based_hold"]),
            retention_mode=row["retention_mode"],
            retain_until=_stored_time(ru) if ru else None,
            hard_delete_time=_stored_time(hd) if hd else None,
            customer_supplied_key=bool(row["csek"]),
        )

    def _bucket_row(self, c: sqlite3.Connection, name: str) -> sqlite3.Row:
        row = c.execute("SELECT * FROM buckets WHERE name=?", (name,)).fetchone()
        if row is None:
            raise api.NotFound(f"bucket {name} not found", resource=f"gs://{name}")
        return row

    def _live_row(self, c: sqlite3.Connection, bucket: str, name: str) -> sqlite3.Row:
        row = c.execute(
            "SELECT * FROM objects WHERE bucket=? AND name=? AND state=?", (bucket, name, LIVE)
        ).fetchone()
        if row is None:
            raise api.NotFound(f"object gs://{bucket}/{name} not found", resource=f"gs://{bucket}/{name}")
        return row

    # -- buckets ----------------------------------------------------------------------
    def list_buckets(self) -> Iterator[Bucket]:
        with self.store.read() as c:
            rows = c.execute("SELECT * FROM buckets ORDER BY ord, name").fetchall()
        return iter([self._to_bucket(r) for r in rows])

    def protected_resources(self, key: str, home: str) -> Iterator[ProtectedResource]:
        """Its buckets as Cloud KMS Inventory lists them (services/storage/protected.py)."""
        return protected_buckets(self.store, self.list_buckets(), key, home)

    def get_bucket(self, name: str) -> Bucket:
        with self.store.read() as c:
            return self._to_bucket(self._bucket_row(c, name))

    def test_iam_permissions(self, bucket: str, permissions: list[str]) -> list[str]:
        """Every permission (ROTATOR_FAKE_FAULTS deny=gs://BUCKET takes the changes away)."""
        with self.store.read() as c:
            self._bucket_row(c, bucket)
        return list(permissions)

    def patch_bucket_default_kms_key(self, name: str, kms_key: str | None) -> Bucket:
        with self.store.write() as c:
            brow = self._bucket_row(c, name)
            if kms_key is not None:
                self._check_destination_key(c, brow, kms_key)
                # Setting a default checks the agent can encrypt with it (R5, R15).
                self.kms.primary_for_encrypt(c, kms_key, self.agent, service="Cloud Storage")
            c.execute("UPDATE buckets SET default_kms_key=? WHERE name=?", (kms_key, name))
            return self._to_bucket(self._bucket_row(c, name))

    def _check_destination_key(self, c: sqlite3.Connection, brow: sqlite3.Row, key: str) -> None:
        if is_version(key):
            raise api.InvalidArgument(
                f"kmsKeyName must name a key, not a key version: {key} (R2)", resource=key
            )
        try:
            parsed = parse_key(key)
        except BadInput as e:
            raise api.InvalidArgument(e.message, resource=key, rule="R1") from None
        if not bucket_key_location_ok(brow["location"], parsed.location):
            raise api.InvalidArgument(
                f"key {key} is in {parsed.location}; bucket gs://{brow['name']} in "
                f"{brow['location']} needs a key in {key_location_for_bucket(brow['location'])} (R7)",
                resource=f"gs://{brow['name']}",
                rule="R7",
            )

    # -- objects ----------------------------------------------------------------------
    def list_objects(
        self,
        bucket: str,
        *,
        versions: bool = False,
        soft_deleted: bool = False,
        page_token: str | None = None,
        page_size: int = 1000,
        start_offset: str | None = None,
        end_offset: str | None = None,
    ) -> ObjectPage:
        if page_size < 1:
            raise api.InvalidArgument(f"maxResults must be a positive number, not {page_size}")
        if soft_deleted:
            states: tuple[str, ...] = (SOFT_DELETED,)
        elif versions:
            states = (LIVE, NONCURRENT)
        else:
            states = (LIVE,)
        after_name, after_gen = "", -1
        if page_token:
            parts = decode_token(page_token)
            if len(parts) != 2:
                raise api.InvalidArgument("invalid page token")
            after_name, after_gen = str(parts[0]), int(parts[1])  # type: ignore[call-overload]
        marks = ",".join("?" * len(states))
        with self.store.read() as c:
            self._bucket_row(c, bucket)
            # startOffset is inclusive, endOffset exclusive (objects.list).
            bounds, bound_args = "", []
            if start_offset:
                bounds += " AND name >= ?"
                bound_args.append(start_offset)
            if end_offset:
                bounds += " AND name < ?"
                bound_args.append(end_offset)
            rows = c.execute(
                f"SELECT * FROM objects WHERE bucket=? AND (name, generation) > (?, ?) "
                f"AND state IN ({marks}){bounds} ORDER BY name, generation LIMIT ?",
                (bucket, after_name, after_gen, *states, *bound_args, page_size + 1),
            ).fetchall()
        items = [self._to_object(r) for r in rows[:page_size]]
        token = None
        if len(rows) > page_size:
            last = items[-1]
            token = encode_token(last.name, last.generation)
        return ObjectPage(items, token)

    def get_object(self, bucket: str, name: str, generation: int | None = None) -> ObjectInfo:
        with self.store.read() as c:
            self._bucket_row(c, bucket)
            if generation is None:
                return self._to_object(self._live_row(c, bucket, name))
            row = c.execute(
                "SELECT * FROM objects WHERE bucket=? AND name=? AND generation=? AND state!=?",
                (bucket, name, generation, SOFT_DELETED),
            ).fetchone()
        if row is None:
            raise api.NotFound(f"object gs://{bucket}/{name}#{generation} not found")
        return self._to_object(row)

    def rewrite_object(
        self,
        bucket: str,
        name: str,
        *,
        destination_kms_key: str | None,
        if_generation_match: int | None,
        rewrite_token: str | None = None,
        max_bytes_rewritten_per_call: int | None = None,
    ) -> RewriteResult:
        if self.latency:
            time.sleep(self.latency)  # outside the lock: calls overlap as on a network
        with self.store.write() as c:
            brow = self._bucket_row(c, bucket)
            row = self._live_row(c, bucket, name)
            if if_generation_match is not None and row["generation"] != if_generation_match:
                raise api.PreconditionFailed(
                    f"gs://{bucket}/{name}: generation is {row['generation']}, "
                    f"not {if_generation_match} (ifGenerationMatch)",
                    resource=f"gs://{bucket}/{name}",
                )
            self._check_readable(c, row, purpose="rewrite")
            self._check_replaceable(c, brow, row)
            version = self._encryption_for_write(c, brow, destination_kms_key)
            done_bytes = 0
            if rewrite_token:
                parts = decode_token(rewrite_token)
                if parts[:4] != [bucket, name, row["generation"], destination_kms_key]:
                    raise api.InvalidArgument(
                        f"gs://{bucket}/{name}: rewrite token belongs to another rewrite"
                    )
                done_bytes = int(parts[4])  # type: ignore[call-overload]
            step = max_bytes_rewritten_per_call or REWRITE_CHUNK_BYTES
            total = row["size"]
            if total - done_bytes > step:
                done_bytes += step
                token = encode_token(bucket, name, row["generation"], destination_kms_key, done_bytes)
                return RewriteResult(False, total, done_bytes, token, None)
            new = self._write_generation(c, brow, row, name, version, total)
        return RewriteResult(True, total, total, None, new)

    # -- rule checks shared by every data path -----------------------------------------
    def _check_readable(self, c: sqlite3.Connection, row: sqlite3.Row, *, purpose: str) -> None:
        where = f"gs://{row['bucket']}/{row['name']}"
        if row["csek"]:
            raise api.InvalidArgument(
                f"{where} is encrypted with a customer-supplied key; {purpose} needs that key (R19)",
                resource=where,
                rule="R19",
            )
        if row["kms_key_version"]:
            try:
                self.kms.check_usable(
                    c,
                    row["kms_key_version"],
                    self.agent,
                    service="Cloud Storage",
                    purpose=f"{purpose} {where}",
                )
            except api.ApiError as e:
                e.resource = where
                raise

    def _check_replaceable(self, c: sqlite3.Connection, brow: sqlite3.Row, row: sqlite3.Row) -> None:
        obj, bucket = self._to_object(row), self._to_bucket(brow)
        reason = overwrite_blocker(obj, bucket, self.store.now())
        if reason:
            where = f"gs://{obj.bucket}/{obj.name}"
            raise api.PermissionDenied(
                f"{where} is under {reason} and cannot be replaced or deleted (R16)",
                resource=where,
                rule="R16",
            )

    def _encryption_for_write(
        self, c: sqlite3.Connection, brow: sqlite3.Row, requested_key: str | None
    ) -> str | None:
        """The key version a new generation is written under: the request's key beats
        the bucket default (R10); None means Google default encryption."""
        key = requested_key or brow["default_kms_key"]
        if key is None:
            return None
        self._check_destination_key(c, brow, key)
        return self.kms.primary_for_encrypt(c, key, self.agent, service="Cloud Storage")

    def _write_generation(
        self,
        c: sqlite3.Connection,
        brow: sqlite3.Row,
        old: sqlite3.Row | None,
        name: str,
        version: str | None,
        size: int,
        csek: bool = False,
    ) -> ObjectInfo:
        bucket = brow["name"]
        now = self.store.now()
        # Generations never repeat for a name, even after every row of it was purged:
        # a stale ifGenerationMatch must never match a different object.
        (top,) = c.execute(
            "SELECT MAX(COALESCE((SELECT MAX(generation) FROM objects WHERE bucket=? AND name=?), 0),"
            " COALESCE((SELECT top FROM purged WHERE bucket=? AND name=?), 0))",
            (bucket, name, bucket, name),
        ).fetchone()
        if old is not None:
            self._retire_generation(c, brow, old, now)
        c.execute(
            "INSERT INTO objects(bucket, name, generation, state, kms_key_version, size, "
            "created, csek) VALUES(?,?,?,?,?,?,?,?)",
            (bucket, name, top + 1, LIVE, version, size, format_time(now), int(csek)),
        )
        return self._to_object(self._live_row(c, bucket, name))

    def _retire_generation(
        self, c: sqlite3.Connection, brow: sqlite3.Row, old: sqlite3.Row, now: datetime
    ) -> None:
        """The replaced generation keeps its key version: noncurrent in a versioned
        bucket, soft-deleted until its hard-delete time otherwise, or gone (R18)."""
        ident = (old["bucket"], old["name"], old["generation"])
        if brow["versioning"]:
            c.execute(
                "UPDATE objects SET state=? WHERE bucket=? AND name=? AND generation=?",
                (NONCURRENT, *ident),
            )
        elif brow["soft_delete"] > 0:
            hard = now + timedelta(seconds=brow["soft_delete"])
            c.execute(
                "UPDATE objects SET state=?, hard_delete_time=? WHERE bucket=? AND name=? AND generation=?",
                (SOFT_DELETED, format_time(hard), *ident),
            )
        else:
            remember_purged(c, "bucket=? AND name=? AND generation=?", ident)
            c.execute("DELETE FROM objects WHERE bucket=? AND name=? AND generation=?", ident)

    # -- what an application does (fake only: tests and race simulations) --------------
    @logs_key_failures("Cloud Storage", lambda bucket, name, *_a, **_k: f"gs://{bucket}/{name}")
    def upload(
        self,
        bucket: str,
        name: str,
        size: int = 0,
        *,
        kms_key: str | None = None,
        if_generation_match: int | None = None,
        customer_supplied_key: bool = False,
    ) -> ObjectInfo:
        with self.store.write() as c:
            return self._upload_in(c, bucket, name, size, kms_key, if_generation_match, customer_supplied_key)

    def _upload_in(
        self,
        c: sqlite3.Connection,
        bucket: str,
        name: str,
        size: int,
        kms_key: str | None,
        if_generation_match: int | None,
        customer_supplied_key: bool,
    ) -> ObjectInfo:
        brow = self._bucket_row(c, bucket)
        old = c.execute(
            "SELECT * FROM objects WHERE bucket=? AND name=? AND state=?", (bucket, name, LIVE)
        ).fetchone()
        current = old["generation"] if old else 0
        if if_generation_match is not None and current != if_generation_match:
            raise api.PreconditionFailed(f"gs://{bucket}/{name}: generation is {current}")
        if old is not None:
            self._check_replaceable(c, brow, old)
        if customer_supplied_key:
            if kms_key:
                raise api.InvalidArgument("CSEK and a KMS key are exclusive (R19)", rule="R19")
            version = None
        else:
            version = self._encryption_for_write(c, brow, kms_key)
        return self._write_generation(c, brow, old, name, version, size, customer_supplied_key)

    # -- object contents: what rotator itself keeps in a bucket (plans, journals, locks) ----
    # The fake keeps no data for the world's objects (only their size); these calls keep
    # the bytes of what is written through them, beside the object's generation.
    @staticmethod
    def _data_table(c: sqlite3.Connection) -> None:
        c.execute(
            "CREATE TABLE IF NOT EXISTS object_data(bucket TEXT NOT NULL, name TEXT NOT NULL, "
            "generation INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY(bucket, name, generation))"
        )

    def upload_bytes(self, bucket: str, name: str, data: bytes, *, if_generation_match: int | None) -> int:
        """Write an object with this content (ifGenerationMatch=0: only if it does not
        exist); returns its new generation."""
        with self.store.write() as c:
            self._data_table(c)
            obj = self._upload_in(c, bucket, name, len(data), None, if_generation_match, False)
            c.execute(
                "INSERT OR REPLACE INTO object_data(bucket, name, generation, data) VALUES(?, ?, ?, ?)",
                (bucket, name, obj.generation, data),
            )
        return obj.generation

    def download_bytes(self, bucket: str, name: str) -> tuple[bytes, int]:
        """The live object's content and generation (its key must be usable, R14)."""
        obj = self.read(bucket, name)
        with self.store.write() as c:
            self._data_table(c)
            row = c.execute(
                "SELECT data FROM object_data WHERE bucket=? AND name=? AND generation=?",
                (bucket, name, obj.generation),
            ).fetchone()
        return (bytes(row[0]) if row else b""), obj.generation

    def delete_object(self, bucket: str, name: str, *, if_generation_match: int | None) -> None:
        with self.store.write() as c:
            brow = self._bucket_row(c, bucket)
            row = self._live_row(c, bucket, name)
            if if_generation_match is not None and row["generation"] != if_generation_match:
                raise api.PreconditionFailed(f"gs://{bucket}/{name}: generation is {row['generation']}")
            self._check_replaceable(c, brow, row)
            self._retire_generation(c, brow, row, self.store.now())

    def list_names(self, bucket: str, prefix: str) -> list[str]:
        """Names of the live objects under `prefix`, in order."""
        with self.store.read() as c:
            self._bucket_row(c, bucket)
            rows = c.execute(
                "SELECT name FROM objects WHERE bucket=? AND state=? AND name >= ? ORDER BY name",
                (bucket, LIVE, prefix),
            ).fetchall()
        names = []
        for (n,) in rows:
            if not n.startswith(prefix):
                break
            names.append(n)
        return names

    @logs_key_failures("Cloud Storage", lambda bucket, name, *_a, **_k: f"gs://{bucket}/{name}")
    def read(self, bucket: str, name: str, generation: int | None = None) -> ObjectInfo:
        """Download: the data needs its key version enabled (R14) and the agent (R5)."""
        obj = self.get_object(bucket, name, generation)
        with self.store.read() as c:
            row = c.execute(
                "SELECT * FROM objects WHERE bucket=? AND name=? AND generation=?",
                (bucket, name, obj.generation),
            ).fetchone()
            self._check_readable(c, row, purpose="read")
        return obj

    def delete(self, bucket: str, name: str) -> None:
        """Metadata operations work without the key (R10); retention and holds still
        apply (R16)."""
        with self.store.write() as c:
            brow = self._bucket_row(c, bucket)
            row = self._live_row(c, bucket, name)
            self._check_replaceable(c, brow, row)
            self._retire_generation(c, brow, row, self.store.now())

    def set_holds(self, bucket: str, name: str, *, temporary: bool, event_based: bool) -> None:
        with self.store.write() as c:
            self._live_row(c, bucket, name)
            c.execute(
                "UPDATE objects SET temporary_hold=?, event_based_hold=? "
                "WHERE bucket=? AND name=? AND state=?",
                (int(temporary), int(event_based), bucket, name, LIVE),
            )

    def advance_to(self, c: sqlite3.Connection, now: str) -> None:
        """Soft-deleted generations past their hard-delete time are gone (R18)."""
        c.execute("DELETE FROM objects WHERE state=? AND hard_delete_time<=?", (SOFT_DELETED, now))


def connect(backend: FakeWorld) -> FakeStorage:
    """This service's fake in `backend`'s world (rotator/backends/fake/__init__.py)."""
    return FakeStorage(backend.store, backend.kms, backend.project_number)
