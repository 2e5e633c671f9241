"""Cloud Storage: buckets whose default key is the key, and objects (every generation)
encrypted under its versions (R10-R19)."""

from __future__ import annotations

from rotator.changes import Change
from rotator.services.spec import PinKind, ServiceSpec

BUCKET_DEFAULT = "bucket_default"
LIVE_OBJECT = "live_object"
UNREADABLE_OBJECT = "unreadable_object"
HELD_OBJECT = "held_object"
RETAINED_OBJECT = "retained_object"
NONCURRENT_GENERATION = "noncurrent_generation"
SOFT_DELETED_GENERATION = "soft_deleted_generation"

_OBJECTS = "its data can no longer be read, copied or rewritten (R14)"

SPEC = ServiceSpec(
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
    permissions={
        "list_buckets": "storage.buckets.list",
        "get_bucket": "storage.buckets.get",
        "patch_bucket": "storage.buckets.update",
        "patch_bucket_default_kms_key": "storage.buckets.update",
        "list_objects": "storage.objects.list",
        "get_object": "storage.objects.get",
        "rewrite_object": "storage.objects.create, storage.objects.delete and storage.objects.get",
    },
    # The JSON API's emulator variable, as google-cloud-storage itself reads it.
    endpoint_env="STORAGE_EMULATOR_HOST",
    # The gcp adapter makes these once: a delete, and a rewrite without a generation
    # precondition (with one, a repeat is refused by the precondition, so it is retried).
    # The fake's faults (ONCE) mark none of them: its rewrites always carry one.
    once=frozenset({"rewrite_object", "delete_object"}),
    world_sections=("storage",),
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
