"""The page tokens of the fake's lists: opaque to the caller, as Google's are, and
refused as INVALID_ARGUMENT when they were not made here (the fake Cloud Storage and
the wire servers' JSON API in tests/wire/ use the same ones)."""

from __future__ import annotations

import base64
import json

from rotator import apierrors as api


def encode_token(*parts: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(parts).encode()).decode()


def decode_token(token: str) -> list[object]:
    try:
        value = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, UnicodeDecodeError):
        raise api.InvalidArgument(f"invalid token {token!r}") from None
    if not isinstance(value, list):
        raise api.InvalidArgument(f"invalid token {token!r}")
    return value
