"""Cloud Storage retention and hold rules (R16), shared by the fake and the guards so
that what the fake refuses and what rotator predicts cannot drift apart."""

from __future__ import annotations

from datetime import datetime

from rotator.model import Bucket, ObjectInfo


def retention_expiry(obj: ObjectInfo, bucket: Bucket) -> datetime | None:
    """When neither the bucket's retention policy nor the object's retention holds the
    object any more (the later of the two), or None when neither applies."""
    ends: list[datetime] = []
    if obj.retain_until is not None and obj.retention_mode:
        ends.append(obj.retain_until)
    if obj.retention_expires is not None:
        # Cloud Storage's own word (`retentionExpirationTime`): the policy's clock may not
        # have started at creation (an event-based hold starts it when released).
        ends.append(obj.retention_expires)
    elif bucket.retention is not None and bucket.retention.period.total_seconds() > 0:
        ends.append(obj.created + bucket.retention.period)
    return max(ends) if ends else None


def overwrite_blocker(obj: ObjectInfo, bucket: Bucket, now: datetime) -> str | None:
    """Why the object cannot be rewritten, replaced or deleted now, or None (R16)."""
    if obj.temporary_hold:
        return "a temporary hold"
    if obj.event_based_hold:
        return "an event-based hold"
    expiry = retention_expiry(obj, bucket)
    if expiry is not None and expiry > now:
        kind = "object retention" if obj.retain_until == expiry else "bucket retention policy"
        return f"{kind} until {expiry.strftime('%Y-%m-%dT%H:%M:%SZ')}"
    return None


def locked(obj: ObjectInfo, bucket: Bucket) -> bool:
    """Is the object under a *locked* retention (bucket policy or object mode Locked)?
    Those are the objects R16 names for destroy; unlocked ones still block rewrite."""
    return (obj.retention_mode == "Locked") or bool(bucket.retention and bucket.retention.locked)
