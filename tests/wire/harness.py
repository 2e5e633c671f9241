"""Serve a fake world file the way Google serves its APIs, for the gcp backend.

The servers run in this process over the world's own SQLite state, so `world advance`
and `world dump` (which use --world on the same file) see what the gcp backend did.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from grpc_server import GrpcServer, serve_grpc
from storage_http import StorageServer, serve_storage

from rotator.backends.fake import open_world

ORGANIZATION = "123456789"


def world_dump(world: Path) -> dict[str, Any]:
    """The world file's state as `world dump` prints it (beside its servers, which share it)."""
    backend = open_world(str(world))
    try:
        return backend.dump()
    finally:
        backend.store.close()


def world_advance(world: Path, delta: timedelta) -> None:
    backend = open_world(str(world))
    try:
        backend.advance(delta)
    finally:
        backend.store.close()


@contextmanager
def serve_world_file(world: Path, cache: Path) -> Iterator[tuple[dict[str, str], StorageServer, GrpcServer]]:
    """Servers for `world`, and the environment that points the gcp backend at them."""
    backend = open_world(str(world))
    with serve_storage(backend) as storage, serve_grpc(backend) as grpc_server:
        env = {
            "STORAGE_EMULATOR_HOST": storage.url,
            **grpc_server.env(),
            "GOOGLE_CLOUD_PROJECT": backend.project,
            "ROTATOR_PROJECT_NUMBER": backend.project_number,
            # A test may say there is none (ROTATOR_ORGANIZATION=""): summary only.
            "ROTATOR_ORGANIZATION": os.environ.get("ROTATOR_ORGANIZATION", ORGANIZATION),
            "XDG_CACHE_HOME": str(cache),
        }
        yield env, storage, grpc_server
    backend.store.close()
