"""Tables of the bot: the shared access-token cache of embedded mode (Redis holds it otherwise), the send ledger."""
from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import CheckConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from config.database import Base
from config.types import ErrorText, UTCDateTime, utcnow


class AccessToken(Base):
    """One cached Tencent access token, keyed by channel, app id and a hash of the secret."""

    __tablename__ = "wechat_access_tokens"

    key: Mapped[str] = mapped_column(String(160), primary_key=True)
    token: Mapped[str | None] = mapped_column(String(600))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class SendStatus(str, enum.Enum):
    """Where one ledger row's send stands."""

    sending = "sending"  # claimed; the call is under way, or the process died during it (it may be out)
    sent = "sent"
    failed = "failed"  # Tencent answered with an error, so nothing went out: the only state claimed again
    unknown = "unknown"  # no usable answer (a timeout, a dropped connection): it may be out, never retried blindly
    skipped = "skipped"  # decided against (a welcome code expired…); `error` says why


class OutboundSend(Base):
    """One message Siyu sends (welcome, loss alert, auto-reply, every campaign send), claimed before the send.

    The unique key makes a retried or doubled job send nothing twice; `cause` names what asked for it
    (`inbox:<id>`, a campaign run…).
    """

    __tablename__ = "outbound_sends"
    __table_args__ = (CheckConstraint(f"status IN ({', '.join(repr(s.value) for s in SendStatus)})", name="status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)  # welcome:<code>, loss_alert:<inbox>, …
    cause: Mapped[str | None] = mapped_column(String(100), index=True)
    status: Mapped[str] = mapped_column(String(20), default=SendStatus.sending.value)
    error: Mapped[str | None] = mapped_column(ErrorText)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
