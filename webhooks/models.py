"""Tables of the intake: the inbox of raw events and its nonce memory, channel codes, OA QR scenes, auto-replies,
and where an interrupted `siyu sync wecom` resumes."""
from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from config.database import Base
from config.types import ErrorText, JSONType, UTCDateTime, utcnow


class InboxStatus(str, enum.Enum):
    received = "received"  # stored, waiting for (or between attempts of) a worker
    done = "done"
    failed = "failed"  # retries exhausted; replay with POST /api/v1/inbox/{id}/replay
    unhandled = "unhandled"  # no handler for its (MsgType, Event, ChangeType): kept and counted


class InboxEvent(Base):
    """One callback, decrypted, stored once under its content key before it is answered."""

    __tablename__ = "webhook_inbox"
    __table_args__ = (Index("ix_webhook_inbox_status_due", "status", "due_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(20))  # wecom, official_account, miniprogram
    content_key: Mapped[str] = mapped_column(String(100), unique=True)
    msg_type: Mapped[str] = mapped_column(String(40), default="")
    event: Mapped[str] = mapped_column(String(60), default="")
    change_type: Mapped[str] = mapped_column(String(60), default="")
    payload: Mapped[str] = mapped_column(Text)  # the decrypted plaintext, as received
    data: Mapped[dict] = mapped_column(JSONType, default=dict)  # the plaintext parsed
    status: Mapped[str] = mapped_column(String(20), default=InboxStatus.received.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(ErrorText)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)  # the sweeper looks after this
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WebhookNonce(Base):
    """A (source, nonce, timestamp) of an OA / mini-program callback, remembered while the timestamp is fresh.

    Without Redis this is the replay memory (webhooks/replay.py); it sits next to the inbox and is written in
    the same transaction, so a nonce is remembered exactly when its callback is stored.
    """

    __tablename__ = "webhook_nonces"

    source: Mapped[str] = mapped_column(String(20), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    timestamp: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    body_sha256: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)  # the sweeper purges what has passed


class InboxApplied(Base):
    """The mark that an inbox event's handler committed its effects: written in the handler's own transaction.

    It lives in the main database, beside the effects, while the inbox row may live in a file of its own
    (embedded mode): a second copy of the job finds the mark and applies nothing, and a job that died
    between this commit and marking the row done is finished by the next attempt.
    """

    __tablename__ = "webhook_inbox_applied"

    content_key: Mapped[str] = mapped_column(String(100), primary_key=True)  # the inbox row's content key
    inbox_id: Mapped[int] = mapped_column(Integer)
    applied_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# The intake's own tables: on SQLite they live in `<var_dir>/inbox.db`, so an acknowledgement never waits
# for a job holding the main database's write lock (webhooks.inbox.inbox_engine).
INBOX_TABLES = (InboxEvent.__table__, WebhookNonce.__table__)


class ChannelCode(Base):
    """A WeCom 联系我 code Siyu created: customers arriving with its `state` get its store, staff, tags, welcome."""

    __tablename__ = "channel_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    state: Mapped[str] = mapped_column(String(30), unique=True)
    store_id: Mapped[int | None] = mapped_column(Integer, index=True)
    staff_userids: Mapped[list] = mapped_column(JSONType, default=list)
    tag_ids: Mapped[list] = mapped_column(JSONType, default=list)  # local tag ids
    welcome_text: Mapped[str | None] = mapped_column(Text)
    config_id: Mapped[str | None] = mapped_column(String(64))
    qr_code: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OAQrCode(Base):
    """An official-account QR code Siyu made: its scene string attributes followers to a store and staff."""

    __tablename__ = "oa_qrcodes"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), default="")
    scene: Mapped[str] = mapped_column(String(64), unique=True)
    store_id: Mapped[int | None] = mapped_column(Integer)
    staff_userid: Mapped[str | None] = mapped_column(String(64))
    ticket: Mapped[str | None] = mapped_column(String(200))
    url: Mapped[str | None] = mapped_column(String(500))
    expire_seconds: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AutoReply(Base):
    """A keyword rule answering OA / mini-program text messages."""

    __tablename__ = "auto_replies"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), default="")
    keywords: Mapped[list] = mapped_column(JSONType, default=list)
    match: Mapped[str] = mapped_column(String(20), default="contains")  # exact, contains, keyword
    channels: Mapped[list] = mapped_column(JSONType, default=list)  # empty: every channel
    reply_text: Mapped[str | None] = mapped_column(Text)
    miniprogram: Mapped[dict | None] = mapped_column(JSONType)  # {"title","appid","pagepath","thumb_media_id"}
    priority: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SyncCheckpoint(Base):
    """Where an interrupted `siyu sync wecom` resumes: the chunk of staff and the cursor within it."""

    __tablename__ = "wecom_sync_checkpoints"

    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    state: Mapped[dict] = mapped_column(JSONType, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
