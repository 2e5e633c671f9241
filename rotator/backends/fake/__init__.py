"""The fake backend: a simulator of Cloud KMS and Cloud Storage with durable state.

`open_world(path)` keeps the world's state in `<path>.state` (SQLite) beside the
YAML file; the YAML is read once, when no state exists. Editing the YAML after that
is refused (its hash no longer matches) until `world reset`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from rotator.backends.fake.batch import FakeStorageBatch
from rotator.backends.fake.events import FakeLogs
from rotator.backends.fake.faults import FaultInjector, FaultSpec
from rotator.backends.fake.faults import from_environment as faults_from_environment
from rotator.backends.fake.faults import wrap as wrap_in_faults
from rotator.backends.fake.inventory import FakeInventory
from rotator.backends.fake.kms import FakeKms
from rotator.backends.fake.shared import FakeWorld
from rotator.backends.fake.store import SCHEMA_VERSION, Store
from rotator.backends.fake.worldfile import dump, load_into, validate_world
from rotator.errors import BadInput
from rotator.keylock import one_apply_per_key
from rotator.kms_inventory import ORGANIZATION_ENV
from rotator.retry import RetryPolicy
from rotator.services import REGISTRY, part
from rotator.timeutil import format_time
from rotator.yamlload import load_yaml


class FakeClock:
    def __init__(self, store: Store):
        self.store = store

    def now(self) -> datetime:
        return self.store.now()


class FakeBackend:
    kind = "fake"

    def __init__(
        self,
        store: Store,
        *,
        world_path: str | None = None,
        faults: FaultSpec | None = None,
        retry: RetryPolicy | None = None,
        on_retry: Callable[[BaseException, int], None] | None = None,
    ):
        self.store = store
        self.world_path = world_path
        self.project = store.get_meta("project") or ""
        self.project_number = store.get_meta("project_number") or ""
        self.clock = FakeClock(store)
        self.kms = FakeKms(store)
        # Locations that Google's all-locations lists (Firestore backups, Dataflow jobs,
        # functions) report as `unreachable`: add one to get a partial list, as when a
        # region does not answer in time. Not part of the world file.
        self.unreachable: set[str] = set()
        world: FakeWorld = self  # what each fake is made from (checked here by mypy)
        # Each service's fake (rotator/services/<name>/fake.py) under the service's name:
        # typed where it is used, by the service's spec (`SPEC.api(backend)`).
        made = {service.name: part(service.name, "fake").connect(world) for service in REGISTRY}
        for name, fake in made.items():
            setattr(self, name, fake)
        # Cloud Storage's batch operations rewrite through the fake's own storage.
        self.batch = FakeStorageBatch(store, made["storage"], self.project)
        self.logs = FakeLogs(store)
        self.inventory = FakeInventory(store, self)
        # As on Google Cloud: the search needs an organization, the summary does not.
        self.organization: str | None = os.environ.get(ORGANIZATION_ENV) or None
        # Key events reach every service in the same transaction; those that react to
        # one have its handler (Firestore re-encrypts, Dataflow jobs die: R21, R31, R33).
        self.kms.listeners = list(self.fakes().values())
        # Faults (issue 6.2) are injected at the API boundary only: the services above
        # keep talking to each other directly, as Google's do.
        self.faults: FaultInjector | None = None
        if faults is not None and faults.active:
            self.faults = wrap_in_faults(self, faults, retry, on_retry=on_retry)

    @classmethod
    def from_dict(
        cls,
        doc: dict[str, Any],
        *,
        source: str = "world",
        faults: FaultSpec | None = None,
        retry: RetryPolicy | None = None,
    ) -> FakeBackend:
        """An in-memory world (tests)."""
        doc = validate_world(doc, source=source)
        store = Store(None)
        load_into(store, doc)
        return cls(store, faults=faults, retry=retry)

    def close(self) -> None:
        """Close the state database (the CLI does at the end of each command)."""
        self.store.close()

    def fakes(self) -> dict[str, Any]:
        """Each service's fake by its name, in registry order."""
        return {service.name: getattr(self, service.name) for service in REGISTRY}

    def identity(self) -> str:
        return "fake backend (no credentials)"

    def for_project(self, project: str) -> Any:
        """Another project of the world (rotator/backends/fake/projects.py)."""
        from rotator.backends.fake.projects import OtherProject

        return self if project == self.project else OtherProject(self, project)

    def projects(self) -> set[str]:
        """The projects the world names: its own, and every other that a key or a resource
        is named under (those the wire servers answer for)."""
        from rotator.backends.fake.documents import load_docs

        with self.store.read() as c:
            names = [r[0] for r in c.execute("SELECT name FROM keys").fetchall()]
            for fake in self.fakes().values():
                if hasattr(fake, "resource_names"):  # a service whose names say their project
                    names += fake.resource_names(c)
            names += [d["name"] for d in load_docs(c, "other_resources")]
        found = {self.project}
        for name in names:
            parts = name.lstrip("/").split("/")
            if "projects" in parts and len(parts) > parts.index("projects") + 1:
                found.add(parts[parts.index("projects") + 1])
        found.discard("_")
        return found

    def describe(self) -> dict[str, str]:
        return {
            "backend": "fake",
            "world": os.path.abspath(self.world_path) if self.world_path else "(memory)",
            "project": self.project,
        }

    def advance(self, delta: timedelta) -> datetime:
        """Move the fake clock; time-driven changes happen in the same transaction."""
        with self.store.write() as c:
            now = self.store.now() + delta
            self.store.set_now(now)
            stamp = format_time(now)
            self.kms.advance_to(c, stamp)
            for fake in self.fakes().values():
                if hasattr(fake, "advance_to"):  # what the clock changes on its own
                    fake.advance_to(c, stamp)
        return now

    def dump(self) -> dict[str, Any]:
        with self.store.read():
            return dump(self.store)

    def apply_lock(self, key: str) -> AbstractContextManager[None]:
        """One apply per key at a time, across processes: a file lock beside the world's
        state (in memory for a world without a state file)."""
        path = self.store.path
        lock_file = (lambda digest: f"{path}.lock-{digest}") if path is not None else None
        return one_apply_per_key(key, lock_file, scope=id(self.store))


