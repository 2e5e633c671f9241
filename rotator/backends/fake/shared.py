"""What each service's fake (rotator/services/<name>/fake.py) is made from: the parts of
the fake backend it shares with the others. FakeBackend has them; the fakes name this
protocol rather than the backend, so no service imports the backend that loops over it."""

from __future__ import annotations

from typing import Protocol

from rotator.backends.fake.kms import FakeKms
from rotator.backends.fake.store import Store


class FakeWorld(Protocol):
    @property
    def store(self) -> Store: ...
    @property
    def kms(self) -> FakeKms: ...
    @property
    def project(self) -> str: ...
    @property
    def project_number(self) -> str: ...
    # Locations that every all-locations list reports as unreachable (tests).
    @property
    def unreachable(self) -> set[str]: ...
