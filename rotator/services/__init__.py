"""The services whose resources rotator finds and moves between key versions, one
package each: rotator/services/<name>/ holds the service's spec, its fake, its gcp
adapter, its steps and its section of the world file.

A package's parts are imported only when needed (`part`): a playbook that never touches
a service does not load that service's client library.
"""

from __future__ import annotations

from importlib import import_module
from types import ModuleType

# One line a service: the order is the order in which inventories, plans and world files
# list them.
REGISTRY: tuple[str, ...] = ("storage", "firestore", "dataflow", "run", "functions")


def part(service: str, name: str) -> ModuleType:
    """One part of a service's package: 'spec', 'fake', 'gcp', 'steps', 'world', 'uses'."""
    return import_module(f"rotator.services.{service}.{name}")
