"""The staff tasks table: one task per (run, staff member), whose customers are that staff member's ledger rows."""
from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from config.database import Base
from config.types import ErrorText, UTCDateTime, utcnow


class TaskStatus(str, enum.Enum):
    """CONTRACT §7: open → done. `overdue` is never stored: it is an open task past its due time."""

    open = "open"
    done = "done"


class StaffTask(Base):
    """A campaign run's task for one staff member (unique: a redelivered job or a second launch finds it).

    Its customers are the run's ledger rows (campaign_steps) owned by this staff member; `task_id` is the
    WeCom card's task_id (unique per app), `response_code` the send's one-time code for update_template_card.
    """

    __tablename__ = "staff_tasks"
    __table_args__ = (UniqueConstraint("run_id", "staff_id"),
                      CheckConstraint("status IN ('open', 'done')", name="status"),
                      CheckConstraint("(status = 'done') = (done_at IS NOT NULL)", name="done_has_time"),
                      Index("ix_staff_tasks_staff_status", "staff_id", "status"),
                      Index("ix_staff_tasks_status_due", "status", "due_at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("campaign_runs.id"))
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    store_id: Mapped[int | None] = mapped_column(Integer)  # the staff member's store when the task was made
    title: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(String(512), default="")
    task_id: Mapped[str] = mapped_column(String(128), unique=True)
    status: Mapped[str] = mapped_column(String(10), default=TaskStatus.open.value)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    card_msgid: Mapped[str | None] = mapped_column(String(64))
    response_code: Mapped[str | None] = mapped_column(String(128))  # unused send code (72 h, once)
    card_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    card_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    done_via: Mapped[str | None] = mapped_column(String(20))  # card, api, workbench
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the one overdue reminder
    error: Mapped[str | None] = mapped_column(ErrorText)  # the last card call WeCom refused
