"""The transport object rewrites go out on (rotator/backends/gcp/lean_http.py): what
the google-cloud clients read of its answers, the requests exceptions its failures
become (so the retry policy reads them as before), when it is used and when not.

Backends: gcp over the wire (and a socket that never answers)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests.exceptions as rexc
from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from storage_http import Fault
from test_gcp_faults import KEY, Wire, world

from rotator.backends.gcp import lean_http
from rotator.backends.gcp.lean_http import LeanHttp
from rotator.backends.gcp.retry import retryable


@pytest.fixture
def wire(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Wire]:
    yield from Wire(tmp_path, monkeypatch, world()).start()


def test_rewrites_go_out_on_the_lean_transport_once_the_pool_is_sized(wire: Wire) -> None:
    storage = wire.gcp.storage
    assert storage.rewrites is storage.client  # before: the default session
    storage.size_pool(8)
    assert isinstance(storage.rewrites._http, LeanHttp)
    obj = storage.get_object("bkt", "o/0")
    result = storage.rewrite_object("bkt", "o/0", destination_kms_key=KEY, if_generation_match=obj.generation)
    assert result.done and result.resource is not None
    assert result.resource.generation == obj.generation + 1
    assert result.resource.kms_key_version is not None and result.resource.kms_key_version.startswith(KEY)
    assert wire.storage.count(op="objects.rewrite") == 1


def test_the_rewrites_client_keeps_the_endpoint_the_adapter_was_made_with(
    wire: Wire, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = wire.gcp.storage
    monkeypatch.delenv("STORAGE_EMULATOR_HOST")  # read once, when the adapter was made
    storage.size_pool(8)
    assert storage.rewrites._connection.API_BASE_URL == wire.storage.url
    obj = storage.get_object("bkt", "o/2")
    done = storage.rewrite_object("bkt", "o/2", destination_kms_key=KEY, if_generation_match=obj.generation)
    assert done.done


def test_its_errors_read_as_the_default_transport_s(wire: Wire) -> None:
    from rotator import apierrors as api

    storage = wire.gcp.storage
    storage.size_pool(8)
    obj = storage.get_object("bkt", "o/1")
    with pytest.raises(api.PreconditionFailed, match="gs://bkt/o/1"):  # 412: never retried
        storage.rewrite_object("bkt", "o/1", destination_kms_key=KEY, if_generation_match=obj.generation + 5)
    assert wire.storage.count(op="objects.rewrite") == 1
    wire.storage.faults.append(Fault(op="objects.rewrite", status=503, times=2))
    result = storage.rewrite_object("bkt", "o/1", destination_kms_key=KEY, if_generation_match=obj.generation)
    assert result.done  # 503 twice, retried
    assert wire.storage.count(op="objects.rewrite") == 4


def test_an_error_answer_names_the_method_and_url_as_google_api_core_does(wire: Wire) -> None:
    http = LeanHttp(AnonymousCredentials(), 2)
    url = wire.storage.url + "/storage/v1/b/nosuchbucket"
    answer = http.request("GET", url)
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == 404
    error = gexc.from_http_response(answer)
    assert isinstance(error, gexc.NotFound)
    assert f"GET {url}" in str(error)


def test_a_refused_connection_and_a_silent_server_become_retryable_requests_errors() -> None:
    http = LeanHttp(AnonymousCredentials(), 2)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nothing listens there
    with pytest.raises(rexc.ConnectionError) as refused:
        http.request("GET", f"http://127.0.0.1:{port}/storage/v1/b/x", timeout=2)
    assert retryable(refused.value)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(silent.accept()[0]), daemon=True).start()
    try:
        with pytest.raises(rexc.ReadTimeout) as timed_out:
            http.request("GET", f"http://127.0.0.1:{silent.getsockname()[1]}/x", timeout=(2, 0.2))
        assert retryable(timed_out.value)
    finally:
        for conn in accepted:
            conn.close()
        silent.close()


@pytest.mark.parametrize(
    ("variable", "value"),
    [("HTTPS_PROXY", "http://proxy.internal:3128"), ("GOOGLE_API_USE_CLIENT_CERTIFICATE", "true")],
)
def test_behind_a_proxy_or_with_mutual_tls_rewrites_keep_the_default_transport(
    wire: Wire, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    session = wire.gcp.storage.client._http
    assert lean_http.usable(session)
    monkeypatch.setenv(variable, value)
    assert not lean_http.usable(session)
    wire.gcp.storage.size_pool(8)
    assert wire.gcp.storage.rewrites is wire.gcp.storage.client


def test_against_google_itself_the_client_builds_its_urls_through_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a local endpoint the client asks its transport whether it is mutual TLS
    before it builds a URL (the default transport answers is_mtls)."""
    from google.cloud import storage

    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    client = storage.Client(
        project="demo", credentials=AnonymousCredentials(), _http=LeanHttp(AnonymousCredentials(), 2)
    )
    url = client._connection.build_api_url("/b/bkt/o/x/rewriteTo/b/bkt/o/x")
    assert url.startswith("https://storage.googleapis.com/storage/v1/b/bkt/o/x/rewriteTo/")
    client.close()  # the client's close reaches the transport


def test_when_google_auth_turned_mutual_tls_on_by_itself_rewrites_keep_the_default_transport(
    wire: Wire, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gcloud's certificate configuration turns mutual TLS on without any variable: the
    default session then says is_mtls, and the lean transport is not used."""
    storage = wire.gcp.storage
    monkeypatch.setattr(type(storage.client._http), "is_mtls", property(lambda _self: True))
    storage.size_pool(8)
    assert storage.rewrites is storage.client


def test_sized_again_the_old_lean_pool_is_closed(wire: Wire) -> None:
    storage = wire.gcp.storage
    storage.size_pool(8)
    first = storage.rewrites._http
    closed: list[bool] = []
    first.close = lambda: closed.append(True)  # type: ignore[method-assign]
    storage.size_pool(16)
    assert closed == [True] and storage.rewrites._http is not first


def test_a_certificate_problem_is_an_ssl_error_never_retried(wire: Wire, tmp_path: Path) -> None:
    http = LeanHttp(AnonymousCredentials(), 2)
    https = wire.storage.url.replace("http://", "https://")  # the server speaks plain HTTP
    with pytest.raises(rexc.SSLError) as failed:
        http.request("GET", https + "/storage/v1/b/bkt", timeout=5)
    assert not retryable(failed.value)


def test_a_ca_bundle_directory_is_read_as_requests_reads_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path))
    http = LeanHttp(AnonymousCredentials(), 2)
    assert http._pool.connection_pool_kw.get("ca_cert_dir") == str(tmp_path)
    assert "ca_certs" not in http._pool.connection_pool_kw
