"""The contact-policy evaluator agrees with a plain reference implementation (property-based)."""
from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from campaigns.policy import Cap, Policy, evaluate
from config.quiet_hours import QuietHours

TZ = ZoneInfo("Asia/Shanghai")
BASE = datetime(2026, 1, 31, 0, 0, tzinfo=timezone.utc)  # the month turns inside the generated range


def reference(quiet: list[tuple[int, int]], cap_max: int, cap_days: int, quota: int, now: datetime,
              contacts: list[datetime], used: int) -> tuple:
    """Minute by minute, the plainest reading of the rules."""
    def quiet_at(t: datetime) -> bool:
        minute = t.astimezone(TZ).hour * 60 + t.astimezone(TZ).minute
        for start, end in quiet:
            if start == end:
                continue
            if (start < end and start <= minute < end) or (start > end and (minute >= start or minute < end)):
                return True
        return False

    t = now
    while quiet_at(t):
        t += timedelta(minutes=1)
        if t - now > timedelta(days=2):
            return ("skip", "always_quiet")
    if t != now:
        return ("wait", t)
    recent = [c for c in contacts if now - timedelta(days=cap_days) < c <= now]
    if cap_max and len(recent) >= cap_max:
        return ("skip", "frequency_cap")
    if used >= quota:
        return ("skip", "monthly_quota")
    return ("send", None)


minutes = st.integers(0, 24 * 60 - 1)


@given(quiet=st.lists(st.tuples(minutes, minutes), max_size=2), cap_max=st.integers(0, 3),
       cap_days=st.integers(1, 10), quota=st.integers(1, 5), offset=st.integers(0, 3 * 24 * 60),
       contact_offsets=st.lists(st.integers(-15 * 24 * 60, 60), max_size=6), used=st.integers(0, 6))
def test_the_evaluator_agrees_with_the_reference(quiet, cap_max, cap_days, quota, offset, contact_offsets, used):
    # given a policy, a member's recent contacts and quota use, at a minute of some day around a month's end
    now = BASE + timedelta(minutes=offset)
    contacts = [now + timedelta(minutes=o) for o in contact_offsets]
    spans = tuple(QuietHours(time(s // 60, s % 60), time(e // 60, e % 60)) for s, e in quiet)
    policy = Policy(spans, Cap(cap_max, cap_days), quota, TZ)
    # when both decide
    decision = evaluate(policy, now=now, contacts=contacts, quota_used=used)
    expected = reference(quiet, cap_max, cap_days, quota, now, contacts, used)
    # then they agree
    got = (decision.action, decision.until if decision.action == "wait" else decision.reason)
    assert got == expected


def test_a_cap_of_zero_blocks_nobody():
    # given a cap of 0 and a member contacted a hundred times today
    now = BASE + timedelta(hours=4)
    policy = Policy((), Cap(0, 7), 4, TZ)
    # then the cap is no cap
    assert evaluate(policy, now=now, contacts=[now] * 100, quota_used=0).action == "send"
