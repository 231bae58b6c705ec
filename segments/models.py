"""Tables of the segments package."""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from config.database import Base
from config.types import ErrorText, JSONType, UTCDateTime, utcnow
from membership.models import BigId


class Segment(Base):
    """A saved definition and the state of its materialised membership."""

    __tablename__ = "segments"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    definition: Mapped[dict] = mapped_column(JSONType)
    # Change keys ("event:booking.completed", "tag:VIP", …) whose change can alter membership.
    depends_on: Mapped[list] = mapped_column(JSONType, default=list)
    relative_dates: Mapped[bool] = mapped_column(Boolean, default=False)  # re-evaluated at each day start
    size: Mapped[int | None] = mapped_column(Integer)
    refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_refresh_ms: Mapped[int | None] = mapped_column(Integer)
    last_entered: Mapped[int | None] = mapped_column(Integer)
    last_left: Mapped[int | None] = mapped_column(Integer)
    # Why no retry can evaluate it (an invalid stored definition, a statement too large), recorded once;
    # scheduled refreshes leave it out until it or a segment it references is redefined.
    refresh_error: Mapped[str | None] = mapped_column(ErrorText)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class SegmentReference(Base):
    """Segment `segment_id`'s definition refers to `referenced_id`, which the database therefore keeps."""

    __tablename__ = "segment_references"

    segment_id: Mapped[int] = mapped_column(ForeignKey("segments.id", ondelete="CASCADE"), primary_key=True)
    referenced_id: Mapped[int] = mapped_column(ForeignKey("segments.id", ondelete="RESTRICT"), primary_key=True,
                                               index=True)


class SegmentMembership(Base):
    """A member currently in a segment."""

    __tablename__ = "segment_membership"

    segment_id: Mapped[int] = mapped_column(ForeignKey("segments.id", ondelete="CASCADE"), primary_key=True)
    member_id: Mapped[int] = mapped_column(BigId, ForeignKey("members.id"), primary_key=True, index=True)
    entered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EventDayCount(Base):
    """Events of a type (matching one tracked `where` filter, '' for none) a member had on one business day.

    Event-count conditions sum these buckets instead of scanning the raw timeline.
    """

    __tablename__ = "segment_event_days"
    __table_args__ = (
        # Bulk evaluation reads one (type, filter) over a day range for every member: index-only.
        Index("ix_segment_event_days_scan", "type", "where_key", "day", "member_id", "n"),
    )

    member_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    type: Mapped[str] = mapped_column(String(40), primary_key=True)
    where_key: Mapped[str] = mapped_column(String(20), primary_key=True, default="")
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    n: Mapped[int] = mapped_column(Integer, default=0)


class EventFilter(Base):
    """A `where` filter some definition counts by; events matching it get their own counter buckets."""

    __tablename__ = "segment_event_filters"
    __table_args__ = (UniqueConstraint("type", "where_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    type: Mapped[str] = mapped_column(String(40), index=True)
    where_key: Mapped[str] = mapped_column(String(20))
    where: Mapped[dict] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TagRule(Base):
    """Auto-tagging: on entering `segment_id`, or on a message matching `keywords`, put `tag_id` on the member."""

    __tablename__ = "tag_rules"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    tag_id: Mapped[int] = mapped_column(ForeignKey("tags.id"))
    # RESTRICT: a segment a rule uses is not deleted (the API answers 409 first; this holds under races).
    segment_id: Mapped[int | None] = mapped_column(ForeignKey("segments.id", ondelete="RESTRICT"), index=True)
    keywords: Mapped[list | None] = mapped_column(JSONType)
    remove_on_leave: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WecomTagChange(Base):
    """A tag change made in Siyu (a rule, the API, a channel code), waiting to be mirrored on WeCom with mark_tag."""

    __tablename__ = "segment_wecom_tag_changes"
    __table_args__ = (Index("ix_segment_wecom_tag_changes_status", "status", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    member_id: Mapped[int] = mapped_column(BigId, ForeignKey("members.id"))
    tag_id: Mapped[int] = mapped_column(ForeignKey("tags.id"))
    add: Mapped[bool] = mapped_column(Boolean)
    rule_id: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending, done, skipped, failed
    error: Mapped[str | None] = mapped_column(ErrorText)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
