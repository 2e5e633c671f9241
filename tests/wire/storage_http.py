"""The fake world's Cloud Storage served over the Cloud Storage JSON API (HTTP/1.1, JSON).

Point the official client at it and it behaves as against Google, anonymously:

    from wire.storage_http import Fault, serve_storage   # tests/ is on sys.path

    with serve_storage(backend) as server:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.url)
        # google-cloud-storage 3.x otherwise GETs each bucket it touches on a background
        # thread (tracing metadata): extra, racy requests in `server.requests`.
        monkeypatch.setenv("DISABLE_GCS_PYTHON_CLIENT_OTEL_BUCKET_METADATA", "true")
        client = google.cloud.storage.Client(project="demo")

Served (everything else answers 501 with a Google-shaped error):

    GET   /storage/v1/b?project=P                       buckets.list (prefix, pageToken, maxResults)
    GET   /storage/v1/b/BUCKET                          buckets.get
    PATCH /storage/v1/b/BUCKET                          buckets.patch ({"encryption": ...} only)
    GET   /storage/v1/b/BUCKET/o                        objects.list (prefix, delimiter, versions,
                                                        softDeleted, startOffset, endOffset,
                                                        pageToken, maxResults)
    GET   /storage/v1/b/BUCKET/o/OBJECT                 objects.get (generation, softDeleted)
    POST  /storage/v1/b/B/o/OBJ/rewriteTo/b/B/o/OBJ     objects.rewrite (in place only)
    GET   /storage/v1/projects/P/serviceAccount         projects.serviceAccount.get (the agent)

Every JSON response honours `fields` (partial responses: `items(name,kmsKeyName),nextPageToken`,
`a/b`, `*`). int64 values are strings, times are RFC 3339 with milliseconds, as Google sends them.
Errors are `{"error": {"code", "message", "errors": [{"reason", "domain", "message"}]}}`.

Test hooks on the server: `requests` (every request as `Request(method, path, query)`, with
`.op`, `.bucket`, `.object` parsed from the path), `statuses` (the status answered, aligned
with `requests`), `count(...)`, `errors` (unexpected exceptions: server bugs, answered 500)
and `faults` (a list of `Fault` rules, evaluated in order on every request).
"""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
import json
import random
import socket
import sys
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple
from urllib.parse import parse_qs, quote, unquote, urlsplit

from rotator import apierrors as api
from rotator.backends.fake import FakeBackend
from rotator.backends.fake.pages import encode_token
from rotator.locations import MULTI_REGION_KEY_LOCATION, key_location_for_bucket
from rotator.model import NONCURRENT, SOFT_DELETED, Bucket, ObjectInfo

__all__ = ["Fault", "Request", "StorageServer", "serve_storage"]

# The `reason` Google puts in errors[0] for each status.
REASONS = {
    400: "invalid",
    401: "required",
    403: "forbidden",
    404: "notFound",
    409: "conflict",
    412: "conditionNotMet",
    429: "rateLimitExceeded",
    500: "internalError",
    501: "notImplemented",
    502: "badGateway",
    503: "backendError",
    504: "gatewayTimeout",
}
_DEFAULT_MESSAGES = {
    412: "At least one of the pre-conditions you specified did not hold.",
    429: "The rate of change requests to the object is too high. Please slow down.",
    500: "Internal Error",
    503: "We encountered an internal error. Please try again.",
}
_REASON_BY_ERROR: dict[type[api.ApiError], str] = {
    api.FailedPrecondition: "failedPrecondition",
}
MAX_RESULTS = 1000
# Object fields worth leaving out when `fields` does not ask for them (they cost CPU).
_LINKS = frozenset({"id", "selfLink", "mediaLink"})
_TIMES = ("timeCreated", "updated", "timeStorageClassUpdated")
_CONSTANTS = {"metageneration": "1", "contentType": "application/octet-stream", "storageClass": "STANDARD"}
# Every field object_resource builds when `fields` leaves them all (the cheap ones are
# built only when asked for; the rare ones are always built and left to the projection).
_OBJECT_FIELDS = frozenset(
    {"kind", "name", "bucket", "generation", "size", "etag", "md5Hash", "crc32c"}
    | set(_CONSTANTS)
    | _LINKS
    | set(_TIMES)
)


