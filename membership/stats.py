"""Figures of the profile store for dashboards: customers gained and lost per day, members per channel.

Each is one aggregate query, whatever the number of members; scoped by the caller's visible members.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Select, distinct, func, select
from sqlalchemy.orm import Session

from membership.models import Identity, Member, TimelineEvent

ADDED, LOST = "contact.added", "contact.lost"
CHANNEL_OF = {"wecom_external": "wecom", "oa_openid": "official_account", "mp_openid": "miniprogram",
              "phone": "phone"}  # CONTRACT §4 channels (a unionid is no channel of its own)


@dataclass(frozen=True)
class DayFlow:
    """Customers added and lost on one business day."""

    day: date
    added: int
    lost: int

    @property
    def net(self) -> int:
        """Added minus lost."""
        return self.added - self.lost


def local_day(session: Session, column, tz: ZoneInfo):
    """`column` (a UTC time) as its business day in `tz`, as YYYY-MM-DD text, for grouping by day."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone(tz.key, column), "YYYY-MM-DD")
    # SQLite keeps UTC text: shift by the zone's offset now (exact for zones without daylight saving, like China's).
    offset = int(datetime.now(tz).utcoffset().total_seconds())
    return func.strftime("%Y-%m-%d", column, f"{offset:+d} seconds")


def contact_flow(session: Session, *, since: date, until: date, tz: ZoneInfo, store_id: int | None = None,
                 staff_userid: str | None = None, visible: Select | None = None) -> list[DayFlow]:
    """contact.added / contact.lost per business day from `since` to `until` (inclusive), zero days included."""
    start = datetime.combine(since, datetime.min.time(), tz)
    end = datetime.combine(until + timedelta(days=1), datetime.min.time(), tz)
    day = local_day(session, TimelineEvent.at, tz).label("day")
    q = (select(day, TimelineEvent.type, func.count()).join(Member, Member.id == TimelineEvent.member_id)
         .where(TimelineEvent.type.in_((ADDED, LOST)), TimelineEvent.at >= start, TimelineEvent.at < end)
         .group_by(day, TimelineEvent.type))
    if store_id is not None:
        q = q.where(Member.store_id == store_id)
    if staff_userid:
        q = q.where(TimelineEvent.data["staff"].as_string() == staff_userid)
    if visible is not None:
        q = q.where(TimelineEvent.member_id.in_(visible))
    counts = {(d, t): n for d, t, n in session.execute(q)}
    days = [since + timedelta(days=i) for i in range((until - since).days + 1)]
    return [DayFlow(d, counts.get((d.isoformat(), ADDED), 0), counts.get((d.isoformat(), LOST), 0)) for d in days]


def members_by_channel(session: Session, *, store_id: int | None = None,
                       visible: Select | None = None) -> dict[str, int]:
    """Live members with an identity on each channel (a member on two channels counts on both)."""
    q = (select(Identity.type, func.count(distinct(Identity.member_id))).join(Member, Member.id == Identity.member_id)
         .where(Member.merged_into_id.is_(None), Identity.type.in_(CHANNEL_OF)).group_by(Identity.type))
    if store_id is not None:
        q = q.where(Member.store_id == store_id)
    if visible is not None:
        q = q.where(Member.id.in_(visible))
    found = dict(session.execute(q).all())
    return {channel: found.get(kind, 0) for kind, channel in CHANNEL_OF.items()}
