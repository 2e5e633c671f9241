"""Shared fixtures. Worlds are built in tests/worlds.py (`from worlds import ...`), running
rotator in tests/helpers.py (`from helpers import ...`): pytest puts this directory on
sys.path because this conftest lives here (tests/ has no __init__.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from worlds import make_world, write_world

from rotator.backends.fake import FakeBackend


@pytest.fixture
def world() -> dict[str, Any]:
    """The default world dict (see worlds.make_world); mutate it freely."""
    return make_world()


@pytest.fixture
def backend(world: dict[str, Any]) -> FakeBackend:
    """An in-memory FakeBackend of the `world` fixture (edit `world` before first use
    by overriding the fixture, or build your own with worlds.make_backend)."""
    return FakeBackend.from_dict(world)


@pytest.fixture
def world_file(tmp_path: Path, world: dict[str, Any]) -> Path:
    """The `world` fixture written as a YAML world file in a temporary directory (its
    SQLite state will appear beside it as `<file>.state` on first open_world)."""
    return write_world(tmp_path / "world.yaml", world)