class HttpError(Exception):
    """An error answer of this server (not from the fake)."""

    def __init__(self, status: int, message: str, reason: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason or REASONS.get(status, "unknown")


def error_body(status: int, message: str, reason: str | None = None) -> dict[str, Any]:
    reason = reason or REASONS.get(status, "unknown")
    return {
        "error": {
            "code": status,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": reason}],
        }
    }


# -- request log and fault injection ----------------------------------------------------


class _Route(NamedTuple):
    op: str | None
    bucket: str | None = None
    object: str | None = None
    dst_bucket: str | None = None
    dst_object: str | None = None
    project: str | None = None


def parse_route(method: str, path: str) -> _Route:
    """Which JSON API method `METHOD path` is (op None: not served). `path` is the raw,
    percent-encoded path; each segment is decoded after splitting, as Google does."""
    parts = path.split("/")
    if len(parts) == 7 and parts[:5] == ["", "upload", "storage", "v1", "b"] and parts[6] == "o":
        return _Route("objects.insert" if method == "POST" else None, unquote(parts[5]))
    if len(parts) == 8 and parts[:5] == ["", "download", "storage", "v1", "b"] and parts[6] == "o":
        return _Route("objects.download" if method == "GET" else None, unquote(parts[5]), unquote(parts[7]))
    if len(parts) == 6 and parts[:4] == ["", "storage", "v1", "projects"] and parts[5] == "serviceAccount":
        return _Route("projects.serviceAccount.get" if method == "GET" else None, project=unquote(parts[4]))
    if parts[:4] != ["", "storage", "v1", "b"]:
        return _Route(None)
    segs = [unquote(s) for s in parts[4:]]
    if segs and segs[-1] == "" and len(segs) == 1:
        segs = []
    n = len(segs)
    if n == 0:
        return _Route("buckets.list" if method == "GET" else None)
    bucket = segs[0]
    if n == 1:
        return _Route({"GET": "buckets.get", "PATCH": "buckets.patch"}.get(method), bucket)
    if n == 3 and segs[1:] == ["iam", "testPermissions"]:
        return _Route("buckets.testIamPermissions" if method == "GET" else None, bucket)
    if segs[1] != "o":
        return _Route(None, bucket)
    if n == 2:
        return _Route("objects.list" if method == "GET" else None, bucket)
    if n == 3:
        return _Route({"GET": "objects.get", "DELETE": "objects.delete"}.get(method), bucket, segs[2])
    if n == 8 and segs[3] == "rewriteTo" and segs[4] == "b" and segs[6] == "o":
        return _Route("objects.rewrite" if method == "POST" else None, bucket, segs[2], segs[5], segs[7])
    return _Route(None, bucket)


class Request(NamedTuple):
    """One request as received: method, raw path (percent-encoded, no query) and the
    query parameters (one value each: the last one sent)."""

    method: str
    path: str
    query: dict[str, str]

    @property
    def op(self) -> str | None:
        """The JSON API method: buckets.list/get/patch, objects.list/get/rewrite (None: other)."""
        return parse_route(self.method, self.path).op

    @property
    def bucket(self) -> str | None:
        return parse_route(self.method, self.path).bucket

    @property
    def object(self) -> str | None:
        """The (decoded) object name the request is about, if any."""
        return parse_route(self.method, self.path).object


@dataclass
class Fault:
    """A rule that answers matching requests with a Google-shaped error.

    A request matches when every given criterion holds: `method`, `path_contains` (a
    substring of the raw or the decoded path), `op` (e.g. "objects.rewrite"), `bucket`,
    `object`. Of the matching requests, the first `skip` pass; after that the rule fires
    on each one (or, with `rate`, on each with that probability, drawn from a
    `random.Random(seed)`), at most `times` times in all (None: no limit).

    A firing rule sleeps `delay` seconds, then answers `status` (None: no error, the
    delay only) with `reason` and `message` (Google's defaults for the status when
    None). With `after=True` the request takes effect first and only its answer is
    replaced by the error: a lost response, as when a connection drops after the
    server committed. `hits` counts firings; `seen` counts matching requests.
    """

    method: str | None = None
    path_contains: str | None = None
    status: int | None = 503
    times: int | None = None
    rate: float | None = None
    seed: int | None = None
    op: str | None = None
    bucket: str | None = None
    object: str | None = None
    skip: int = 0
    reason: str | None = None
    message: str | None = None
    delay: float = 0.0
    after: bool = False
    hits: int = field(default=0, init=False)
    seen: int = field(default=0, init=False)
    _rng: random.Random | None = field(default=None, init=False, repr=False)

    def matches(self, req: Request) -> bool:
        if self.method is not None and self.method.upper() != req.method:
            return False
        if self.path_contains is not None and not (
            self.path_contains in req.path or self.path_contains in unquote(req.path)
        ):
            return False
        route = parse_route(req.method, req.path)
        if self.op is not None and self.op != route.op:
            return False
        if self.bucket is not None and self.bucket != route.bucket:
            return False
        return self.object is None or self.object == route.object

    def fire(self, req: Request) -> bool:
        """Whether this rule fires on `req` (counts it). Call under the server's lock."""
        if not self.matches(req):
            return False
        self.seen += 1
        if self.seen <= self.skip:
            return False
        if self.times is not None and self.hits >= self.times:
            return False
        if self.rate is not None:
            if self._rng is None:
                self._rng = random.Random(self.seed)
            if self._rng.random() >= self.rate:
                return False
        self.hits += 1
        return True

    def error(self) -> HttpError | None:
        if self.status is None:
            return None
        message = self.message or _DEFAULT_MESSAGES.get(self.status) or f"injected error {self.status}"
        return HttpError(self.status, message, self.reason)


# -- JSON helpers ------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def rfc3339(value: datetime) -> str:
    # Cached: a listing writes the same few times again and again (a page of a
    # generated world shares one creation time), and strftime was a third of the
    # server's CPU per listed object, on the CPUs the client under test needs.
    value = value.astimezone(timezone.utc)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def parse_fields(text: str) -> dict[str, Any]:
    """Parse a `fields` partial-response selector into a tree {name: subtree | None(all)}."""
    return copy.deepcopy(_parsed_fields(text))


@functools.lru_cache(maxsize=64)
def _parsed_fields(text: str) -> dict[str, Any]:
    """parse_fields, once per selector (a client sends the same one on every page);
    callers must not change the tree."""
    pos = 0

    def fail() -> HttpError:
        return HttpError(400, f"Invalid field selection {text}", "invalidParameter")

    def merge(tree: dict[str, Any], name: str, sub: dict[str, Any] | None) -> None:
        if name in tree and tree[name] is None:
            return
        if sub is None:
            tree[name] = None
        else:
            into = tree.setdefault(name, {})
            for k, v in sub.items():
                merge(into, k, v)

    def parse_list() -> dict[str, Any]:
        nonlocal pos
        tree: dict[str, Any] = {}
        while True:
            name, sub = parse_term()
            merge(tree, name, sub)
            if pos < len(text) and text[pos] == ",":
                pos += 1
                continue
            return tree

    def parse_term() -> tuple[str, dict[str, Any] | None]:
        nonlocal pos
        start = pos
        while pos < len(text) and text[pos] not in ",()/":
            pos += 1
        name = text[start:pos].strip()
        if not name:
            raise fail()
        if pos < len(text) and text[pos] == "/":
            pos += 1
            sub_name, sub_sub = parse_term()
            return name, {sub_name: sub_sub}
        if pos < len(text) and text[pos] == "(":
            pos += 1
            sub = parse_list()
            if pos >= len(text) or text[pos] != ")":
                raise fail()
            pos += 1
            return name, sub
        return name, None

    tree = parse_list()
    if pos != len(text):
        raise fail()
    return tree


def project_fields(value: Any, tree: dict[str, Any] | None) -> Any:
    """Keep only the selected fields of a JSON value (lists: of each element)."""
    if tree is None:
        return value
    if isinstance(value, list):
        if "*" not in tree and all(sub is None for sub in tree.values()):  # flat: a page's items
            # Items the listing built with only these fields already are kept as they are.
            keys = tree.keys()
            return [
                {k: v[k] for k in tree if k in v} if isinstance(v, dict) and not v.keys() <= keys else v
                for v in value
            ]
        return [project_fields(v, tree) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for name, sub in tree.items():
        if name == "*":
            for k, v in value.items():
                out.setdefault(k, project_fields(v, sub))
        elif name in value:
            out[name] = project_fields(value[name], sub)
    return out


def _bool_param(query: dict[str, str], name: str) -> bool:
    text = query.get(name)
    if text is None or text == "":
        return False
    if text.lower() in ("true", "1"):
        return True
    if text.lower() in ("false", "0"):
        return False
    raise HttpError(400, f"Invalid boolean value for {name}: {text}", "invalidParameter")


def _int_param(query: dict[str, str], name: str) -> int | None:
    text = query.get(name)
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        raise HttpError(400, f"Invalid value for {name}: {text}", "invalidParameter") from None


def _api_location(location: str) -> tuple[str, list[str]]:
    """A bucket's `location` and `customPlacementConfig.dataLocations` as the JSON API
    shows them: a configurable dual-region (US-EAST1+US-WEST1) is its multi-region
    (US) with the two regions as data locations; anything else is itself."""
    if "+" not in location:
        return location, []
    key_location = key_location_for_bucket(location) or ""
    multi = {v: k for k, v in MULTI_REGION_KEY_LOCATION.items()}.get(key_location, location)
    return multi, location.upper().split("+")


def _location_type(location: str) -> str:
    loc = location.upper()
    if loc in ("US", "EU", "ASIA"):
        return "multi-region"
    if "+" in loc or loc in ("NAM4", "EUR4", "ASIA1"):
        return "dual-region"
    return "region"


# -- the server --------------------------------------------------------------------------


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client killed mid-request (the crash tests do it on purpose) is not news."""
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


class StorageServer:
    """A Cloud Storage JSON API endpoint over a FakeBackend (see the module docstring)."""

    def __init__(self, backend: FakeBackend, host: str = "127.0.0.1", port: int = 0):
        self.backend = backend
        # Cloud Storage's `retentionExpirationTime` per (bucket, name) where it is not the
        # creation time plus the policy's period (an event-based hold released later).
        self.retention_expiration: dict[tuple[str, str], datetime] = {}
        self.faults: list[Fault] = []
        self.requests: list[Request] = []
        self.statuses: list[int] = []
        self.errors: list[BaseException] = []
        # Called with ("before" | "after", "METHOD /path") around every request's effect
        # (tests/wire/test_safety_wire_crash.py kills the client from here).
        self.hook: Callable[[str, str], None] | None = None
        self._lock = threading.Lock()
        self._metagenerations: dict[str, int] = {}
        # The fake keeps no bucket creation time: buckets "exist since the server started".
        self._epoch = backend.clock.now()
        # A deep listen queue: at high concurrency the default (5) resets connections.
        ThreadingHTTPServer.request_queue_size = 1024
        self._httpd = _QuietServer((host, port), _make_handler(self))
        self._httpd.daemon_threads = True
        self.host, self.port = self._httpd.server_address[:2]
        self.url = f"http://{self.host}:{self.port}"
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> StorageServer:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and drop open (keep-alive) connections: a stopped server answers
        nothing more."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()
        with self._lock:
            connections, self._connections = list(self._connections), set()
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> StorageServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- test helpers --------------------------------------------------------------------
    def count(
        self,
        op: str | None = None,
        *,
        method: str | None = None,
        bucket: str | None = None,
        object: str | None = None,
    ) -> int:
        """How many requests matched every given criterion (faulted ones included)."""
        with self._lock:
            log = list(self.requests)
        n = 0
        for r in log:
            route = parse_route(r.method, r.path)
            if op is not None and route.op != op:
                continue
            if method is not None and r.method != method.upper():
                continue
            if bucket is not None and route.bucket != bucket:
                continue
            if object is not None and route.object != object:
                continue
            n += 1
        return n

    def clear_log(self) -> None:
        with self._lock:
            self.requests.clear()
            self.statuses.clear()

    # -- dispatch ------------------------------------------------------------------------
    def handle(self, method: str, target: str, body: bytes) -> tuple[int, dict[str, Any] | None]:
        """One request: (status, JSON body)."""
        split = urlsplit(target)
        # One value per parameter (the last), but testIamPermissions' repeated `permissions`.
        query = {
            k: ",".join(v) if k == "permissions" else v[-1]
            for k, v in parse_qs(split.query, keep_blank_values=True).items()
        }
        req = Request(method, split.path, query)
        with self._lock:
            self.requests.append(req)
            self.statuses.append(0)  # 0 until answered; aligned with `requests`
            index = len(self.requests) - 1
            fired = next((f for f in self.faults if f.fire(req)), None)
        hook, label = self.hook, f"{method} {split.path}"
        if hook is not None:
            hook("before", label)
        status, payload = self._answer(req, body, fired)
        if hook is not None:
            hook("after", label)
        with self._lock:
            if index < len(self.requests) and self.requests[index] is req:
                self.statuses[index] = status
        return status, payload

    def _answer(self, req: Request, body: bytes, fired: Fault | None) -> tuple[int, dict[str, Any] | None]:
        try:
            if fired is not None:
                if fired.delay:
                    threading.Event().wait(fired.delay)
                injected = fired.error()
                if injected is not None and not fired.after:
                    raise injected
            result = self._dispatch(req, body)
            if fired is not None and fired.after:
                injected = fired.error()
                if injected is not None:
                    raise injected
            if "fields" in req.query and req.query["fields"]:
                result = project_fields(result, _parsed_fields(req.query["fields"]))
            return 200, result
        except HttpError as e:
            return e.status, error_body(e.status, e.message, e.reason)
        except api.ApiError as e:
            status = e.http_status
            reason = _REASON_BY_ERROR.get(type(e)) or REASONS.get(status, "unknown")
            # A failed precondition carries Google's words, not the fake's (CONTRACT.md).
            message = _DEFAULT_MESSAGES[412] if status == 412 else e.message
            return status, error_body(status, message, reason)
        except Exception as e:  # a bug here or in the fake: visible to tests
            with self._lock:
                self.errors.append(e)
            return 500, error_body(500, f"server error: {e!r}")

    def _dispatch(self, req: Request, body: bytes) -> dict[str, Any]:
        route = parse_route(req.method, req.path)
        q = req.query
        if route.op == "buckets.list":
            return self._list_buckets(q)
        if route.op == "projects.serviceAccount.get":
            return self._service_account(route.project or "")
        if route.op == "buckets.get":
            return self._get_bucket(route.bucket or "", q)
        if route.op == "buckets.testIamPermissions":
            asked = [p for p in q.get("permissions", "").split(",") if p]
            held = self.backend.storage.test_iam_permissions(route.bucket or "", asked)
            return {"kind": "storage#testIamPermissionsResponse", "permissions": held}
        if route.op == "buckets.patch":
            return self._patch_bucket(route.bucket or "", q, _json_body(body))
        if route.op == "objects.download" or (route.op == "objects.get" and q.get("alt") == "media"):
            data, generation = self.backend.storage.download_bytes(route.bucket or "", route.object or "")
            wanted = _int_param(q, "ifGenerationMatch")
            if wanted is not None and wanted != generation:  # replaced since it was read
                raise HttpError(412, _DEFAULT_MESSAGES[412])
            return {"__media__": data, "generation": generation}
        if route.op == "objects.delete":
            self.backend.storage.delete_object(
                route.bucket or "", route.object or "", if_generation_match=_int_param(q, "ifGenerationMatch")
            )
            return {}
        if route.op == "objects.list":
            return self._list_objects(route.bucket or "", q)
        if route.op == "objects.get":
            return self._get_object(route.bucket or "", route.object or "", q)
        if route.op == "objects.rewrite":
            return self._rewrite(route, q, _json_body(body))
        if route.op == "objects.insert":
            return self._insert(route.bucket or "", q, body)
        raise HttpError(
            501, f"{req.method} {req.path} is not served by the rotator test server", "notImplemented"
        )

    # -- uploads (multipart): what rotator writes is batch manifests ----------------------
    def _insert(self, bucket: str, q: dict[str, str], body: bytes) -> dict[str, Any]:
        if q.get("uploadType") != "multipart":
            raise HttpError(501, "only multipart uploads are served", "notImplemented")
        boundary = body.split(b"\r\n", 1)[0]
        parts = [p for p in body.split(boundary) if p.strip(b"-\r\n")]
        metadata = json.loads(parts[0].split(b"\r\n\r\n", 1)[1])
        media = parts[1].split(b"\r\n\r\n", 1)[1].removesuffix(b"\r\n")
        name = metadata.get("name") or q.get("name", "")
        if name.endswith(".csv"):  # a batch manifest: bucket,name,generation per row
            rows = [line.split(",") for line in media.decode().splitlines() if line]
            self.backend.batch.write_manifest(bucket, name, ((b, n, int(g)) for b, n, g in rows))
        else:  # what rotator keeps in a bucket: plans, journals, the apply lock
            self.backend.storage.upload_bytes(
                bucket, name, media, if_generation_match=_int_param(q, "ifGenerationMatch")
            )
        return self._get_object(bucket, name, {})

    # -- buckets -------------------------------------------------------------------------
    def _metageneration(self, name: str) -> int:
        with self._lock:
            return self._metagenerations.setdefault(name, 1)

    def _check_metageneration(self, name: str, q: dict[str, str]) -> None:
        mg = self._metageneration(name)
        match, not_match = _int_param(q, "ifMetagenerationMatch"), _int_param(q, "ifMetagenerationNotMatch")
        if match is not None and match != mg:
            raise HttpError(412, _DEFAULT_MESSAGES[412])
        if not_match is not None and not_match == mg:
            raise HttpError(304, "Not Modified")

    def bucket_resource(self, b: Bucket) -> dict[str, Any]:
        mg = self._metageneration(b.name)
        res: dict[str, Any] = {
            "kind": "storage#bucket",
            "selfLink": f"{self.url}/storage/v1/b/{b.name}",
            "id": b.name,
            "name": b.name,
            "projectNumber": self.backend.project_number,
            "metageneration": str(mg),
            "location": _api_location(b.location)[0],
            "locationType": _location_type(b.location),
            "storageClass": "STANDARD",
            "etag": _b64(b"\x08" + _varint(mg)),
            "timeCreated": rfc3339(self._epoch),
            "updated": rfc3339(self._epoch),
            "versioning": {"enabled": b.versioning},
            "softDeletePolicy": {
                "retentionDurationSeconds": str(int(b.soft_delete.total_seconds())),
                "effectiveTime": rfc3339(self._epoch),
            },
            "rpo": "DEFAULT",
        }
        if _api_location(b.location)[1]:
            res["customPlacementConfig"] = {"dataLocations": _api_location(b.location)[1]}
        if b.default_kms_key:
            res["encryption"] = {"defaultKmsKeyName": b.default_kms_key}
        if b.retention is not None:
            res["retentionPolicy"] = {
                "retentionPeriod": str(int(b.retention.period.total_seconds())),
                "effectiveTime": rfc3339(self._epoch),
                "isLocked": b.retention.locked,
            }
        return res

    def _check_project(self, project: str, permission: str) -> None:
        # Another project the world names (its resources' names) is served too: the
        # fake keeps no buckets there (rotator/backends/fake/projects.py).
        if project not in (self.backend.project, self.backend.project_number, *self.backend.projects()):
            raise HttpError(
                403,
                f"anonymous caller does not have {permission} access to the Google Cloud "
                f"project {project}. (this server serves project {self.backend.project})",
            )

    def _service_account(self, project: str) -> dict[str, Any]:
        self._check_project(project, "resourcemanager.projects.get")
        email = self.backend.storage.agent.removeprefix("serviceAccount:")
        return {"kind": "storage#serviceAccount", "email_address": email}

    def _list_buckets(self, q: dict[str, str]) -> dict[str, Any]:
        project = q.get("project")
        if not project:
            raise HttpError(400, "Required parameter: project", "required")
        self._check_project(project, "storage.buckets.list")
        size = _page_size(q)
        lister = self.backend.for_project(project) if project != self.backend.project_number else self.backend
        buckets = sorted(lister.storage.list_buckets(), key=lambda b: b.name)
        prefix = q.get("prefix") or ""
        buckets = [b for b in buckets if b.name.startswith(prefix)]
        if q.get("pageToken"):
            after = _decode_bucket_token(q["pageToken"])
            buckets = [b for b in buckets if b.name > after]
        page = buckets[:size]
        res: dict[str, Any] = {"kind": "storage#buckets", "items": [self.bucket_resource(b) for b in page]}
        if len(buckets) > size:
            res["nextPageToken"] = _b64(json.dumps(["b", page[-1].name]).encode())
        return res

    def _get_bucket(self, name: str, q: dict[str, str]) -> dict[str, Any]:
        b = self.backend.storage.get_bucket(name)
        self._check_metageneration(name, q)
        return self.bucket_resource(b)

    def _patch_bucket(self, name: str, q: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        self.backend.storage.get_bucket(name)  # 404 first, as Google
        self._check_metageneration(name, q)
        unsupported = sorted(set(body) - {"encryption"})
        if unsupported:
            raise HttpError(501, f"patching {', '.join(unsupported)} is not served by the test server")
        if "encryption" in body:
            enc = body["encryption"]
            if enc is None:
                self.backend.storage.patch_bucket_default_kms_key(name, None)
            elif not isinstance(enc, dict):
                raise HttpError(400, "Invalid value for encryption", "invalid")
            else:
                extra = sorted(k for k, v in enc.items() if k != "defaultKmsKeyName" and v is not None)
                if extra:
                    raise HttpError(501, f"patching encryption.{extra[0]} is not served by the test server")
                if "defaultKmsKeyName" in enc:
                    key = enc["defaultKmsKeyName"]
                    if key is not None and not isinstance(key, str):
                        raise HttpError(400, "Invalid value for encryption.defaultKmsKeyName", "invalid")
                    self.backend.storage.patch_bucket_default_kms_key(name, key or None)
        with self._lock:
            self._metagenerations[name] = self._metagenerations.get(name, 1) + 1
        return self.bucket_resource(self.backend.storage.get_bucket(name))

    # -- objects -------------------------------------------------------------------------
    def object_resource(
        self,
        o: ObjectInfo,
        b: Bucket,
        *,
        listing: bool,
        replaced_at: datetime | None = None,
        keep: frozenset[str] | None = None,
    ) -> dict[str, Any]:
        """`replaced_at`: when a noncurrent generation became noncurrent (its timeDeleted).
        `keep`: the only fields the answer will carry (its `fields`; None: all). Only
        those are built: this server shares the CPUs with the client under test, which
        Google's does not (a listing of a million objects spent a third of its CPU on
        fields the projection then dropped)."""
        want = _OBJECT_FIELDS if keep is None else keep
        gen = str(o.generation)
        res: dict[str, Any] = {"kind": "storage#object"} if "kind" in want else {}
        if "name" in want:
            res["name"] = o.name
        if "bucket" in want:
            res["bucket"] = o.bucket
        if "generation" in want:
            res["generation"] = gen
        if not want.isdisjoint(_CONSTANTS):
            res.update(_CONSTANTS)
        if "size" in want:
            res["size"] = str(o.size)
        if not want.isdisjoint(_LINKS):
            quoted = quote(o.name, safe="")
            res["id"] = f"{o.bucket}/{o.name}/{gen}"
            res["selfLink"] = f"{self.url}/storage/v1/b/{o.bucket}/o/{quoted}"
            res["mediaLink"] = (
                f"{self.url}/download/storage/v1/b/{o.bucket}/o/{quoted}?generation={gen}&alt=media"
            )
        if "etag" in want:
            res["etag"] = _b64(b"\x08" + _varint(o.generation) + b"\x10\x01")
        if not want.isdisjoint(_TIMES):
            created = rfc3339(o.created)
            for k in _TIMES:
                if k in want:
                    res[k] = created
        # Listings of CMEK (and CSEK) objects carry no hashes (R17); a GET of a CMEK one does.
        hashed = "md5Hash" in want or "crc32c" in want
        if hashed and not o.customer_supplied_key and not (listing and o.kms_key_version):
            seed = f"{o.bucket}/{o.name}#{o.generation}:{o.size}".encode()
            res["md5Hash"] = _b64(hashlib.md5(seed).digest())
            res["crc32c"] = _b64(zlib.crc32(seed).to_bytes(4, "big"))
        if o.kms_key_version:
            res["kmsKeyName"] = o.kms_key_version
        if o.customer_supplied_key:
            res["customerEncryption"] = {
                "encryptionAlgorithm": "AES256",
                "keySha256": _b64(hashlib.sha256(f"csek:{o.bucket}/{o.name}".encode()).digest()),
            }
        if o.temporary_hold:
            res["temporaryHold"] = True
        if o.event_based_hold:
            res["eventBasedHold"] = True
        if o.retention_mode and o.retain_until:
            res["retention"] = {"mode": o.retention_mode, "retainUntilTime": rfc3339(o.retain_until)}
        if b.retention is not None:
            expires = self.retention_expiration.get((o.bucket, o.name), o.created + b.retention.period)
            res["retentionExpirationTime"] = rfc3339(expires)
        if o.state == SOFT_DELETED and o.hard_delete_time is not None:
            soft = o.hard_delete_time - b.soft_delete if b.soft_delete > timedelta(0) else o.hard_delete_time
            res["softDeleteTime"] = rfc3339(soft)
            res["hardDeleteTime"] = rfc3339(o.hard_delete_time)
            res["timeDeleted"] = rfc3339(soft)
        elif o.state == NONCURRENT:
            res["timeDeleted"] = rfc3339(replaced_at or o.created)
        return res

    def _list_objects(self, bucket: str, q: dict[str, str]) -> dict[str, Any]:
        b = self.backend.storage.get_bucket(bucket)
        versions, soft = _bool_param(q, "versions"), _bool_param(q, "softDeleted")
        if versions and soft:
            raise HttpError(400, "versions and softDeleted cannot both be true", "invalid")
        for unsupported in ("matchGlob", "filter"):
            if q.get(unsupported):
                raise HttpError(501, f"{unsupported} is not served by the test server")
        size = _page_size(q)
        keep = _item_fields(q.get("fields"))
        prefix = q.get("prefix") or ""
        delimiter = q.get("delimiter") or ""
        start, end = q.get("startOffset") or "", q.get("endOffset") or ""
        token = q.get("pageToken") or None
        if token is None and max(prefix, start):
            # The fake has no prefix: start its scan just before the first candidate name.
            token = encode_token(max(prefix, start), -1)
        page = self.backend.storage.list_objects(
            bucket, versions=versions, soft_deleted=soft, page_token=token, page_size=size
        )
        items: list[dict[str, Any]] = []
        prefixes: list[str] = []
        next_token = page.next_page_token
        for i, o in enumerate(page.items):
            if not o.name.startswith(prefix) or (end and o.name >= end):
                next_token = None  # past the range: the scan is over
                break
            rest = o.name[len(prefix) :]
            if delimiter and delimiter in rest:
                p = prefix + rest[: rest.index(delimiter) + len(delimiter)]
                if p not in prefixes:
                    prefixes.append(p)
                continue
            following = page.items[i + 1] if i + 1 < len(page.items) else None
            replaced_at = self._replaced_at(o, following)
            items.append(self.object_resource(o, b, listing=True, replaced_at=replaced_at, keep=keep))
        res: dict[str, Any] = {"kind": "storage#objects"}
        if prefixes:
            res["prefixes"] = prefixes
        if items:
            res["items"] = items
        if next_token:
            res["nextPageToken"] = next_token
        return res

    def _get_object(self, bucket: str, name: str, q: dict[str, str]) -> dict[str, Any]:
        b = self.backend.storage.get_bucket(bucket)
        generation = _int_param(q, "generation")
        if _bool_param(q, "softDeleted"):
            if generation is None:
                raise HttpError(400, "generation is required with softDeleted", "required")
            page = self.backend.storage.list_objects(
                bucket, soft_deleted=True, page_token=encode_token(name, generation - 1), page_size=1
            )
            if not page.items or (page.items[0].name, page.items[0].generation) != (name, generation):
                raise HttpError(404, f"No such object: {bucket}/{name}#{generation}")
            o = page.items[0]
        else:
            o = self.backend.storage.get_object(bucket, name, generation)
        self._check_object_preconditions(o, q, prefix="", read=True)
        return self.object_resource(o, b, listing=False, replaced_at=self._replaced_at(o, None))

    def _replaced_at(self, o: ObjectInfo, following: ObjectInfo | None) -> datetime | None:
        """When noncurrent `o` was replaced: its next generation's creation time. The fake
        keeps no deletion times; a generation with no successor falls back to its own
        creation time (see object_resource)."""
        if o.state != NONCURRENT:
            return None
        if following is None or following.name != o.name:
            page = self.backend.storage.list_objects(
                o.bucket, versions=True, page_token=encode_token(o.name, o.generation), page_size=1
            )
            following = page.items[0] if page.items else None
        return following.created if following is not None and following.name == o.name else None

    @staticmethod
    def _check_object_preconditions(
        o: ObjectInfo, q: dict[str, str], *, prefix: str, read: bool = False
    ) -> None:
        """if{Source}Generation[Not]Match and if{Source}Metageneration[Not]Match (metageneration
        is always 1 here). A failed ...NotMatch on a read is 304, else 412, as Google answers."""
        checks = (
            ("GenerationMatch", o.generation, True),
            ("GenerationNotMatch", o.generation, False),
            ("MetagenerationMatch", 1, True),
            ("MetagenerationNotMatch", 1, False),
        )
        for suffix, actual, equal in checks:
            wanted = _int_param(q, f"if{prefix}{suffix}")
            if wanted is not None and (wanted == actual) != equal:
                if not equal and read:
                    raise HttpError(304, "Not Modified")
                raise HttpError(412, _DEFAULT_MESSAGES[412])

    def _rewrite(self, route: _Route, q: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        src_b, src_o = route.bucket or "", route.object or ""
        if (route.dst_bucket, route.dst_object) != (src_b, src_o):
            raise HttpError(
                400,
                f"the rotator test server rewrites objects in place only: gs://{src_b}/{src_o} -> "
                f"gs://{route.dst_bucket}/{route.dst_object}",
            )
        if "name" in body and body["name"] not in (None, src_o):
            raise HttpError(400, f"destination name {body['name']!r} does not match the path")
        live = self.backend.storage.get_object(src_b, src_o)
        source_generation = _int_param(q, "sourceGeneration")
        if source_generation is not None and source_generation != live.generation:
            # A real rewrite could copy an older generation over the live one; the fake cannot.
            # Answer what Google would where we can: 404 for a missing (or soft-deleted)
            # source generation, 412 for a failed destination precondition.
            self.backend.storage.get_object(src_b, src_o, source_generation)
            self._check_object_preconditions(live, q, prefix="")
            raise HttpError(501, "rewriting from a noncurrent generation is not served by the test server")
        self._check_object_preconditions(live, q, prefix="Source")
        # ifGenerationMatch goes to the fake (it checks under its lock); the rest here.
        others = {k: v for k, v in q.items() if k != "ifGenerationMatch"}
        self._check_object_preconditions(live, others, prefix="")
        # destinationKmsKeyName wins; else an unversioned kmsKeyName in the destination
        # resource. A version-qualified kmsKeyName in the body is what the client sends back
        # after a GET (it drops it from the query, python-storage#806): Google ignores it.
        key = q.get("destinationKmsKeyName") or None
        body_key = body.get("kmsKeyName")
        if key is None and isinstance(body_key, str) and body_key and "/cryptoKeyVersions/" not in body_key:
            key = body_key
        result = self.backend.storage.rewrite_object(
            src_b,
            src_o,
            destination_kms_key=key,
            if_generation_match=_int_param(q, "ifGenerationMatch"),
            rewrite_token=q.get("rewriteToken") or None,
            max_bytes_rewritten_per_call=_int_param(q, "maxBytesRewrittenPerCall"),
        )
        res: dict[str, Any] = {
            "kind": "storage#rewriteResponse",
            "totalBytesRewritten": str(result.bytes_rewritten),
            "objectSize": str(result.total_bytes),
            "done": result.done,
        }
        if result.done:
            if result.resource is None:
                raise RuntimeError("the fake's rewrite is done but returned no resource")
            b = self.backend.storage.get_bucket(src_b)
            res["resource"] = self.object_resource(result.resource, b, listing=False)
        else:
            res["rewriteToken"] = result.rewrite_token
        return res


def _json_body(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        value = json.loads(body)
    except ValueError:
        raise HttpError(400, "Parse Error", "parseError") from None
    if not isinstance(value, dict):
        raise HttpError(400, "Parse Error: the body must be a JSON object", "parseError")
    return value


def _item_fields(fields: str | None) -> frozenset[str] | None:
    """The fields of each listed object that `fields` keeps (None: all of them)."""
    if not fields:
        return None
    tree = _parsed_fields(fields)
    if "*" in tree:
        return None
    items = tree.get("items", {})
    if items is None or "*" in items:
        return None
    return frozenset(items)


def _page_size(q: dict[str, str]) -> int:
    size = _int_param(q, "maxResults")
    if size is None:
        return MAX_RESULTS
    if size < 1:
        raise HttpError(400, f"Invalid value for maxResults: {size}", "invalidParameter")
    return min(size, MAX_RESULTS)


def _decode_bucket_token(token: str) -> str:
    try:
        kind, name = json.loads(base64.b64decode(token.encode(), validate=True))
    except (ValueError, TypeError):
        raise HttpError(400, f"Invalid page token {token}", "invalidParameter") from None
    if kind != "b" or not isinstance(name, str):
        raise HttpError(400, f"Invalid page token {token}", "invalidParameter")
    return name


def _make_handler(server: StorageServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms stalls
        server_version = "rotator-test-gcs"
        sys_version = ""

        def date_time_string(self, timestamp: float | None = None) -> str:
            # The service's clock is the fake world's: rotator's gcp backend reads it
            # from this header, as it reads Google's.
            from email.utils import format_datetime

            return format_datetime(server.backend.clock.now(), usegmt=True)

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def setup(self) -> None:
            super().setup()
            with server._lock:
                server._connections.add(self.connection)

        def finish(self) -> None:
            with server._lock:
                server._connections.discard(self.connection)
            super().finish()

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            status, payload = server.handle(self.command, self.path, body)
            if payload is not None and "__media__" in payload:  # a download: the bytes themselves
                import base64
                import hashlib

                data = payload["__media__"]
                self.send_response(status)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("x-goog-generation", str(payload["generation"]))
                self.send_header(
                    "x-goog-hash", "md5=" + base64.b64encode(hashlib.md5(data).digest()).decode()
                )
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            data = b"" if payload is None or status == 304 else json.dumps(payload).encode()
            self.send_response(status)
            if data:
                self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if data:
                self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

    return Handler


def serve_storage(backend: FakeBackend, *, host: str = "127.0.0.1", port: int = 0) -> StorageServer:
    """Start serving `backend`'s Cloud Storage on a free port; stop() (or `with`) ends it."""
    return StorageServer(backend, host, port).start()
