"""The transfer ledger: one row per customer of a handover, claimed before WeCom hears of it."""
from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from config.database import Base
from config.types import ErrorText, UTCDateTime, utcnow
from membership.models import BigId


class TransferStatus(str, enum.Enum):
    requested = "requested"  # claimed; the call is being made (still here later: the process died making it)
    waiting = "waiting"  # WeCom started the handover: taken over in 24 hours unless the customer refuses
    succeeded = "succeeded"  # taken over (transfer_result status 1, or DELETE_BY_TRANSFER)
    refused = "refused"  # the customer refused (status 3, or transfer_fail customer_refused)
    failed = "failed"  # WeCom refused this customer (errcode), the takeover was full (status 4), or no record
    unknown = "unknown"  # the call's outcome is not known (timeout): reconciled through transfer_result, never resent


OPEN = (TransferStatus.requested.value, TransferStatus.waiting.value, TransferStatus.unknown.value)
_OPEN_SQL = "status IN ('requested', 'waiting', 'unknown')"
_STATUSES = ", ".join(f"'{s.value}'" for s in TransferStatus)


class Transfer(Base):
    """One customer of one handover request, from the claim to WeCom's final word."""

    __tablename__ = "transfers"
    __table_args__ = (
        UniqueConstraint("batch", "external_userid"),
        # A customer is in at most one open handover from a staff member: a repeated request sends nothing.
        Index("uq_transfers_open_customer", "handover_userid", "external_userid", unique=True,
              postgresql_where=text(_OPEN_SQL), sqlite_where=text(_OPEN_SQL)),
        Index("ix_transfers_status_pair", "status", "handover_userid", "takeover_userid"),
        CheckConstraint(f"status IN ({_STATUSES})", name="status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    batch: Mapped[str] = mapped_column(String(32))  # one POST …/transfer: its rows share it
    handover_userid: Mapped[str] = mapped_column(String(64))
    takeover_userid: Mapped[str] = mapped_column(String(64), index=True)
    external_userid: Mapped[str] = mapped_column(String(64))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    resigned: Mapped[bool] = mapped_column(Boolean, default=False)  # 离职继承 (else 在职继承)
    message: Mapped[str | None] = mapped_column(String(200))  # transfer_success_msg (在职继承 only)
    status: Mapped[str] = mapped_column(String(12), default=TransferStatus.requested.value)
    errcode: Mapped[int | None] = mapped_column(Integer)  # customer[].errcode, or the whole call's errcode
    takeover_status: Mapped[int | None] = mapped_column(Integer)  # transfer_result status 1-5, as last seen
    reason: Mapped[str | None] = mapped_column(ErrorText)
    requested_by: Mapped[str] = mapped_column(String(120), default="")
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # when WeCom's answer (or its absence) came
    takeover_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # taken over, or when WeCom will do it
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
