"""The services whose resources rotator finds and moves between key versions, one
package each: rotator/services/<name>/ holds the service's spec, its fake, its gcp
adapter, its steps and its section of the world file.

The registry holds the specs only (plain data). A package's other parts are imported
only when needed (`part`): a playbook that never touches a service does not load that
service's client library, and the registry never loads a fake or an adapter.
"""

from __future__ import annotations

import typing
from importlib import import_module
from types import ModuleType
from typing import Any

from rotator.services import core, dataflow, firestore, functions, run, storage
from rotator.services.spec import PinKind, ServiceSpec

# One line a service: the order is the order in which inventories, plans and world files
# list them.
REGISTRY: tuple[ServiceSpec[Any, Any], ...] = (
    storage.SPEC,
    firestore.SPEC,
    dataflow.SPEC,
    run.SPEC,
    functions.SPEC,
)

# Their names, as --services and plans spell them.
SERVICES: tuple[str, ...] = tuple(s.name for s in REGISTRY)
_BY_NAME = {s.name: s for s in REGISTRY}

# Every pin kind, in the order inventories list a version's pins: the primary first,
# then each service's in registry order, then what Cloud KMS Inventory or a partial
# list says (rotator.services.core).
PIN_KINDS: dict[str, PinKind] = {
    k.kind: k for k in (*core.FIRST, *(k for s in REGISTRY for k in s.pin_kinds), *core.LAST)
}

# Each direct kind's propagation-window counterpart (R43 with R2).
WINDOW_OF: dict[str, str] = {k.kind: k.window for k in PIN_KINDS.values() if k.window}

# Cloud KMS Inventory's product (`PRODUCT/Type`) -> the service whose listing covers it.
COVERED_PRODUCTS: dict[str, str] = {p: s.name for s in REGISTRY for p in s.products}


def spec(service: str) -> ServiceSpec[Any, Any]:
    """The spec of a service by its name (KeyError for a name not in the registry)."""
    return _BY_NAME[service]


def service_of(kind: str) -> str | None:
    """The service a kind of use belongs to (whose agent needs the key, R5); None for
    the kinds no service owns."""
    known = PIN_KINDS.get(kind)
    return known.service if known else None


def part(service: str, name: str) -> ModuleType:
    """One part of a service's package: 'spec', 'api', 'fake', 'gcp', 'steps', 'world', 'uses'."""
    return import_module(f"rotator.services.{service}.{name}")


def protocols(service: ServiceSpec[object, object]) -> tuple[type, type]:
    """The API and reads protocols a service's spec is typed with (`SPEC:
    ServiceSpec[RunApi, RunReads]` in its spec.py, from its api.py): read from that one
    annotation, so the fake's faults and the lints never keep a second list of them."""
    hints = typing.get_type_hints(part(service.name, "spec"))
    api, reads = typing.get_args(hints["SPEC"])
    return api, reads
