"""One object's rewrite under the destination key (R11, R13.3, R14), as the rewrite
engine (rotator.rewrites) and its worker processes (rotator.rewrite_workers) both send
it: only if it still needs it, never over an application's concurrent write."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rotator import apierrors as api
from rotator.model import Bucket, ObjectInfo
from rotator.services.storage.api import StorageApi
from rotator.storage_rules import overwrite_blocker

# A rewrite whose generation precondition fails is re-read and retried this often
# before the object is reported (an application keeps rewriting it).
MAX_PRECONDITION_RETRIES = 3


def needs_no_rewrite(obj: ObjectInfo, retiring: set[str], bucket: Bucket, now: Any) -> str | None:
    """'current' (not under a retiring version), 'pinned' (a hold or a retention keeps
    it as it is: reported by inventory as an R16 pin, it cannot be rewritten) or None:
    it needs a rewrite."""
    if obj.kms_key_version not in retiring:
        return "current"
    if obj.held or overwrite_blocker(obj, bucket, now):
        return "pinned"
    return None


def rewrite_one(
    storage: StorageApi,
    obj: ObjectInfo,
    retiring: set[str],
    dest: str,
    bucket: Bucket,
    now: Any,
    before_write: Callable[[], object] = lambda: None,
) -> tuple[str, int]:
    """Rewrite one object if it still needs it. Returns ('rewritten'|'current'|'pinned'
    | a failure description, bytes). The generation precondition means an application's
    concurrent write is never overwritten: on a mismatch the object is re-read and
    re-checked."""
    where = f"gs://{obj.bucket}/{obj.name}"
    for _ in range(MAX_PRECONDITION_RETRIES + 1):
        skip = needs_no_rewrite(obj, retiring, bucket, now)
        if skip:
            return skip, 0
        token = None
        try:
            while True:
                before_write()  # each call is a write: it waits for the bucket's rate
                result = storage.rewrite_object(
                    obj.bucket,
                    obj.name,
                    destination_kms_key=dest,
                    if_generation_match=obj.generation,
                    rewrite_token=token,
                )
                if result.done:
                    return "rewritten", obj.size
                token = result.rewrite_token
        except api.PreconditionFailed:
            try:
                obj = storage.get_object(obj.bucket, obj.name)
            except api.NotFound:
                return "current", 0  # deleted meanwhile: nothing left to protect
        except api.NotFound as e:
            try:  # deleted meanwhile, or a failure that says 404? Only a second look tells.
                storage.get_object(obj.bucket, obj.name)
            except api.NotFound:
                return "current", 0
            return f"{where}: {e}", 0
        except api.ApiError as e:
            return f"{where}: {e}", 0
    return f"{where}: generation kept changing under rotator (ifGenerationMatch)", 0
