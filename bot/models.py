"""Tables of the bot: the shared access-token cache of embedded mode (Redis holds it otherwise)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from config.database import Base
from config.types import JSONType, UTCDateTime, utcnow


class AccessToken(Base):
    """One cached Tencent access token, keyed by channel, app id and a hash of the secret."""

    __tablename__ = "wechat_access_tokens"

    key: Mapped[str] = mapped_column(String(160), primary_key=True)
    token: Mapped[str | None] = mapped_column(String(600))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class SyncCheckpoint(Base):
    """Where an interrupted `siyu sync wecom` resumes: the chunk of staff and the cursor within it."""

    __tablename__ = "wecom_sync_checkpoints"

    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    state: Mapped[dict] = mapped_column(JSONType, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
