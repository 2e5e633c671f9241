"""The fixture of the fake service tests (tests/services/): `b`, a fresh services_world
backend (its helpers are in tests/services/service_fakes.py)."""

from __future__ import annotations

import pytest
from service_fakes import make

from rotator.backends.fake import FakeBackend


@pytest.fixture
def b() -> FakeBackend:
    return make()
