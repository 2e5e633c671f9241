"""Fixtures for the wire tests (fake servers speaking Google's real protocols).

This directory goes on sys.path so its modules import as top-level ones
(`from grpc_server import serve_grpc`), whether or not tests/wire is a package.
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

# -- gRPC (tests/wire/grpc_server.py) -------------------------------------------------------
from collections.abc import Iterator  # noqa: E402
from typing import Any  # noqa: E402

import grpc  # noqa: E402
import pytest  # noqa: E402
from grpc_server import GrpcServer, serve_grpc  # noqa: E402
from worlds import services_world  # noqa: E402

from rotator.backends.fake import FakeBackend  # noqa: E402


@pytest.fixture
def grpc_world() -> dict[str, Any]:
    """The world behind `grpc_server` (worlds.services_world: all five services on
    APP_KEY); override this fixture or mutate it before the server starts."""
    return services_world()


@pytest.fixture
def grpc_backend(grpc_world: dict[str, Any]) -> FakeBackend:
    return FakeBackend.from_dict(grpc_world)


@pytest.fixture
def grpc_server(grpc_backend: FakeBackend) -> Iterator[GrpcServer]:
    with serve_grpc(grpc_backend) as server:
        yield server


@pytest.fixture
def grpc_channel(grpc_server: GrpcServer) -> Iterator[grpc.Channel]:
    """An insecure channel to `grpc_server`, closed before the server stops."""
    channel = grpc.insecure_channel(grpc_server.endpoint)
    yield channel
    channel.close()
