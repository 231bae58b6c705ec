"""Tables of the consumer API: one row per mini-program login, which its session token names."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from config.database import Base
from config.types import UTCDateTime, utcnow


class MPSession(Base):
    """A login (wx.login → code2session): its token is good until it expires or a newer login of the user ends it.

    WeChat itself invalidates a user's previous session_key at every new login; Siyu's token follows suit, so an
    old token replayed after the consumer logged in again is refused.
    """

    __tablename__ = "mp_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    openid: Mapped[str | None] = mapped_column(String(128), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
