"""Tables of the profile store (group chats included: who is in which 客户群 is profile data)."""
from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from config.database import Base
from config.types import JSONType, UTCDateTime, utcnow

BigId = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER PRIMARY KEY only


class IdentityType(str, enum.Enum):
    wecom_external = "wecom_external"
    oa_openid = "oa_openid"
    mp_openid = "mp_openid"
    unionid = "unionid"
    phone = "phone"


class RelationStatus(str, enum.Enum):
    active = "active"
    removed_by_staff = "removed_by_staff"  # the staff member deleted the customer
    lost = "lost"  # the customer deleted the staff member
    transferred = "transferred"  # moved to another staff member


class StaffSource(str, enum.Enum):
    """Where Siyu learnt of a staff member: only those WeCom's directory has listed are deactivated by a sync."""

    api = "api"  # created through POST /api/v1/staff and never seen in a WeCom directory answer
    wecom = "wecom"  # listed by user/list, or named by a WeCom callback


class Role(str, enum.Enum):
    admin = "admin"
    marketer = "marketer"
    store_manager = "store_manager"
    staff = "staff"


class Store(Base):
    __tablename__ = "stores"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    city: Mapped[str | None] = mapped_column(String(60))
    address: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Staff(Base):
    """A WeCom user (成员) working in a store."""

    __tablename__ = "staff"
    __table_args__ = (CheckConstraint("source IN ('api', 'wecom')", name="source"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    userid: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id"), index=True)
    role: Mapped[str] = mapped_column(String(20), default=Role.staff.value)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    source: Mapped[str] = mapped_column(String(10), default=StaffSource.api.value,
                                        server_default=StaffSource.api.value)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    store: Mapped[Store | None] = relationship(lazy="joined")


class Member(Base):
    """One person, however many WeChat identities they reach the brand through."""

    __tablename__ = "members"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str | None] = mapped_column(String(120))
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id"), index=True)
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Identity(Base):
    """`(type, scope, value)` naming one member on one channel; unique across all members."""

    __tablename__ = "identities"
    __table_args__ = (
        UniqueConstraint("type", "scope", "value"),
        # Segment channel conditions read every member of an identity type: index-only.
        Index("ix_identities_type_member", "type", "member_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    type: Mapped[str] = mapped_column(String(20))
    scope: Mapped[str] = mapped_column(String(64), default="")
    value: Mapped[str] = mapped_column(String(128))
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Relation(Base):
    """A staff member's tie to a customer (WeCom external contact); one row per (staff, member)."""

    __tablename__ = "relations"
    __table_args__ = (UniqueConstraint("staff_id", "member_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), index=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    state: Mapped[str | None] = mapped_column(String(30))
    channel_code_id: Mapped[int | None] = mapped_column(Integer)
    remark: Mapped[str | None] = mapped_column(String(120))
    status: Mapped[str] = mapped_column(String(20), default=RelationStatus.active.value)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    staff: Mapped[Staff] = relationship(lazy="joined")


class Tag(Base):
    """A tag in the catalogue; `wecom_tag_id` links it to a WeCom corp tag."""

    __tablename__ = "tags"
    __table_args__ = (UniqueConstraint("group_name", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(60), index=True)
    group_name: Mapped[str] = mapped_column(String(60), default="")
    wecom_tag_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    visible_to_member: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MemberTag(Base):
    __tablename__ = "member_tags"
    # Segment tag conditions read every member of a tag: index-only, in member order.
    __table_args__ = (Index("ix_member_tags_tag_member", "tag_id", "member_id"),)

    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), primary_key=True)
    tag_id: Mapped[int] = mapped_column(ForeignKey("tags.id"), primary_key=True)
    source: Mapped[str] = mapped_column(String(40), default="manual")  # manual, wecom, channel_code, rule:<id>
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Trait(Base):
    """One profile attribute; typed columns make it comparable in SQL on SQLite and PostgreSQL alike."""

    __tablename__ = "traits"

    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    value: Mapped[object | None] = mapped_column(JSONType)  # as set; NULL for counters kept in SQL
    text_value: Mapped[str | None] = mapped_column(String(300))
    number_value: Mapped[float | None] = mapped_column(Float)
    time_value: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    # member_id last makes segment trait conditions index-only scans (no heap visit per matching member).
    __table_args__ = (
        Index("ix_traits_key_text_member", "key", "text_value", "member_id"),
        Index("ix_traits_key_number_member", "key", "number_value", "member_id"),
        Index("ix_traits_key_time_member", "key", "time_value", "member_id"),
    )


class TimelineEvent(Base):
    """An append-only interaction on a member's profile (CONTRACT §6)."""

    __tablename__ = "timeline_events"
    __table_args__ = (Index("ix_timeline_events_member_at", "member_id", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    type: Mapped[str] = mapped_column(String(40), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    data: Mapped[dict] = mapped_column(JSONType, default=dict)
    # What made the event (an inbox key, a ledger key…): the same source writes it once.
    dedupe_key: Mapped[str | None] = mapped_column(String(128), unique=True)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MergeReview(Base):
    """A pair of members that look like one person but may not be merged automatically."""

    __tablename__ = "merge_reviews"
    __table_args__ = (UniqueConstraint("member_id", "other_member_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    other_member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="open")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiToken(Base):
    """A bearer token of the admin API; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    role: Mapped[str] = mapped_column(String(20))
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id"))
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # NULL: until revoked

    store: Mapped[Store | None] = relationship()
    staff: Mapped[Staff | None] = relationship()


class GroupChat(Base):
    """A WeCom customer group chat (客户群)."""

    __tablename__ = "group_chats"

    id: Mapped[int] = mapped_column(primary_key=True)
    chat_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    owner_userid: Mapped[str | None] = mapped_column(String(64))
    notice: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="active")  # active, dismissed
    member_version: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class GroupChatMember(Base):
    """Someone in a group chat: a staff member (type 1) or a customer (type 2), linked to a member when known."""

    __tablename__ = "group_chat_members"
    __table_args__ = (UniqueConstraint("chat_id", "userid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    chat_id: Mapped[str] = mapped_column(ForeignKey("group_chats.chat_id"), index=True)
    userid: Mapped[str] = mapped_column(String(64))
    type: Mapped[int] = mapped_column(Integer, default=2)
    unionid: Mapped[str | None] = mapped_column(String(64))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), index=True)
    join_scene: Mapped[int | None] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    joined_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    left_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SubscribeGrant(Base):
    """Mini-program subscribe messages a member allowed (一次性订阅): each accepted popup allows one message.

    `remaining` is what the member granted and Siyu has not used; sending takes one with a conditional
    UPDATE, so two senders never use one grant twice and the CHECK keeps it from going below zero.
    """

    __tablename__ = "subscribe_grants"
    __table_args__ = (CheckConstraint("remaining >= 0", name="remaining_not_negative"),)

    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), primary_key=True)
    template_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    remaining: Mapped[int] = mapped_column(Integer, default=0)
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
