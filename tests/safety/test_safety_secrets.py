"""Secrets and output (issue 6.6): plans, journals, logs and error messages never carry
credentials or tokens.

Every scenario runs with credential-looking environment variables set: a service-account
key file (a freshly generated RSA private key, its key id) in
GOOGLE_APPLICATION_CREDENTIALS, and access tokens and an API key in the variables gcloud
and other tools use. Then everything rotator wrote is scanned for any of them: stdout
and stderr of every command (text, `--output json`, `-v`), plan files, journals, and
what reached the wire servers.

* the fake backend: inventory, plan, apply (exit 75, then 0), status, a refusal (3), a
  stale plan (4), a failure (1), bad input (2);
* the gcp backend over the wire (local endpoints, anonymous): plan and apply;
* the gcp backend with no local endpoint, so the key file is really used: the token
  endpoint (a local server named in the key file) turns the signed assertion down;
  rotator must say so without the key, its id, or the assertion it sent.

Backends: fake; gcp over the wire (its own servers).
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import Result, WorldCli, run_cli
from worlds import APP_KEY as APP
from worlds import BUCKET, OBJECT, STORAGE_AGENT, demo_world, make_world, v

PRIVATE_KEY_ID = "5ec7e7000d15c0ffee5ec7e7000d15c0ffee0001"
TOKENS = {
    "CLOUDSDK_AUTH_ACCESS_TOKEN": "ya29.a0SECRETcloudsdkTOKENe3b0c44298fc1c149afbf4c8996fb92427ae41e4",
    "GOOGLE_OAUTH_ACCESS_TOKEN": "ya29.a0SECREToauthTOKEN9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b",
    "GOOGLE_API_KEY": "AIzaSyD-SECRET-apikey-0123456789abcdefghij",
    "ROTATOR_TEST_CLIENT_SECRET": "GOCSPX-SECRETclientSECRET0123456789",
}


@pytest.fixture(scope="module")
def private_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def secrets(private_key: str) -> list[str]:
    """What must never appear: the key's body (every 32-character piece of it), its id,
    and every token."""
    body = "".join(line for line in private_key.splitlines() if "PRIVATE KEY" not in line)
    pieces = [body[i : i + 32] for i in range(0, len(body) - 32, 32)]
    return ["PRIVATE KEY-----", PRIVATE_KEY_ID, *pieces, *TOKENS.values()]


class TokenServer:
    """An OAuth token endpoint that records what it is sent and turns it down."""

    def __init__(self) -> None:
        self.bodies: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length", 0))
                owner.bodies.append(self.rfile.read(length).decode())
                body = json.dumps({"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
                self.send_response(400)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/token"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def token_server() -> Iterator[TokenServer]:
    server = TokenServer()
    yield server
    server.close()


@pytest.fixture
def credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, private_key: str, token_server: TokenServer
) -> Path:
    """A service-account key file and token variables in the environment."""
    keyfile = tmp_path / "creds" / "sa.json"
    keyfile.parent.mkdir()
    keyfile.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "demo",
                "private_key_id": PRIVATE_KEY_ID,
                "private_key": private_key,
                "client_email": "rotator@demo.iam.gserviceaccount.com",
                "client_id": "100000000000000000001",
                "token_uri": token_server.url,
            }
        )
    )
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(keyfile))
    for k, val in TOKENS.items():
        monkeypatch.setenv(k, val)
    return keyfile


class Scan:
    def __init__(self, needles: list[str]):
        self.needles = needles
        self.seen: list[tuple[str, str]] = []

    def add(self, where: str, text: str) -> None:
        self.seen.append((where, text))

    def run(self, where: str, r: Result) -> Result:
        self.add(f"{where} stdout", r.stdout)
        self.add(f"{where} stderr", r.stderr)
        return r

    def files(self, folder: Path, skip: tuple[str, ...] = ()) -> None:
        for p in sorted(folder.rglob("*")):
            if p.is_file() and not p.name.endswith(skip) and "creds" not in p.parts:
                self.add(str(p.relative_to(folder)), p.read_bytes().decode("utf-8", errors="replace"))

    def assert_clean(self) -> None:
        leaks = [(where, n) for where, text in self.seen for n in self.needles if n in text]
        assert not leaks, f"secrets in rotator's output: {leaks[:5]}"
        assert self.seen


def test_fake_backend_outputs_carry_no_credentials(
    tmp_path: Path, credentials: Path, private_key: str
) -> None:
    scan = Scan(secrets(private_key))
    doc = demo_world()
    doc["storage"][0]["objects"].append({"name": "secrets/token.txt", "kms_key_version": v(APP, 1)})
    w = WorldCli(tmp_path, doc)
    for args in (
        ["-v", "inventory", APP],
        ["--output", "json", "inventory", APP],
        ["-v", "plan", "rotate-key", "--key", APP, "--out", "plan.json"],
        ["--output", "json", "plan", "rotate-key", "--key", APP],
        ["-v", "apply", "plan.json", "--yes"],
        ["world", "advance", "6h"],
        ["--output", "json", "apply", "plan.json", "--yes"],
        ["status", "plan.json"],
        ["--output", "json", "status", "plan.json"],
        ["-v", "plan", "destroy-versions", "--key", APP, "--set", "versions=1"],
        ["-v", "plan", "rotate-key", "--key", "projects/demo/keyRings/nope"],
        ["--output", "json", "plan", "rotate-key", "--key", APP, "--new-key", APP],
        ["world", "dump"],
    ):
        scan.run(" ".join(args), w(*args))
    # a stale plan (4) and a failure while running (1)
    assert scan.run("plan", w.plan("rotate-key", APP, out="again.json")).code == 0
    w.change(lambda b: b.kms.update_crypto_key_primary_version(APP, v(APP, 2)))
    assert scan.run("stale apply", w("-v", "apply", "again.json", "--yes")).code == 4
    other = WorldCli(tmp_path / "r5", None)
    other.dir.mkdir()
    from worlds import key, write_world

    write_world(
        other.path,
        make_world(kms=[key(make_world()["kms"][0]["key"], {1: "ENABLED", 2: "ENABLED"})]),
    )
    k = make_world()["kms"][0]["key"]
    assert scan.run("plan", other.plan("rotate-key", k)).code == 0
    # The agent loses its grant after the plan's preflight saw it (R5): the apply fails.
    from rotator.model import IamPolicy

    other.change(lambda b: b.kms.set_iam_policy(k, IamPolicy(bindings={}, etag=b.kms.get_iam_policy(k).etag)))
    r = scan.run("failing apply", other("-v", "--output", "json", "apply", "plan.json", "--yes"))
    assert r.code == 1 and f"gs://{BUCKET}/{OBJECT}" in r.stderr and STORAGE_AGENT.split(":")[1] in r.stderr
    scan.files(tmp_path, skip=(".state", ".state-wal", ".state-shm", ".yaml"))
    assert any(".journal" in where for where, _ in scan.seen)
    scan.assert_clean()


def test_gcp_backend_over_the_wire_outputs_carry_no_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, credentials: Path, private_key: str
) -> None:
    wire = str(Path(__file__).resolve().parents[1] / "wire")
    if wire not in sys.path:
        sys.path.insert(0, wire)
    from harness import serve_world_file  # type: ignore[import-not-found]

    scan = Scan(secrets(private_key))
    world = tmp_path / "world.yaml"
    world.write_text(yaml.safe_dump(demo_world(), sort_keys=False))
    with ExitStack() as stack:
        env, storage, grpc_server = stack.enter_context(serve_world_file(world, tmp_path / "cache"))
        for k, val in env.items():
            monkeypatch.setenv(k, val)
        for args in (
            ["-v", "inventory", APP],
            ["-v", "plan", "rotate-key", "--key", APP, "--out", "plan.json"],
            ["-v", "--output", "json", "apply", "plan.json", "--yes"],
            ["status", "plan.json"],
            ["-v", "plan", "destroy-versions", "--key", APP, "--set", "versions=1"],
        ):
            scan.run(" ".join(args), run_cli(args, cwd=tmp_path))
        scan.add("storage requests", "\n".join(repr(r) for r in storage.requests))
        scan.add("grpc calls", "\n".join(repr(c) for c in grpc_server.calls))
    scan.files(tmp_path, skip=(".state", ".state-wal", ".state-shm", ".yaml"))
    scan.assert_clean()


def no_local_endpoints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rotator.backends.gcp.connect import ENDPOINT_VARS, STORAGE_EMULATOR

    for name in (STORAGE_EMULATOR, "ROTATOR_TEST_BACKEND", *ENDPOINT_VARS.values()):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")  # never the real metadata server


def test_a_key_file_the_token_endpoint_turns_down_is_reported_without_the_key(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    credentials: Path,
    private_key: str,
    token_server: TokenServer,
) -> None:
    no_local_endpoints(tmp_path, monkeypatch)
    scan = Scan(secrets(private_key))
    for args in (["--project", "demo", "inventory", APP], ["-v", "--project", "demo", "inventory", APP]):
        r = scan.run(" ".join(args), run_cli(args, cwd=tmp_path))
        assert r.code != 0, r
        assert r.last_err.startswith("error:"), r
    assert token_server.bodies, "the key file was never used: the test proves nothing"
    # The assertion rotator signed and sent is a credential too (for its lifetime).
    assertions = [b.split("assertion=")[-1].split("&")[0] for b in token_server.bodies]
    scan.needles += [a[-40:] for a in assertions if len(a) > 40]
    scan.assert_clean()


def test_refused_credentials_are_an_error_that_says_so_not_an_internal_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, credentials: Path, token_server: TokenServer
) -> None:
    """Same setting: Google turns the credentials down (invalid_grant). That is not a bug
    in rotator ("internal error ... run with -v"): one line that says the credentials
    were refused and whose they are, without the key."""
    no_local_endpoints(tmp_path, monkeypatch)
    r = run_cli(["--project", "demo", "inventory", APP], cwd=tmp_path)
    assert r.code in (1, 2), r
    assert r.last_err.startswith("error:") and "internal error" not in r.last_err, r.last_err
    assert "credentials" in r.last_err and "rotator@demo.iam.gserviceaccount.com" in r.last_err, r.last_err
