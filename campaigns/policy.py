"""Contact policy: the one evaluator every send passes at claim time (quiet hours, frequency cap, monthly quota).

It is a pure function of the facts the claim loaded under the member's lock, so the property test can set
it beside a plain reference implementation. Order matters: a send due inside quiet hours waits (it is not
dropped, and the facts may differ by then); a send outside them is skipped by the first limit it meets.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from config.quiet_hours import QuietHours
from config.settings import Settings

FREQUENCY_CAP = "frequency_cap"
MONTHLY_QUOTA = "monthly_quota"
ALWAYS_QUIET = "always_quiet"  # the quiet spans together cover the whole day: the send could never go


@dataclass(frozen=True)
class Cap:
    """At most `max` contacts within `per_days` days; max 0 means no cap (never "block all")."""

    max: int
    per_days: int


@dataclass(frozen=True)
class Policy:
    """What a campaign's sends must respect: the settings' defaults, tightened by the campaign's own policy."""

    quiet: tuple[QuietHours, ...]
    cap: Cap
    monthly_quota: int
    tz: ZoneInfo


@dataclass(frozen=True)
class Decision:
    """`send`, `wait` (until `until`) or `skip` (for `reason`)."""

    action: str
    until: datetime | None = None
    reason: str | None = None


SEND = Decision("send")


def policy_for(spec_policy: dict | None, settings: Settings) -> Policy:
    """The effective policy of a campaign: both quiet spans apply; the tighter frequency cap wins."""
    spec_policy = spec_policy or {}
    quiet = [q for q in (settings.quiet,) if q is not None]
    if spec_policy.get("quiet_hours"):
        q = spec_policy["quiet_hours"]
        quiet.append(QuietHours.parse(f"{q['start']}-{q['end']}"))
    caps = [Cap(settings.campaign_frequency_cap, settings.campaign_frequency_days)]
    if spec_policy.get("frequency_cap"):
        caps.append(Cap(spec_policy["frequency_cap"]["max"], spec_policy["frequency_cap"]["per_days"]))
    real = [c for c in caps if c.max > 0]
    # Tighter: fewer contacts, and over at least as long a window as any cap asks for.
    cap = Cap(min(c.max for c in real), max(c.per_days for c in real)) if real else Cap(0, 1)
    return Policy(tuple(quiet), cap, settings.mass_message_monthly_quota, settings.tz)


def month_of(at: datetime, tz: ZoneInfo) -> str:
    """The natural month (YYYYMM) of `at` in the business time zone: WeCom's quota period."""
    return at.astimezone(tz).strftime("%Y%m")


def quiet_until(policy: Policy, at: datetime) -> datetime | None:
    """When every quiet span `at` falls in has ended (None when `at` is outside them all)."""
    t = at
    for _ in range(2 * len(policy.quiet) + 1):  # one span's end may fall in another's start
        moved = [q.next_allowed(t, policy.tz) for q in policy.quiet if q.contains(t, policy.tz)]
        if not moved:
            return None if t == at else t
        t = max(moved)
    return t


def evaluate(policy: Policy, *, now: datetime, contacts: list[datetime], quota_used: int) -> Decision:
    """Whether a send may go to one member now: `contacts` are when they were last contacted (any campaign),
    `quota_used` how many mass messages they have this month."""
    until = quiet_until(policy, now)
    if until is not None:
        if any(q.contains(until, policy.tz) for q in policy.quiet):
            return Decision("skip", reason=ALWAYS_QUIET)
        return Decision("wait", until=until)
    if policy.cap.max > 0:
        since = now - timedelta(days=policy.cap.per_days)
        if sum(1 for c in contacts if since < c <= now) >= policy.cap.max:
            return Decision("skip", reason=FREQUENCY_CAP)
    if quota_used >= policy.monthly_quota:
        return Decision("skip", reason=MONTHLY_QUOTA)
    return SEND
