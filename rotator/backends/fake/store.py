"""The fake world's durable state: one SQLite database.

Why SQLite: every single change is one transaction (a killed apply leaves the world
consistent), several processes (plan, apply, world dump) share one world, and a
million objects cost disk, not memory. WAL mode with synchronous=NORMAL survives a
killed process without a disk sync per change.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from rotator.timeutil import format_time, parse_time

SCHEMA_VERSION = "4"

_DDL = """
CREATE TABLE meta(k TEXT PRIMARY KEY, v TEXT);
CREATE TABLE keys(
  name TEXT PRIMARY KEY, protection_level TEXT NOT NULL,
  destroy_scheduled_duration INTEGER NOT NULL, primary_version INTEGER,
  iam TEXT NOT NULL, iam_etag INTEGER NOT NULL DEFAULT 1,
  rotation_period INTEGER, next_rotation_time TEXT);
CREATE TABLE versions(
  key TEXT NOT NULL, number INTEGER NOT NULL, state TEXT NOT NULL, destroy_time TEXT,
  create_time TEXT, PRIMARY KEY(key, number));
CREATE TABLE buckets(
  name TEXT PRIMARY KEY, location TEXT NOT NULL, default_kms_key TEXT,
  versioning INTEGER NOT NULL, soft_delete INTEGER NOT NULL,
  retention_period INTEGER, retention_locked INTEGER NOT NULL DEFAULT 0, ord INTEGER);
CREATE TABLE objects(
  bucket TEXT NOT NULL, name TEXT NOT NULL, generation INTEGER NOT NULL,
  state TEXT NOT NULL, kms_key_version TEXT, size INTEGER NOT NULL, created TEXT NOT NULL,
  temporary_hold INTEGER NOT NULL DEFAULT 0, event_based_hold INTEGER NOT NULL DEFAULT 0,
  retention_mode TEXT, retain_until TEXT, hard_delete_time TEXT,
  csek INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY(bucket, name, generation)) WITHOUT ROWID;
CREATE TABLE purged(
  bucket TEXT NOT NULL, name TEXT NOT NULL, top INTEGER NOT NULL,
  PRIMARY KEY(bucket, name)) WITHOUT ROWID;
CREATE TABLE manifest_rows(
  uri TEXT NOT NULL, seq INTEGER NOT NULL, bucket TEXT NOT NULL, name TEXT NOT NULL,
  generation INTEGER, PRIMARY KEY(uri, seq)) WITHOUT ROWID;
CREATE TABLE events(time TEXT NOT NULL, service TEXT NOT NULL, resource TEXT NOT NULL, message TEXT NOT NULL);
CREATE TABLE documents(service TEXT PRIMARY KEY, body TEXT NOT NULL);
"""


class Store:
    """A SQLite connection shared by the fake's services, with a write transaction helper."""

    def __init__(self, path: str | None = None):
        self.path = path
        self._lock = threading.RLock()
        self.conn = sqlite3.connect(
            path or ":memory:", isolation_level=None, check_same_thread=False, timeout=30.0
        )
        self.conn.row_factory = sqlite3.Row
        if path:
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA busy_timeout=30000")

    def create_schema(self) -> None:
        self.conn.executescript(_DDL)
        self.set_meta("schema_version", SCHEMA_VERSION)

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One atomic change. BEGIN IMMEDIATE takes the write lock up front, so two
        processes never interleave a read-check-write."""
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self.conn

    # -- meta -------------------------------------------------------------------------
    def get_meta(self, k: str) -> str | None:
        with self.read() as c:
            row = c.execute("SELECT v FROM meta WHERE k=?", (k,)).fetchone()
        return row[0] if row else None

    def set_meta(self, k: str, v: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta(k, v) VALUES(?, ?)", (k, v))

    def now(self) -> datetime:
        value = self.get_meta("now")
        assert value is not None, "world has no clock"
        return parse_time(value)

    def set_now(self, when: datetime) -> None:
        self.set_meta("now", format_time(when))

    def close(self) -> None:
        self.conn.close()


def open_store(path: str) -> Store:
    if not os.path.exists(path):
        raise FileNotFoundError(path)
    return Store(path)
