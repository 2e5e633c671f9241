"""Durations ("30d", "2h", "90s") and RFC 3339 timestamps, as the world file writes them."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from rotator.errors import BadInput

_DURATION_RE = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def parse_duration(text: str | int, *, field: str = "duration") -> timedelta:
    """'30d', '2h30m', '45s', '0' -> timedelta. A bare integer means seconds."""
    if isinstance(text, bool):
        raise BadInput(f"{field}: expected a duration like 30d, 2h or 30m, got {text!r}")
    if isinstance(text, int):
        if text < 0:
            raise BadInput(f"{field}: duration must not be negative, got {text}")
        return timedelta(seconds=text)
    s = str(text).strip()
    if s == "0":
        return timedelta(0)
    m = _DURATION_RE.fullmatch(s)
    if not s or not m or not any(m.groups()):
        raise BadInput(f"{field}: expected a duration like 30d, 2h, 30m or 90s, got {text!r}")
    d, h, mi, sec = (int(g) if g else 0 for g in m.groups())
    return timedelta(days=d, hours=h, minutes=mi, seconds=sec)


def format_duration(delta: timedelta) -> str:
    total = int(delta.total_seconds())
    if total == 0:
        return "0"
    out = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if total >= size:
            out += f"{total // size}{unit}"
            total %= size
    return out


def parse_time(text: str | datetime, *, field: str = "time") -> datetime:
    if isinstance(text, datetime):
        return text if text.tzinfo else text.replace(tzinfo=timezone.utc)
    try:
        value = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        raise BadInput(
            f"{field}: expected an RFC 3339 time like 2026-11-22T00:00:00Z, got {text!r}"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def format_time(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
