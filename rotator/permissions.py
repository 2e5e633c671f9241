"""The IAM permission each API call needs, so a 403 says what to grant (both backends:
the gcp backend when Google answers 403, the fake when it injects one). Declared once,
with each call, in rotator.services.calls (the APIs no service owns) and in each
service's spec (rotator/services/<name>/spec.py)."""

from __future__ import annotations

from rotator.services.calls import PERMISSIONS, declared

__all__ = ["PERMISSIONS", "permission_for"]


def permission_for(api: str, method: str) -> str:
    """The permission a call of one API (a Backend attribute: kms, storage, batch...) needs."""
    return declared(api, method).permission
