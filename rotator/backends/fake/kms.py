"""Fake Cloud KMS: keys, versions, primary, state changes, destroy/restore, IAM (R1-R6).

It enforces what Cloud KMS enforces, and no more: disabling the primary is allowed
(the cloud allows it; R3's consequence is enforced where the key is used).
"""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta
from typing import Any

from rotator import apierrors as api
from rotator.backends.fake.store import Store
from rotator.errors import BadInput
from rotator.model import (
    DESTROY_SCHEDULED,
    DESTROYED,
    DISABLED,
    ENABLED,
    ENCRYPTER_DECRYPTER,
    CryptoKey,
    CryptoKeyVersion,
    IamPolicy,
)
from rotator.names import key_ring_of, location_of, parse_key, parse_version, version_name
from rotator.timeutil import format_time, parse_time


def _key_name(name: str) -> str:
    try:
        return str(parse_key(name))
    except BadInput as e:
        raise api.InvalidArgument(e.message, resource=name, rule="R1") from None


def _version_name(name: str) -> tuple[str, int]:
    try:
        v = parse_version(name)
    except BadInput as e:
        raise api.InvalidArgument(e.message, resource=name, rule="R1") from None
    return str(v.key), v.number


class FakeKms:
    def __init__(self, store: Store):
        self.store = store
        # Services that react to key events inside the same transaction (the fake's
        # way of the cloud's consequences: Firestore re-encrypts on a new primary,
        # Dataflow jobs die when their version goes, R21, R31, R33).
        self.listeners: list[Any] = []

    def _notify(self, event: str, *args: Any) -> None:
        for listener in self.listeners:
            handler = getattr(listener, event, None)
            if handler is not None:
                handler(*args)

    # -- reads ------------------------------------------------------------------------
    def _key_row(self, c: sqlite3.Connection, key: str) -> sqlite3.Row:
        row = c.execute("SELECT * FROM keys WHERE name=?", (key,)).fetchone()
        if row is None:
            raise api.NotFound(f"CryptoKey {key} not found.", resource=key)
        return row

    def _version_row(self, c: sqlite3.Connection, key: str, number: int) -> sqlite3.Row:
        self._key_row(c, key)
        row = c.execute("SELECT * FROM versions WHERE key=? AND number=?", (key, number)).fetchone()
        if row is None:
            raise api.NotFound(
                f"CryptoKeyVersion {version_name(key, number)} not found.",
                resource=version_name(key, number),
            )
        return row

    @staticmethod
    def _to_key(row: sqlite3.Row) -> CryptoKey:
        return CryptoKey(
            name=row["name"],
            protection_level=row["protection_level"],
            primary=row["primary_version"],
            destroy_scheduled_duration=timedelta(seconds=row["destroy_scheduled_duration"]),
            rotation_period=timedelta(seconds=row["rotation_period"]) if row["rotation_period"] else None,
            next_rotation_time=parse_time(row["next_rotation_time"]) if row["next_rotation_time"] else None,
        )

    @staticmethod
    def _to_version(row: sqlite3.Row) -> CryptoKeyVersion:
        dt = row["destroy_time"]
        return CryptoKeyVersion(
            name=version_name(row["key"], row["number"]),
            state=row["state"],
            destroy_time=parse_time(dt) if dt else None,
            create_time=parse_time(row["create_time"]) if row["create_time"] else None,
        )

    def get_crypto_key(self, name: str) -> CryptoKey:
        key = _key_name(name)
        with self.store.read() as c:
            return self._to_key(self._key_row(c, key))

    def _key_names(self, prefix: str) -> list[str]:
        with self.store.read() as c:
            return [
                r[0]
                for r in c.execute("SELECT name FROM keys ORDER BY name").fetchall()
                if r[0].startswith(prefix)
            ]

    def list_locations(self, name: str) -> list[str]:
        """The fake offers Cloud KMS where its world has key rings."""
        return sorted({location_of(n) for n in self._key_names(name.rstrip("/") + "/")})

    def list_key_rings(self, parent: str) -> list[str]:
        return sorted({key_ring_of(n) for n in self._key_names(parent.rstrip("/") + "/keyRings/")})

    def list_crypto_keys(self, parent: str) -> list[CryptoKey]:
        return [self.get_crypto_key(n) for n in self._key_names(parent.rstrip("/") + "/cryptoKeys/")]

    def list_crypto_key_versions(self, key: str) -> list[CryptoKeyVersion]:
        key = _key_name(key)
        with self.store.read() as c:
            self._key_row(c, key)
            rows = c.execute("SELECT * FROM versions WHERE key=? ORDER BY number", (key,)).fetchall()
        return [self._to_version(r) for r in rows]

    def get_crypto_key_version(self, name: str) -> CryptoKeyVersion:
        key, number = _version_name(name)
        with self.store.read() as c:
            return self._to_version(self._version_row(c, key, number))

    def get_iam_policy(self, key: str) -> IamPolicy:
        key = _key_name(key)
        with self.store.read() as c:
            row = self._key_row(c, key)
        return IamPolicy(bindings=json.loads(row["iam"]), etag=str(row["iam_etag"]))

    def test_iam_permissions(self, resource: str, permissions: list[str]) -> list[str]:
        """The fake's caller holds every permission (ROTATOR_FAKE_FAULTS deny=KEY takes
        the changes away, as a read-only role would)."""
        key = _key_name(resource)
        with self.store.read() as c:
            self._key_row(c, key)
        return list(permissions)

    # -- writes -----------------------------------------------------------------------
    def create_crypto_key_version(self, key: str) -> CryptoKeyVersion:
        key = _key_name(key)
        with self.store.write() as c:
            self._key_row(c, key)
            (top,) = c.execute("SELECT COALESCE(MAX(number), 0) FROM versions WHERE key=?", (key,)).fetchone()
            c.execute(
                "INSERT INTO versions(key, number, state, create_time) VALUES(?, ?, ?, ?)",
                (key, top + 1, ENABLED, format_time(self.store.now())),
            )
            row = self._version_row(c, key, top + 1)
        return self._to_version(row)

    def update_crypto_key_primary_version(self, key: str, version: str) -> CryptoKey:
        key = _key_name(key)
        vkey, number = _version_name(version)
        if vkey != key:
            raise api.InvalidArgument(f"{version} is not a version of {key}", resource=version)
        with self.store.write() as c:
            row = self._version_row(c, key, number)
            if row["state"] != ENABLED:
                raise api.FailedPrecondition(
                    f"{version} is not enabled (state {row['state']}); only an ENABLED "
                    "version can become primary (R2).",
                    resource=version,
                    rule="R2",
                )
            c.execute("UPDATE keys SET primary_version=? WHERE name=?", (number, key))
            self._notify("on_primary_changed", c, key, version_name(key, number))
            return self._to_key(self._key_row(c, key))

    def update_crypto_key_version(self, version: str, state: str) -> CryptoKeyVersion:
        key, number = _version_name(version)
        if state not in (ENABLED, DISABLED):
            raise api.InvalidArgument(f"state must be ENABLED or DISABLED, not {state}")
        with self.store.write() as c:
            row = self._version_row(c, key, number)
            if row["state"] not in (ENABLED, DISABLED):
                raise api.FailedPrecondition(
                    f"{version} is {row['state']}; only ENABLED and DISABLED versions can "
                    "change state (restore a DESTROY_SCHEDULED one first, R1).",
                    resource=version,
                    rule="R1",
                )
            c.execute("UPDATE versions SET state=? WHERE key=? AND number=?", (state, key, number))
            if state == DISABLED:
                self._notify("on_version_unusable", c, version, self._primary_name(c, key))
            return self._to_version(self._version_row(c, key, number))

    def destroy_crypto_key_version(self, version: str) -> CryptoKeyVersion:
        key, number = _version_name(version)
        with self.store.write() as c:
            row = self._version_row(c, key, number)
            if row["state"] not in (ENABLED, DISABLED):
                raise api.FailedPrecondition(
                    f"{version} is already {row['state']} (R1).", resource=version, rule="R1"
                )
            krow = self._key_row(c, key)
            when = self.store.now() + timedelta(seconds=krow["destroy_scheduled_duration"])
            c.execute(
                "UPDATE versions SET state=?, destroy_time=? WHERE key=? AND number=?",
                (DESTROY_SCHEDULED, format_time(when), key, number),
            )
            self._notify("on_version_unusable", c, version, self._primary_name(c, key))
            return self._to_version(self._version_row(c, key, number))

    def restore_crypto_key_version(self, version: str) -> CryptoKeyVersion:
        key, number = _version_name(version)
        with self.store.write() as c:
            row = self._version_row(c, key, number)
            if row["state"] != DESTROY_SCHEDULED:
                raise api.FailedPrecondition(
                    f"{version} is {row['state']}; only a DESTROY_SCHEDULED version can be restored (R1).",
                    resource=version,
                    rule="R1",
                )
            # A restored version comes back DISABLED, never ENABLED (R1).
            c.execute(
                "UPDATE versions SET state=?, destroy_time=NULL WHERE key=? AND number=?",
                (DISABLED, key, number),
            )
            return self._to_version(self._version_row(c, key, number))

    def set_iam_policy(self, key: str, policy: IamPolicy) -> IamPolicy:
        key = _key_name(key)
        with self.store.write() as c:
            row = self._key_row(c, key)
            if policy.etag and policy.etag != str(row["iam_etag"]):
                raise api.PreconditionFailed(
                    f"IAM policy of {key} changed since it was read (etag).", resource=key
                )
            bindings = {r: sorted(set(m)) for r, m in policy.bindings.items() if m}
            c.execute(
                "UPDATE keys SET iam=?, iam_etag=iam_etag+1 WHERE name=?",
                (json.dumps(bindings, sort_keys=True), key),
            )
            self._notify("on_iam_changed", c, key, bindings)
        return self.get_iam_policy(key)

    # -- used by the fake's other services (not part of the Backend protocol) ----------
    @staticmethod
    def _primary_name(c: sqlite3.Connection, key: str) -> str | None:
        row = c.execute("SELECT primary_version FROM keys WHERE name=?", (key,)).fetchone()
        return version_name(key, row[0]) if row and row[0] is not None else None

    def advance_to(self, c: sqlite3.Connection, now: str) -> None:
        """Scheduled destructions whose time has come become DESTROYED for good (R1)."""
        c.execute(
            "UPDATE versions SET state=? WHERE state=? AND destroy_time<=?",
            (DESTROYED, DESTROY_SCHEDULED, now),
        )

    def check_usable(
        self, c: sqlite3.Connection, version: str, member: str, *, service: str, purpose: str
    ) -> None:
        """Raise as the service would if `member` cannot use `version` right now:
        the version must be ENABLED (R14, R22, R41) and the agent must hold
        Encrypter/Decrypter on the key (R5)."""
        key, number = _version_name(version)
        krow = c.execute("SELECT * FROM keys WHERE name=?", (key,)).fetchone()
        if krow is None:
            raise api.NotFound(f"{service}: key {key} not found", resource=key)
        self._check_agent(krow, member, service=service)
        vrow = c.execute("SELECT state FROM versions WHERE key=? AND number=?", (key, number)).fetchone()
        state = vrow["state"] if vrow else "missing"
        if state != ENABLED:
            raise api.FailedPrecondition(
                f"{service}: cannot {purpose}: key version {version} is {state} (R14)",
                resource=version,
                rule="R14",
            )

    def primary_for_encrypt(self, c: sqlite3.Connection, key: str, member: str, *, service: str) -> str:
        """The version a new write under `key` is encrypted with (R2), or the error the
        service returns when there is none usable (R3, R15, R5)."""
        krow = c.execute("SELECT * FROM keys WHERE name=?", (key,)).fetchone()
        if krow is None:
            raise api.NotFound(f"{service}: key {key} not found", resource=key)
        self._check_agent(krow, member, service=service)
        primary = krow["primary_version"]
        vrow = (
            c.execute("SELECT state FROM versions WHERE key=? AND number=?", (key, primary)).fetchone()
            if primary is not None
            else None
        )
        if vrow is None or vrow["state"] != ENABLED:
            state = vrow["state"] if vrow else "missing"
            raise api.FailedPrecondition(
                f"{service}: cannot encrypt with {key}: its primary version is {state} (R3, R15)",
                resource=key,
                rule="R15",
            )
        return version_name(key, primary)

    @staticmethod
    def _check_agent(krow: sqlite3.Row, member: str, *, service: str) -> None:
        members = json.loads(krow["iam"]).get(ENCRYPTER_DECRYPTER, [])
        if member not in members:
            raise api.PermissionDenied(
                f"{service}: {member.split(':', 1)[-1]} lacks {ENCRYPTER_DECRYPTER} on "
                f"{krow['name']} (cloudkms.cryptoKeyVersions.useToEncrypt/useToDecrypt, R5)",
                resource=krow["name"],
                rule="R5",
            )
