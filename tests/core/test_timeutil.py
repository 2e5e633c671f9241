"""Durations ("30d", "2h30m") and RFC 3339 times as the world file writes them.

Backends: none (durations and times only)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from rotator.errors import BadInput
from rotator.timeutil import format_duration, format_time, parse_duration, parse_time


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", timedelta(days=30)),
        ("2h", timedelta(hours=2)),
        ("30m", timedelta(minutes=30)),
        ("90s", timedelta(seconds=90)),
        ("2h30m", timedelta(hours=2, minutes=30)),
        ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("0", timedelta(0)),
        (" 7d ", timedelta(days=7)),
        (45, timedelta(seconds=45)),
        (0, timedelta(0)),
    ],
)
def test_parse_duration(text: str | int, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "d", "7 days", "1.5h", "2h30", "30x", "-1d", "1m2h", "P1D"])
def test_bad_duration_text_is_bad_input_with_an_example(text: str) -> None:
    with pytest.raises(BadInput, match=r"soft_delete: expected a duration like 30d") as info:
        parse_duration(text, field="soft_delete")
    assert info.value.exit_code == 2


def test_negative_integer_duration_is_refused() -> None:
    with pytest.raises(BadInput, match="must not be negative"):
        parse_duration(-5)


def test_boolean_is_not_a_duration() -> None:
    # YAML `soft_delete: yes` would otherwise silently mean one second.
    with pytest.raises(BadInput):
        parse_duration(True)


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(0), "0"),
        (timedelta(days=30), "30d"),
        (timedelta(seconds=90), "1m30s"),
        (timedelta(hours=6), "6h"),
        (timedelta(days=1, hours=2, minutes=3, seconds=4), "1d2h3m4s"),
        (timedelta(days=365), "365d"),
    ],
)
def test_format_duration(delta: timedelta, text: str) -> None:
    assert format_duration(delta) == text
    assert parse_duration(text) == delta


def test_parse_time_z_is_utc() -> None:
    t = parse_time("2026-11-22T00:00:00Z")
    assert t == datetime(2026, 11, 22, tzinfo=timezone.utc)
    assert t.utcoffset() == timedelta(0)


def test_parse_time_converts_offsets_to_utc() -> None:
    t = parse_time("2026-11-22T02:30:00+02:00")
    assert t == datetime(2026, 11, 22, 0, 30, tzinfo=timezone.utc)
    assert t.tzinfo == timezone.utc


def test_parse_time_naive_is_taken_as_utc() -> None:
    assert parse_time("2026-11-22T00:00:00") == datetime(2026, 11, 22, tzinfo=timezone.utc)
    assert parse_time(datetime(2026, 11, 22)) == datetime(2026, 11, 22, tzinfo=timezone.utc)


def test_parse_time_keeps_fractional_seconds() -> None:
    assert parse_time("2026-11-22T00:00:00.250Z").microsecond == 250000


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01T00:00:00Z", "22/11/2026", ""])
def test_bad_time_is_bad_input_naming_the_field(text: str) -> None:
    with pytest.raises(BadInput, match=r"^now: expected an RFC 3339 time like 2026-11-22T00:00:00Z"):
        parse_time(text, field="now")


def test_format_time_is_utc_with_z() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert format_time(datetime(2026, 11, 22, 2, 0, tzinfo=plus_two)) == "2026-11-22T00:00:00Z"


def test_format_then_parse_round_trips() -> None:
    t = datetime(2031, 1, 1, 12, 34, 56, tzinfo=timezone.utc)
    assert parse_time(format_time(t)) == t


def test_formatted_times_sort_as_text_in_time_order() -> None:
    # The fake compares stored times as text (destroy_time, hard_delete_time).
    a = datetime(2026, 11, 22, 9, tzinfo=timezone.utc)
    b = a + timedelta(days=30)
    assert format_time(a) < format_time(b)