def state_path(world: str) -> str:
    return f"{world}.state"


def _read_world(world: str) -> tuple[bytes, str]:
    try:
        raw = Path(world).read_bytes()
    except FileNotFoundError:
        raise BadInput(f"world file {world} not found", resource=world) from None
    except OSError as e:
        raise BadInput(f"world file {world}: {e.strerror}", resource=world) from None
    return raw, hashlib.sha256(raw).hexdigest()


def open_world(world: str, *, on_retry: Callable[[BaseException, int], None] | None = None) -> FakeBackend:
    faults = faults_from_environment()  # a wrong spec is refused before anything is made
    raw, digest = _read_world(world)
    path = state_path(world)
    if os.path.exists(path):
        store = Store(path)
        recorded = store.get_meta("source_sha256")
        version = store.get_meta("schema_version")
        if recorded != digest or version != SCHEMA_VERSION:
            store.close()
            raise BadInput(
                f"world file {world} was edited after its state was created in {path} "
                f"(applied changes live there); run `rotator --world {world} world reset` "
                "to discard that state and load the file again, or restore the file",
                resource=world,
            )
        return FakeBackend(store, world_path=world, faults=faults, on_retry=on_retry)
    return _create_state(world, raw, digest, faults, on_retry)


def _create_state(
    world: str,
    raw: bytes,
    digest: str,
    faults: FaultSpec | None,
    on_retry: Callable[[BaseException, int], None] | None,
) -> FakeBackend:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput(f"world file {world} is not UTF-8 text", resource=world) from None
    doc = validate_world(load_yaml(text, source=world), source=world)
    path = state_path(world)
    # Build beside and rename: a killed first load leaves no half-made state.
    tmp = f"{path}.tmp-{os.getpid()}"
    if os.path.exists(tmp):
        os.remove(tmp)
    building = Store(tmp)
    try:
        load_into(building, doc, source_sha256=digest)
        building.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        building.close()
    for suffix in ("-wal", "-shm"):
        if os.path.exists(tmp + suffix):
            os.remove(tmp + suffix)
    os.replace(tmp, path)
    return FakeBackend(Store(path), world_path=world, faults=faults, on_retry=on_retry)


def reset_world(world: str) -> FakeBackend:
    """Discard the state and load the YAML again."""
    _read_world(world)
    path = state_path(world)
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    return open_world(world)
