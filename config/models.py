"""Tables of the ground floor: the final failures of background jobs."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from config.database import Base
from config.types import ErrorText, JSONType, UTCDateTime, utcnow


class JobFailure(Base):
    """A background job that failed for good (retries exhausted): visible in the database, never only in a log."""

    __tablename__ = "job_failures"

    id: Mapped[int] = mapped_column(primary_key=True)
    func: Mapped[str] = mapped_column(String(200), index=True)
    args: Mapped[list] = mapped_column(JSONType, default=list)
    queue: Mapped[str] = mapped_column(String(40))
    error: Mapped[str] = mapped_column(ErrorText)
    attempts: Mapped[int] = mapped_column(default=1)
    failed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
