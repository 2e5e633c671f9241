"""Cloud Storage: buckets whose default key is the key, and objects (every generation)
encrypted under its versions (R10-R19)."""

from __future__ import annotations

from rotator.changes import Change
from rotator.services.spec import ANYONE, Call, PinKind, Repeat, ServiceSpec
from rotator.services.storage.api import StorageApi, StorageReads

BUCKET_DEFAULT = "bucket_default"
LIVE_OBJECT = "live_object"
UNREADABLE_OBJECT = "unreadable_object"
HELD_OBJECT = "held_object"
RETAINED_OBJECT = "retained_object"
NONCURRENT_GENERATION = "noncurrent_generation"
SOFT_DELETED_GENERATION = "soft_deleted_generation"

_OBJECTS = "its data can no longer be read, copied or rewritten (R14)"

SPEC: ServiceSpec[StorageApi, StorageReads] = ServiceSpec(
    name="storage",
    title="Cloud Storage",
    agents=("service-{n}@gs-project-accounts.iam.gserviceaccount.com",),
    pin_kinds=(
        PinKind(
            BUCKET_DEFAULT,
            "R15",
            True,
            True,
            "the bucket's default key is switched (R13.1)",
            "uploads, copies and rewrites into the bucket fail (R15)",
            "{resource} is the default key of the bucket",
            key_level=True,
        ),
        PinKind(
            LIVE_OBJECT,
            "R14",
            True,
            True,
            "rewritten under another version",
            _OBJECTS,
            rewritable=True,
        ),
        PinKind(
            UNREADABLE_OBJECT,
            "R14",
            False,
            True,
            "the version is re-enabled and the object rewritten",
            _OBJECTS,
        ),
        PinKind(HELD_OBJECT, "R16", True, True, "the hold is released, then rewritten", _OBJECTS),
        PinKind(RETAINED_OBJECT, "R16", True, True, "retention expires, then rewritten", _OBJECTS),
        PinKind(NONCURRENT_GENERATION, "R18", True, True, "deleted (e.g. by lifecycle)", _OBJECTS),
        PinKind(
            SOFT_DELETED_GENERATION,
            "R18",
            False,
            True,
            "its hard-delete time",
            "it cannot be restored readable (R14)",
        ),
    ),
    products=("storage.googleapis.com",),
    calls={
        "list_buckets": Call("storage.buckets.list"),
        "get_bucket": Call("storage.buckets.get"),
        "test_iam_permissions": Call(ANYONE),
        "patch_bucket_default_kms_key": Call("storage.buckets.update", named="patch_bucket"),
        "list_objects": Call("storage.objects.list"),
        "get_object": Call("storage.objects.get"),
        "download_bytes": Call("storage.objects.get", named="download_object"),
        "list_names": Call("storage.objects.list", named="list_objects"),
        # A create whose answer was lost answers 412 the second time, and the caller reads
        # the object back to tell its own write from another's.
        "upload_bytes": Call("storage.objects.create", named="upload_object"),
        # Its callers always give the generation. The fake repeats it (a repeat is refused
        # by the precondition); the gcp adapter has always sent it once.
        "delete_object": Call("storage.objects.delete", gcp_repeat=Repeat.ONCE),
        # Without a generation precondition a repeat could clobber a concurrent write.
        "rewrite_object": Call(
            "storage.objects.create, storage.objects.delete and storage.objects.get", Repeat.IF_MATCH
        ),
        # The project's Cloud Storage service agent (the gcp backend's project number).
        "get_service_account": Call("resourcemanager.projects.get"),
    },
    # The JSON API's emulator variable, as google-cloud-storage itself reads it.
    endpoint_env="STORAGE_EMULATOR_HOST",
    listed_once=frozenset({"list_buckets"}),
    key_changes=frozenset({Change.REWRITE, Change.SET_DEFAULT_KMS_KEY}),
    change_permissions={
        Change.REWRITE: (
            "bucket",
            ("storage.objects.create", "storage.objects.delete", "storage.objects.get"),
        ),
        Change.SET_DEFAULT_KMS_KEY: ("bucket", ("storage.buckets.update",)),
    },
)
