"""tests/wire/storage_http.py against the OFFICIAL google-cloud-storage client: the fake world's
Cloud Storage over the JSON API, exactly as the gcp backend will talk to Google.

Backends: wire servers (storage_http.py under the official client)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import pytest
from google.api_core import exceptions as gexc
from google.api_core.retry import Retry
from google.cloud import storage
from wire.storage_http import Fault, StorageServer, parse_fields, project_fields, serve_storage
from worlds import APP_KEY, BUCKET, EU_KEY, NEW_KEY, NOW, OBJECT, bucket, make_world, obj, v

from rotator.backends.fake import FakeBackend
from rotator.model import IamPolicy
from rotator.services.storage.fake import REWRITE_CHUNK_BYTES

ARCHIVE = "demo-archive"
EU_BUCKET = "demo-eu"
HELD = "reports/2026-02.csv"
BIG = "reports/big.bin"
PLAIN = "plain.txt"
CSEK = "secret.bin"
LOCKED = "locked.csv"
OLD = "old.csv"
BIG_SIZE = 3 * REWRITE_CHUNK_BYTES + 5
IN_PLACE = (
    f"/storage/v1/b/{BUCKET}/o/{quote(OBJECT, safe='')}/rewriteTo/b/{BUCKET}/o/{quote(OBJECT, safe='')}"
)
FAST_RETRY = Retry(initial=0.01, maximum=0.02, multiplier=1.0, timeout=5)


def _world() -> dict[str, Any]:
    return make_world(
        storage=[
            bucket(
                BUCKET,
                [
                    obj(OBJECT, v(APP_KEY, 1)),
                    obj(HELD, v(APP_KEY, 2), temporary_hold=True),
                    obj(BIG, v(APP_KEY, 1), size=BIG_SIZE),
                    obj(PLAIN, None, size=10),
                    obj(CSEK, None, customer_supplied_key=True),
                    obj(
                        LOCKED,
                        v(APP_KEY, 1),
                        retention={"mode": "Locked", "retain_until": "2027-06-01T00:00:00Z"},
                        event_based_hold=True,
                    ),
                    obj(
                        OLD,
                        v(APP_KEY, 2),
                        generation=3,
                        soft_deleted=[
                            {
                                "generation": 2,
                                "kms_key_version": v(APP_KEY, 1),
                                "size": 7,
                                "hard_delete_time": "2026-11-27T00:00:00Z",
                            }
                        ],
                    ),
                ],
            ),
            bucket(
                ARCHIVE,
                [
                    obj(
                        "a.csv",
                        v(APP_KEY, 2),
                        generation=3,
                        noncurrent=[
                            {"generation": 1, "kms_key_version": v(APP_KEY, 1), "size": 5},
                            {"generation": 2, "kms_key_version": v(APP_KEY, 1), "size": 6},
                        ],
                    ),
                    obj("b.csv", v(APP_KEY, 2)),
                ],
                versioning=True,
                retention={"period": "30d", "locked": True},
            ),
            bucket(EU_BUCKET, [], location="EU", default_kms_key=None, soft_delete="0s"),
        ]
    )


@pytest.fixture
def fake() -> FakeBackend:
    return FakeBackend.from_dict(_world())


@pytest.fixture
def server(fake: FakeBackend) -> Iterator[StorageServer]:
    with serve_storage(fake) as s:
        yield s
    assert s.errors == [], "the server raised unexpectedly (answered 500)"


@pytest.fixture
def client(server: StorageServer, monkeypatch: pytest.MonkeyPatch) -> storage.Client:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.url)
    # google-cloud-storage 3.x fetches each bucket's metadata in a background thread for
    # tracing attributes (an extra, racy GET /b/BUCKET); off, so request counts are exact.
    monkeypatch.setenv("DISABLE_GCS_PYTHON_CLIENT_OTEL_BUCKET_METADATA", "true")
    return storage.Client(project="demo")


def _reason(e: gexc.GoogleAPICallError) -> str:
    return e.errors[0]["reason"]


def _raw(server: StorageServer, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """A request without the client library (for what it will not send)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(server.url + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


# -- buckets ----------------------------------------------------------------------------------


def test_list_buckets_pages_in_name_order(client: storage.Client, server: StorageServer) -> None:
    names = [b.name for b in client.list_buckets(page_size=2)]
    assert names == sorted([BUCKET, ARCHIVE, EU_BUCKET])
    lists = [r for r in server.requests if r.op == "buckets.list"]
    assert len(lists) == 2
    assert lists[0].query["project"] == "demo" and lists[0].query["maxResults"] == "2"
    assert "pageToken" in lists[1].query
    assert [b.name for b in client.list_buckets(prefix="demo-a")] == [ARCHIVE]


def test_list_buckets_of_another_project_is_forbidden(client: storage.Client) -> None:
    with pytest.raises(gexc.Forbidden) as e:
        list(client.list_buckets(project="someone-else", retry=None))
    assert _reason(e.value) == "forbidden"


def test_get_bucket_reads_key_versioning_soft_delete_retention(client: storage.Client) -> None:
    b = client.get_bucket(BUCKET)
    assert b.default_kms_key_name == APP_KEY
    assert b.location == "US-EAST1" and b.location_type == "region"
    assert b.versioning_enabled is False
    assert b.soft_delete_policy.retention_duration_seconds == 7 * 86400
    assert b.retention_period is None
    assert b.metageneration == 1

    a = client.get_bucket(ARCHIVE)
    assert a.versioning_enabled is True
    assert a.retention_period == 30 * 86400
    assert a.retention_policy_locked is True
    assert a.retention_policy_effective_time is not None

    eu = client.get_bucket(EU_BUCKET)
    assert eu.default_kms_key_name is None
    assert eu.location_type == "multi-region"
    assert eu.soft_delete_policy.retention_duration_seconds == 0

    with pytest.raises(gexc.NotFound) as e:
        client.get_bucket("no-such-bucket")
    assert _reason(e.value) == "notFound"
    assert client.lookup_bucket("no-such-bucket") is None


def test_patch_default_key_sets_and_clears(
    client: storage.Client, fake: FakeBackend, server: StorageServer
) -> None:
    b = client.get_bucket(BUCKET)
    b.default_kms_key_name = NEW_KEY
    b.patch()
    assert b.default_kms_key_name == NEW_KEY and b.metageneration == 2
    (patch,) = [r for r in server.requests if r.op == "buckets.patch"]
    assert (patch.method, patch.path) == ("PATCH", f"/storage/v1/b/{BUCKET}")
    assert fake.storage.get_bucket(BUCKET).default_kms_key == NEW_KEY
    assert client.get_bucket(BUCKET).default_kms_key_name == NEW_KEY

    b.default_kms_key_name = None
    b.patch()
    assert b.default_kms_key_name is None
    assert fake.storage.get_bucket(BUCKET).default_kms_key is None

    # a stale metageneration precondition
    with pytest.raises(gexc.PreconditionFailed):
        b.default_kms_key_name = APP_KEY
        b.patch(if_metageneration_match=1, retry=None)
    assert fake.storage.get_bucket(BUCKET).default_kms_key is None


@pytest.mark.parametrize(
    ("new_key", "exc", "reason", "words"),
    [
        (EU_KEY, gexc.BadRequest, "invalid", "(R7)"),  # wrong location for US-EAST1
        (v(NEW_KEY, 1), gexc.BadRequest, "invalid", "(R2)"),  # a version, not a key
        ("not-a-key", gexc.BadRequest, "invalid", "not-a-key"),
    ],
)
def test_patch_default_key_refused_as_google_would(
    client: storage.Client, fake: FakeBackend, new_key: str, exc: type, reason: str, words: str
) -> None:
    b = client.get_bucket(BUCKET)
    b.default_kms_key_name = new_key
    with pytest.raises(exc) as e:
        b.patch(retry=None)
    assert _reason(e.value) == reason and words in e.value.message
    assert fake.storage.get_bucket(BUCKET).default_kms_key == APP_KEY


def test_patch_default_key_without_the_agent_role_is_forbidden(
    client: storage.Client, fake: FakeBackend
) -> None:
    policy = fake.kms.get_iam_policy(NEW_KEY)
    fake.kms.set_iam_policy(NEW_KEY, IamPolicy({}, policy.etag))  # R5
    b = client.get_bucket(BUCKET)
    b.default_kms_key_name = NEW_KEY
    with pytest.raises(gexc.Forbidden) as e:
        b.patch(retry=None)
    assert _reason(e.value) == "forbidden"
    assert fake.storage.get_bucket(BUCKET).default_kms_key == APP_KEY


# -- listing objects ----------------------------------------------------------------------------


def test_list_blobs_live_only_by_default(client: storage.Client) -> None:
    names = [b.name for b in client.list_blobs(BUCKET)]
    assert names == sorted([OBJECT, HELD, BIG, PLAIN, CSEK, LOCKED, OLD])


def test_list_blobs_versions_pages_through_noncurrent_generations(
    client: storage.Client, server: StorageServer
) -> None:
    blobs = list(client.list_blobs(ARCHIVE, versions=True, page_size=2))
    assert [(b.name, b.generation, b.kms_key_name) for b in blobs] == [
        ("a.csv", 1, v(APP_KEY, 1)),
        ("a.csv", 2, v(APP_KEY, 1)),
        ("a.csv", 3, v(APP_KEY, 2)),
        ("b.csv", 1, v(APP_KEY, 2)),
    ]
    assert [b.size for b in blobs] == [5, 6, 1024, 1024]
    lists = [r for r in server.requests if r.op == "objects.list"]
    assert len(lists) == 2 and lists[0].query["versions"] in ("True", "true")
    # the bucket's retention shows on each object
    assert blobs[0].retention_expiration_time == NOW + timedelta(days=30)


def test_noncurrent_generations_carry_time_deleted(client: storage.Client, fake: FakeBackend) -> None:
    listed = [(b.generation, b.time_deleted) for b in client.list_blobs(ARCHIVE, versions=True, page_size=1)]
    assert listed == [(1, NOW), (2, NOW), (3, None), (1, None)]
    fake.advance(timedelta(days=31))  # past the bucket's 30d retention
    fake.storage.upload(ARCHIVE, "b.csv", 3)  # replaces b.csv generation 1
    old = client.bucket(ARCHIVE).get_blob("b.csv", generation=1)
    assert old is not None and old.time_deleted == NOW + timedelta(days=31)
    new = client.bucket(ARCHIVE).get_blob("b.csv")
    assert new is not None and (new.generation, new.time_deleted) == (2, None)


def test_service_account(client: storage.Client) -> None:
    email = client.get_service_account_email()
    assert email == "service-111111111111@gs-project-accounts.iam.gserviceaccount.com"
    with pytest.raises(gexc.Forbidden):
        client.get_service_account_email(project="someone-else", retry=None)


def test_list_blobs_soft_deleted(client: storage.Client) -> None:
    (old,) = client.list_blobs(BUCKET, soft_deleted=True)
    assert (old.name, old.generation, old.kms_key_name, old.size) == (OLD, 2, v(APP_KEY, 1), 7)
    assert old.hard_delete_time == NOW + timedelta(days=5)
    assert old.soft_delete_time == NOW - timedelta(days=2)  # hard - the bucket's 7d
    with pytest.raises(gexc.BadRequest):
        list(client.list_blobs(BUCKET, soft_deleted=True, versions=True, retry=None))


FIELDS = (
    "items(name,generation,kmsKeyName,size,timeCreated,temporaryHold,eventBasedHold,"
    "retention(mode,retainUntilTime),softDeleteTime,hardDeleteTime,customerEncryption),nextPageToken"
)


def test_list_blobs_with_fields_gives_everything_the_inventory_needs_without_a_get(
    client: storage.Client, server: StorageServer
) -> None:
    blobs = {b.name: b for b in client.list_blobs(BUCKET, fields=FIELDS, page_size=3)}
    assert len(blobs) == 7
    allowed = {
        "name",
        "generation",
        "kmsKeyName",
        "size",
        "timeCreated",
        "temporaryHold",
        "eventBasedHold",
        "retention",
        "softDeleteTime",
        "hardDeleteTime",
        "customerEncryption",
    }
    for b in blobs.values():
        assert set(b._properties) <= allowed, b._properties
    assert blobs[OBJECT].kms_key_name == v(APP_KEY, 1) and blobs[OBJECT].generation == 1
    assert blobs[BIG].size == BIG_SIZE and blobs[OBJECT].time_created == NOW
    assert blobs[HELD].temporary_hold is True and blobs[OBJECT].temporary_hold is None
    assert blobs[LOCKED].event_based_hold is True
    assert (blobs[LOCKED].retention.mode, blobs[LOCKED].retention.retain_until_time) == (
        "Locked",
        NOW.replace(year=2027, month=6, day=1),
    )
    assert blobs[CSEK].kms_key_name is None
    assert blobs[CSEK]._properties["customerEncryption"]["encryptionAlgorithm"] == "AES256"
    assert blobs[PLAIN].kms_key_name is None and "customerEncryption" not in blobs[PLAIN]._properties
    # three pages of 3, 3, 1 - and not a single per-object GET
    assert server.count("objects.list") == 3
    assert server.count("objects.get") == 0
    assert len(server.requests) == 3 and all(r.query["fields"] == FIELDS for r in server.requests)


def test_a_listing_gives_exactly_the_fields_asked_for_and_the_same_values(server: StorageServer) -> None:
    """The server leaves out what `fields` does not ask for before building it (costly
    ones: links, etag, times, hashes): what it does give is what a full answer holds."""
    full = _raw(server, "GET", f"/storage/v1/b/{BUCKET}/o")[1]["items"]
    assert any("md5Hash" in item for item in full) and all("etag" in item for item in full)
    for fields in (
        "name,generation,kmsKeyName",
        "name,etag,selfLink,mediaLink,id",
        "name,timeCreated,updated,timeStorageClassUpdated",
        "md5Hash,crc32c,size",
        "kind,bucket,metageneration,contentType,storageClass",
        "timeCreated,kmsKeyName,temporaryHold,eventBasedHold,retention,customerEncryption,timeDeleted",
        "*",
    ):
        status, page = _raw(server, "GET", f"/storage/v1/b/{BUCKET}/o?fields=items({fields}),nextPageToken")
        kept = fields.split(",")
        assert status == 200
        assert page["items"] == [{k: x for k, x in item.items() if "*" in kept or k in kept} for item in full]


def test_a_parsed_fields_selector_is_the_callers_own() -> None:
    tree = parse_fields("items(name),nextPageToken")
    tree["items"]["kind"] = None  # parse_fields answers from a cache: this must not leak
    assert parse_fields("items(name),nextPageToken") == {"items": {"name": None}, "nextPageToken": None}


def test_the_client_fetches_bucket_metadata_in_the_background_unless_disabled(
    client: storage.Client, server: StorageServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Why the `client` fixture sets DISABLE_GCS_PYTHON_CLIENT_OTEL_BUCKET_METADATA: without
    it, the first call on a bucket queues a GET of that bucket on another thread."""
    import time

    monkeypatch.delenv("DISABLE_GCS_PYTHON_CLIENT_OTEL_BUCKET_METADATA")
    list(client.list_blobs(ARCHIVE))
    deadline = time.monotonic() + 5
    while server.count("buckets.get", bucket=ARCHIVE) == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.count("buckets.get", bucket=ARCHIVE) == 1
    assert server.count("objects.list") == 1


def test_r17_listing_cmek_objects_has_no_hashes_but_a_get_does(client: storage.Client) -> None:
    listed = {b.name: b for b in client.list_blobs(BUCKET)}
    assert listed[OBJECT].md5_hash is None and listed[OBJECT].crc32c is None
    assert listed[PLAIN].md5_hash and listed[PLAIN].crc32c
    got = client.bucket(BUCKET).get_blob(OBJECT)
    assert got is not None and got.md5_hash and got.crc32c


def test_list_blobs_prefix_and_delimiter(client: storage.Client, server: StorageServer) -> None:
    assert [b.name for b in client.list_blobs(BUCKET, prefix="reports/", page_size=1)] == [
        OBJECT,
        HELD,
        BIG,
    ]
    it = client.list_blobs(BUCKET, delimiter="/")
    assert [b.name for b in it] == [LOCKED, OLD, PLAIN, CSEK]
    assert it.prefixes == {"reports/"}
    assert [b.name for b in client.list_blobs(BUCKET, start_offset="p", end_offset="s")] == [
        PLAIN,
        OBJECT,
        HELD,
        BIG,
    ]


def test_bad_fields_selector_is_a_400(client: storage.Client) -> None:
    with pytest.raises(gexc.BadRequest) as e:
        list(client.list_blobs(BUCKET, fields="items(name", retry=None))
    assert _reason(e.value) == "invalidParameter"


def test_list_blobs_missing_bucket(client: storage.Client) -> None:
    with pytest.raises(gexc.NotFound):
        list(client.list_blobs("no-such-bucket", retry=None))


# -- getting one object -----------------------------------------------------------------------


def test_get_blob_reads_its_key_version(client: storage.Client, server: StorageServer) -> None:
    blob = client.bucket(BUCKET).get_blob(OBJECT)
    assert blob is not None
    assert blob.kms_key_name == v(APP_KEY, 1)
    assert (blob.generation, blob.metageneration, blob.size, blob.time_created) == (1, 1, 1024, NOW)
    (get,) = [r for r in server.requests if r.op == "objects.get"]
    assert get.path == f"/storage/v1/b/{BUCKET}/o/{quote(OBJECT, safe='')}" and get.object == OBJECT
    assert server.count("objects.get", object=OBJECT) == 1
    assert client.bucket(BUCKET).get_blob("nope") is None


def test_get_blob_by_generation_noncurrent_and_soft_deleted(client: storage.Client) -> None:
    old = client.bucket(ARCHIVE).get_blob("a.csv", generation=1)
    assert old is not None and (old.generation, old.kms_key_name) == (1, v(APP_KEY, 1))
    assert client.bucket(BUCKET).get_blob(OLD, generation=2) is None  # soft-deleted: hidden
    soft = client.bucket(BUCKET).get_blob(OLD, generation=2, soft_deleted=True)
    assert soft is not None and soft.hard_delete_time == NOW + timedelta(days=5)


# -- rewrite ----------------------------------------------------------------------------------------


def test_rewrite_in_place_under_the_unversioned_key(
    client: storage.Client, server: StorageServer, fake: FakeBackend
) -> None:
    src = client.bucket(BUCKET).get_blob(OBJECT)
    assert src is not None
    dst = client.bucket(BUCKET).blob(OBJECT, kms_key_name=NEW_KEY)
    token, done, total = dst.rewrite(src, if_generation_match=src.generation)
    assert (token, done, total) == (None, 1024, 1024)
    assert dst.kms_key_name == v(NEW_KEY, 1) and dst.generation == 2
    (call,) = [r for r in server.requests if r.op == "objects.rewrite"]
    assert call.path == f"/storage/v1/b/{BUCKET}/o/{quote(OBJECT, safe='')}/rewriteTo/b/{BUCKET}/o/" + quote(
        OBJECT, safe=""
    )
    assert call.query["destinationKmsKeyName"] == NEW_KEY and call.query["ifGenerationMatch"] == "1"
    live = fake.storage.get_object(BUCKET, OBJECT)
    assert (live.generation, live.kms_key_version) == (2, v(NEW_KEY, 1))
    # the old generation stays soft-deleted under the old version (R18)
    soft = [o for o in fake.storage.list_objects(BUCKET, soft_deleted=True).items if o.name == OBJECT]
    assert [(o.generation, o.kms_key_version) for o in soft] == [(1, v(APP_KEY, 1))]


def test_rewrite_with_the_fetched_blob_as_destination_uses_the_bucket_default(
    client: storage.Client, server: StorageServer
) -> None:
    """The client drops a versioned kms_key_name from the query (python-storage#806) but
    still sends it in the body; Google ignores it there, so the bucket default applies."""
    blob = client.bucket(BUCKET).get_blob(OBJECT)
    assert blob is not None
    blob.rewrite(blob, if_generation_match=1)
    assert blob.kms_key_name == v(APP_KEY, 2)  # APP_KEY's primary
    (call,) = [r for r in server.requests if r.op == "objects.rewrite"]
    assert "destinationKmsKeyName" not in call.query and call.query["sourceGeneration"] == "1"


def test_rewrite_token_loop_for_a_large_object(
    client: storage.Client, server: StorageServer, fake: FakeBackend
) -> None:
    src = client.bucket(BUCKET).get_blob(BIG)
    assert src is not None
    dst = client.bucket(BUCKET).blob(BIG, kms_key_name=NEW_KEY)
    token, progress = None, []
    while True:
        token, done, total = dst.rewrite(src, token=token, if_generation_match=src.generation)
        progress.append(done)
        assert total == BIG_SIZE
        if token is None:
            break
    assert progress == [REWRITE_CHUNK_BYTES, 2 * REWRITE_CHUNK_BYTES, 3 * REWRITE_CHUNK_BYTES, BIG_SIZE]
    calls = [r for r in server.requests if r.op == "objects.rewrite"]
    assert len(calls) == 4 and server.count("objects.rewrite", object=BIG) == 4
    assert ["rewriteToken" in c.query for c in calls] == [False, True, True, True]
    assert dst.kms_key_name == v(NEW_KEY, 1) and dst.size == BIG_SIZE
    assert fake.storage.get_object(BUCKET, BIG).kms_key_version == v(NEW_KEY, 1)


def test_rewrite_max_bytes_per_call_is_passed_through(client: storage.Client, server: StorageServer) -> None:
    src = client.bucket(BUCKET).get_blob(OBJECT)
    assert src is not None
    # the client has no parameter for it; the raw API does
    path = IN_PLACE
    status, body = _raw(
        server, "POST", f"{path}?maxBytesRewrittenPerCall=1000&destinationKmsKeyName={NEW_KEY}", {}
    )
    assert status == 200 and body["done"] is False and body["totalBytesRewritten"] == "1000"
    assert body["objectSize"] == "1024" and body["kind"] == "storage#rewriteResponse"
    token = quote(body["rewriteToken"], safe="")
    status, body = _raw(server, "POST", f"{path}?rewriteToken={token}&destinationKmsKeyName={NEW_KEY}", {})
    assert status == 200 and body["done"] is True and body["resource"]["generation"] == "2"
    assert body["resource"]["kmsKeyName"] == v(NEW_KEY, 1)


def test_rewrite_with_a_stale_generation_is_412(client: storage.Client, fake: FakeBackend) -> None:
    src = client.bucket(BUCKET).get_blob(OBJECT)
    assert src is not None
    dst = client.bucket(BUCKET).blob(OBJECT, kms_key_name=NEW_KEY)
    with pytest.raises(gexc.PreconditionFailed) as e:
        dst.rewrite(src, if_generation_match=7, retry=None)
    assert _reason(e.value) == "conditionNotMet"
    assert fake.storage.get_object(BUCKET, OBJECT).kms_key_version == v(APP_KEY, 1)


def test_rewrite_refusals_come_back_as_google_errors(client: storage.Client, server: StorageServer) -> None:
    b = client.bucket(BUCKET)
    with pytest.raises(gexc.Forbidden) as e:  # a temporary hold (R16)
        b.blob(HELD, kms_key_name=NEW_KEY).rewrite(b.blob(HELD), retry=None)
    assert "(R16)" in e.value.message
    with pytest.raises(gexc.BadRequest) as e:  # CSEK without its key (R19)
        b.blob(CSEK, kms_key_name=NEW_KEY).rewrite(b.blob(CSEK), retry=None)
    assert "(R19)" in e.value.message
    with pytest.raises(gexc.NotFound):
        b.blob("nope", kms_key_name=NEW_KEY).rewrite(b.blob("nope"), retry=None)
    with pytest.raises(gexc.BadRequest):  # not in place: the fake cannot
        b.blob("copy", kms_key_name=NEW_KEY).rewrite(b.blob(OBJECT), retry=None)
    # a key version as destinationKmsKeyName (the client never sends one, R2)
    version = quote(v(NEW_KEY, 1), safe="")
    status, body = _raw(server, "POST", f"{IN_PLACE}?destinationKmsKeyName={version}", {})
    assert status == 400 and body["error"]["errors"][0]["reason"] == "invalid"
    assert "(R2)" in body["error"]["message"] and body["error"]["code"] == 400


# -- fault injection ----------------------------------------------------------------------------


def test_injected_503_is_seen_by_the_client_and_retried(
    client: storage.Client, server: StorageServer, fake: FakeBackend
) -> None:
    fault = Fault(method="POST", path_contains="rewriteTo", status=503, times=2)
    server.faults.append(fault)
    src = client.bucket(BUCKET).get_blob(OBJECT)
    assert src is not None
    dst = client.bucket(BUCKET).blob(OBJECT, kms_key_name=NEW_KEY)
    with pytest.raises(gexc.ServiceUnavailable) as e:
        dst.rewrite(src, if_generation_match=1, retry=None)
    assert _reason(e.value) == "backendError" and e.value.code == 503
    assert fake.storage.get_object(BUCKET, OBJECT).generation == 1  # nothing happened
    dst.rewrite(src, if_generation_match=1, retry=FAST_RETRY)  # one more 503, then done
    assert fault.hits == 2 and fault.seen == 3
    rewrite_statuses = [
        s for r, s in zip(server.requests, server.statuses, strict=True) if r.op == "objects.rewrite"
    ]
    assert rewrite_statuses == [503, 503, 200]
    assert fake.storage.get_object(BUCKET, OBJECT).kms_key_version == v(NEW_KEY, 1)


def test_rate_fault_is_deterministic_by_seed(client: storage.Client, server: StorageServer) -> None:
    def run() -> list[bool]:
        server.faults[:] = [Fault(rate=0.5, status=429, seed=42, op="buckets.get")]
        seen = []
        for _ in range(20):
            try:
                client.get_bucket(BUCKET, retry=None)
                seen.append(True)
            except gexc.TooManyRequests as e:
                assert _reason(e) == "rateLimitExceeded"
                seen.append(False)
        assert seen.count(False) == server.faults[0].hits
        return seen

    first = run()
    assert 0 < first.count(False) < 20
    assert run() == first


def test_skip_lets_the_first_calls_through(client: storage.Client, server: StorageServer) -> None:
    src = client.bucket(BUCKET).get_blob(BIG)
    assert src is not None
    dst = client.bucket(BUCKET).blob(BIG, kms_key_name=NEW_KEY)
    server.faults.append(Fault(op="objects.rewrite", skip=2, times=1, status=500))
    token, _, _ = dst.rewrite(src, if_generation_match=src.generation)
    token, _, _ = dst.rewrite(src, token=token, if_generation_match=src.generation)
    with pytest.raises(gexc.InternalServerError):
        dst.rewrite(src, token=token, if_generation_match=src.generation, retry=None)
    token, done, _ = dst.rewrite(src, token=token, if_generation_match=src.generation)  # resumes
    assert done == 3 * REWRITE_CHUNK_BYTES


def test_lost_response_after_the_rewrite_committed(
    client: storage.Client, server: StorageServer, fake: FakeBackend
) -> None:
    """`after=True`: the world changed but the client saw a 503. Its retry then fails: 404
    when the source names its generation (now soft-deleted), else 412 on the destination
    precondition - the cases a resumable apply must recognise."""
    server.faults.append(Fault(op="objects.rewrite", after=True, times=1))
    src = client.bucket(BUCKET).get_blob(OBJECT)
    assert src is not None
    dst = client.bucket(BUCKET).blob(OBJECT, kms_key_name=NEW_KEY)
    with pytest.raises(gexc.ServiceUnavailable):
        dst.rewrite(src, if_generation_match=1, retry=None)
    assert fake.storage.get_object(BUCKET, OBJECT).kms_key_version == v(NEW_KEY, 1)
    with pytest.raises(gexc.NotFound):  # sourceGeneration=1 is soft-deleted now
        dst.rewrite(src, if_generation_match=1, retry=None)
    with pytest.raises(gexc.PreconditionFailed):
        dst.rewrite(client.bucket(BUCKET).blob(OBJECT), if_generation_match=1, retry=None)
    assert fake.storage.get_object(BUCKET, OBJECT).generation == 2


def test_a_stopped_server_answers_nothing(fake: FakeBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    with serve_storage(fake) as server:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.url)
        client = storage.Client(project="demo")
        assert client.get_bucket(BUCKET).name == BUCKET  # leaves a kept-alive connection
    with pytest.raises(Exception, match="(?i)connection"):
        client.get_bucket(BUCKET, retry=None)
    assert server.errors == []


def test_unserved_endpoints_are_501(client: storage.Client) -> None:
    with pytest.raises(gexc.MethodNotImplemented):
        client.bucket(BUCKET).delete(retry=None)


def test_rotators_own_objects_upload_download_delete_with_generation_checks(client: storage.Client) -> None:
    """What rotator keeps in a bucket (plans, journals, the lock, docs/state.md): created
    only if absent, read back byte for byte, deleted only at the generation given."""
    blob = client.bucket(BUCKET).blob("plans/p.json.lock")
    blob.upload_from_string(b'{"owner": "a"}', if_generation_match=0, retry=None)
    first = blob.generation
    with pytest.raises(gexc.PreconditionFailed):
        client.bucket(BUCKET).blob("plans/p.json.lock").upload_from_string(
            b"{}", if_generation_match=0, retry=None
        )
    got = client.bucket(BUCKET).get_blob("plans/p.json.lock")
    assert got is not None and got.generation == first
    assert got.download_as_bytes(retry=None) == b'{"owner": "a"}'
    with pytest.raises(gexc.PreconditionFailed):
        client.bucket(BUCKET).delete_blob("plans/p.json.lock", if_generation_match=first + 1, retry=None)
    client.bucket(BUCKET).delete_blob("plans/p.json.lock", if_generation_match=first, retry=None)
    assert client.bucket(BUCKET).get_blob("plans/p.json.lock") is None


# -- the partial-response parser ------------------------------------------------------------------


def test_fields_selector_syntax() -> None:
    doc = {"kind": "k", "items": [{"name": "a", "x": {"y": 1, "z": 2}, "w": 3}], "nextPageToken": "t"}
    assert project_fields(doc, parse_fields("items(name,x/y),nextPageToken")) == {
        "items": [{"name": "a", "x": {"y": 1}}],
        "nextPageToken": "t",
    }
    assert project_fields(doc, parse_fields("items/x,kind")) == {
        "items": [{"x": {"y": 1, "z": 2}}],
        "kind": "k",
    }
    assert project_fields(doc, parse_fields("items(*)")) == {"items": doc["items"]}
    assert project_fields(doc, parse_fields("items(x(z)),items(name)")) == {
        "items": [{"x": {"z": 2}, "name": "a"}]
    }
    for bad in ("", "items(", "items)", "a,,b", "items(name))"):
        with pytest.raises(Exception, match="Invalid field selection"):
            parse_fields(bad)
