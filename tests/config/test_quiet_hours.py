"""Quiet hours: one definition, checked against a minute-by-minute reference in two time zones."""
from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.quiet_hours import QuietHours

ZONES = [ZoneInfo("Asia/Shanghai"), ZoneInfo("America/New_York")]  # the second has DST transitions
clocks = st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 59]))
instants = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31)).map(
    lambda d: d.replace(second=0, microsecond=0, tzinfo=timezone.utc))


def _quiet_minutes(q: QuietHours) -> set[int]:
    # the minutes of the day, counted from 00:00, that lie in quiet hours: start, start+1 … end-1 (wrapping)
    first, last = q.start.hour * 60 + q.start.minute, q.end.hour * 60 + q.end.minute
    return {(first + i) % 1440 for i in range((last - first) % 1440)}


def _reference_inside(q: QuietHours, at: datetime, tz: ZoneInfo, minutes: set[int] | None = None) -> bool:
    local = at.astimezone(tz)
    return local.hour * 60 + local.minute in (_quiet_minutes(q) if minutes is None else minutes)


@settings(max_examples=300, deadline=None)
@given(start=clocks, end=clocks, at=instants, tz=st.sampled_from(ZONES))
def test_contains_agrees_with_a_minute_by_minute_reference(start, end, at, tz):
    q = QuietHours(start, end)
    assert q.contains(at, tz) == _reference_inside(q, at, tz)


@settings(max_examples=200, deadline=None)
@given(start=clocks, end=clocks, at=instants, tz=st.sampled_from(ZONES))
def test_next_allowed_is_the_first_minute_outside_quiet_hours(start, end, at, tz):
    q = QuietHours(start, end)
    # the reference walks forward a minute at a time
    ref, minutes = at, _quiet_minutes(q)
    while _reference_inside(q, ref, tz, minutes):
        ref += timedelta(minutes=1)
    assert q.next_allowed(at, tz) == ref


@settings(max_examples=200, deadline=None)
@given(start=clocks, end=clocks, at=instants, tz=st.sampled_from(ZONES))
def test_last_allowed_before_is_the_last_minute_outside_quiet_hours(start, end, at, tz):
    q = QuietHours(start, end)
    ref, minutes = at, _quiet_minutes(q)
    while _reference_inside(q, ref, tz, minutes):
        ref -= timedelta(minutes=1)
    assert q.last_allowed_before(at, tz) == ref


def test_a_send_due_at_22_in_shanghai_waits_for_9_the_next_morning():
    # given quiet hours 21:00-09:00 and a send due at 22:30 Beijing time on 12 December
    q, tz = QuietHours.parse("21:00-09:00"), ZoneInfo("Asia/Shanghai")
    due = datetime(2026, 12, 12, 22, 30, tzinfo=tz)
    # then it goes out at 09:00 on 13 December, not dropped and not at 22:30
    assert q.next_allowed(due, tz) == datetime(2026, 12, 13, 9, 0, tzinfo=tz)
    # and a reminder due at 07:00 moves back to 20:59 of the evening before
    evening = datetime(2026, 12, 12, 20, 59, tzinfo=tz)
    assert q.last_allowed_before(datetime(2026, 12, 13, 7, 0, tzinfo=tz), tz) == evening


@pytest.mark.parametrize("spec", ["21:00", "25:00-09:00", "21:00-9:00", "21-09", "x"])
def test_a_malformed_span_is_refused(spec):
    with pytest.raises(ValueError, match="HH:MM-HH:MM"):
        QuietHours.parse(spec)


def test_no_span_means_no_quiet_hours():
    assert QuietHours.parse("") is None and QuietHours.parse(None) is None
    tz = ZoneInfo("Asia/Shanghai")
    assert not QuietHours(time(9), time(9)).contains(datetime(2026, 12, 1, 1, tzinfo=tz), tz)


def test_the_setting_defaults_to_nine_at_night_to_nine_in_the_morning_and_is_validated(monkeypatch):
    from config.settings import SettingsError, load_settings

    assert str(load_settings().quiet) == "21:00-09:00"
    assert load_settings(quiet_hours="").quiet is None
    with pytest.raises(SettingsError, match="^SIYU_QUIET_HOURS: "):
        load_settings(quiet_hours="late")
