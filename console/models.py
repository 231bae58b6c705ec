"""Tables of the console: signed-in browser sessions, each standing for an API token or a WeCom sign-in."""
from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from config.database import Base
from config.types import UTCDateTime, utcnow


class SignedInVia(str, enum.Enum):
    token = "token"  # an API token pasted on the sign-in page
    wecom = "wecom"  # WeCom's web sign-in (the staff workbench)


class ConsoleSession(Base):
    """A browser's session: only the SHA-256 of the cookie's secret is stored; revoked at sign-out.

    A token session lives only as long as its API token (re-checked on every request); the bootstrap admin
    token has no row, so the session keeps that token's hash and ends when SIYU_ADMIN_TOKEN changes.
    """

    __tablename__ = "console_sessions"
    __table_args__ = (
        CheckConstraint("via IN ('token', 'wecom')", name="via"),
        CheckConstraint("(via = 'token' AND (api_token_id IS NOT NULL OR bootstrap_hash IS NOT NULL)) OR "
                        "(via = 'wecom' AND staff_id IS NOT NULL)", name="stands_for"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    via: Mapped[str] = mapped_column(String(10))
    api_token_id: Mapped[int | None] = mapped_column(ForeignKey("api_tokens.id"), index=True)
    bootstrap_hash: Mapped[str | None] = mapped_column(String(64))
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
