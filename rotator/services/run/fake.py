"""Fake Cloud Run (R40, R41, R43): the key is set per revision; every update creates
a revision under the key's then-primary version, and the traffic that followed the
latest revision moves to it; nothing new starts under an unusable key."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from typing import Any

from rotator import apierrors as api
from rotator.agents import agents
from rotator.backends.fake.documents import (
    check_key_name,
    check_region,
    encrypt_version,
    find,
    load_docs,
    save_docs,
)
from rotator.backends.fake.events import logs_key_failures
from rotator.backends.fake.inventory import project_of, versions_of
from rotator.backends.fake.kms import FakeKms
from rotator.backends.fake.shared import FakeWorld
from rotator.backends.fake.store import Store
from rotator.locations import is_region
from rotator.model import ProtectedResource, RunRevision, RunService
from rotator.names import location_of
from rotator.services.run.spec import SPEC
from rotator.timeutil import format_time, parse_time

_UNSET: Any = object()


class FakeRun:
    def __init__(self, store: Store, kms: FakeKms, project_number: str):
        self.store, self.kms = store, kms
        self.agent = agents(SPEC.name, project_number)[0]

    @staticmethod
    def _to_service(d: dict[str, Any]) -> RunService:
        return RunService(
            name=d["service"],
            revocation_action=d.get("revocation_action", "PREVENT_NEW"),
            revisions=tuple(
                RunRevision(
                    r["revision"],
                    r.get("kms_key"),
                    r.get("kms_key_version"),
                    r.get("traffic_percent", 0),
                    tags=(r["tag"],) if r.get("tag") else (),
                    pinned=bool(r.get("pinned")),
                    deployed=parse_time(r["deployed"]) if r.get("deployed") else None,
                )
                for r in d.get("revisions", [])
            ),
        )

    def list_services(self, region: str) -> list[RunService]:
        """One region's services. As Cloud Run's ListServices: the location "must be a
        valid Google Cloud region, and cannot be the "-" wildcard" (run_v2
        ListServicesRequest.parent)."""
        if not is_region(region):
            raise api.InvalidArgument(
                f"projects/*/locations/{region}: Location must be a valid Google Cloud region, "
                'and cannot be the "-" wildcard',
                resource=region,
            )
        with self.store.read() as c:
            return [self._to_service(d) for d in load_docs(c, "run") if location_of(d["service"]) == region]

    def all_services(self) -> list[RunService]:
        """Every service of the world (the world file and KMS Inventory; no Cloud Run call)."""
        with self.store.read() as c:
            return [self._to_service(d) for d in load_docs(c, "run")]

    def protected_resources(self, key: str, home: str) -> Iterator[ProtectedResource]:
        """What Cloud KMS Inventory says its services and their revisions hold of `key` (the fake's inventory,
        rotator/backends/fake/inventory.py), each under its project (`home` if its name
        does not say)."""
        for s in self.all_services():
            revisions = [r for r in s.revisions if r.kms_key == key or versions_of(key, [r.kms_key_version])]
            if revisions:
                name = f"//run.googleapis.com/{s.name}"
                yield ProtectedResource(
                    name,
                    "run.googleapis.com/Service",
                    versions_of(key, (r.kms_key_version for r in revisions)),
                    project_of(name, home),
                )
                for r in revisions:
                    yield ProtectedResource(
                        f"{name}/revisions/{r.name}",
                        "run.googleapis.com/Revision",
                        versions_of(key, [r.kms_key_version]),
                        project_of(name, home),
                    )

    def resource_names(self, c: sqlite3.Connection) -> list[str]:
        """The names of its resources as the world keeps them, each under its project
        (FakeBackend.projects: the projects the wire servers answer for)."""
        return [d["service"] for d in load_docs(c, "run")]

    def get_service(self, name: str) -> RunService:
        with self.store.read() as c:
            return self._to_service(find(load_docs(c, "run"), "service", name, "service"))

    def test_iam_permissions(self, resource: str, permissions: list[str]) -> list[str]:
        """Every permission (ROTATOR_FAKE_FAULTS deny=SERVICE takes the changes away)."""
        self.get_service(resource)
        return list(permissions)

    def update_service(self, name: str, *, kms_key: str | None = _UNSET) -> RunService:
        """Deploy a new revision (R40): under `kms_key` if given, else the latest
        revision's key, encrypted with that key's current primary (R43). Fails under a
        disabled, destroyed or unreachable key (R41), a key in another region (R7) or
        without the agent's role (R5)."""
        with self.store.write() as c:
            docs = load_docs(c, "run")
            d = find(docs, "service", name, "service")
            revisions = d.setdefault("revisions", [])
            latest = revisions[-1] if revisions else None
            key = (latest or {}).get("kms_key") if kms_key is _UNSET else kms_key
            version = None
            if key:
                key = check_key_name(key, service="Cloud Run")
                check_region(key, location_of(name), service="Cloud Run", resource=name)
                try:
                    version = encrypt_version(c, self.kms, key, [self.agent], service="Cloud Run")
                except api.ApiError as e:
                    raise type(e)(
                        f"deploying a new revision of {name} failed: {e.message} (R41)",
                        resource=name,
                        rule=e.rule or "R41",
                    ) from None
            short = name.rsplit("/", 1)[1]
            numbers = [
                int(m.group(1))
                for r in revisions
                if (m := re.search(r"-(\d+)(?:-[a-z0-9]+)?$", r["revision"]))
            ]
            revision = {
                "revision": f"{short}-{max(numbers, default=0) + 1:05d}",
                "kms_key": key,
                "kms_key_version": version,
                "traffic_percent": 0,
                "deployed": format_time(self.store.now()),  # Revision.create_time
            }
            if latest is not None and not latest.get("pinned"):
                # The traffic that followed the latest revision follows the new one; a
                # share pinned to it by name, and its tag, stay with it.
                revision["traffic_percent"] = latest.get("traffic_percent", 0)
                latest["traffic_percent"] = 0
            elif latest is not None:
                revision["traffic_percent"] = 0
            else:
                revision["traffic_percent"] = 100
            revisions.append(revision)
            save_docs(c, "run", docs)
            return self._to_service(d)

    def delete_revision(self, name: str, revision: str) -> RunService:
        with self.store.write() as c:
            docs = load_docs(c, "run")
            d = find(docs, "service", name, "service")
            r = find(d.get("revisions", []), "revision", revision, "revision")
            if r.get("traffic_percent", 0) or r.get("tag"):
                raise api.FailedPrecondition(f"{revision} serves traffic; move it first", resource=revision)
            d["revisions"].remove(r)
            save_docs(c, "run", docs)
            return self._to_service(d)

    @logs_key_failures("Cloud Run")
    def start_instance(self, name: str) -> None:
        """A new instance of a serving revision needs its version usable (R41, R43)."""
        with self.store.read() as c:
            d = find(load_docs(c, "run"), "service", name, "service")
            for r in d.get("revisions", []):
                if (r.get("traffic_percent", 0) or r.get("tag")) and r.get("kms_key_version"):
                    try:
                        self.kms.check_usable(
                            c,
                            r["kms_key_version"],
                            self.agent,
                            service="Cloud Run",
                            purpose=f"start {r['revision']}",
                        )
                    except api.ApiError as e:
                        raise api.FailedPrecondition(
                            f"{name}: no new instance of {r['revision']} can start: {e.message} (R41)",
                            resource=name,
                            rule="R41",
                        ) from None


def connect(backend: FakeWorld) -> FakeRun:
    """This service's fake in `backend`'s world (rotator/backends/fake/__init__.py)."""
    return FakeRun(backend.store, backend.kms, backend.project_number)
