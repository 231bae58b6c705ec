"""Tables of the campaign engine: campaigns, their runs, the send ledger (one row per run, member and step),
the WeCom calls that carry the ledger's rows (one per staff member and chunk), quota reservations, trigger entries."""
from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from config.database import Base
from config.types import ErrorText, JSONType, UTCDateTime, utcnow
from membership.models import BigId


def _check(enum_cls: type[enum.Enum], column: str = "status") -> str:
    return f"{column} IN ({', '.join(repr(s.value) for s in enum_cls)})"


class CampaignStatus(str, enum.Enum):
    """CONTRACT §7: draft → scheduled → running → completed; paused, cancelled."""

    draft = "draft"
    scheduled = "scheduled"
    running = "running"
    completed = "completed"
    paused = "paused"
    cancelled = "cancelled"


class RunStatus(str, enum.Enum):
    """One firing of a campaign (a launch, an `at` or cron occurrence, a trigger entry)."""

    sending = "sending"  # the ledger is (being) written and fanned out
    sent = "sent"  # every chunk went to WeCom or was settled; results are still polled
    missed = "missed"  # an occurrence that came more than the lateness bound late: recorded, not fired
    cancelled = "cancelled"


class StepStatus(str, enum.Enum):
    """Where one (run, member, step) ledger row stands."""

    planned = "planned"
    claimed = "claimed"  # policy passed, quota reserved, its chunk's call is under way
    submitted = "submitted"  # WeCom took the call (a task the staff member confirms)
    confirmed = "confirmed"  # WeCom reported the outcome for this customer (see `result`)
    failed = "failed"
    skipped = "skipped"  # `reason` says why
    unknown = "unknown"  # its chunk's call was interrupted: reconciled against get_groupmsg_list_v2


class SendStatus(str, enum.Enum):
    """Where one WeCom call (one staff member's chunk of a run) stands."""

    planned = "planned"
    claimed = "claimed"  # a worker holds it until `lease_until`; the call may be under way
    submitted = "submitted"  # msgid known; results are polled
    unknown = "unknown"  # the call was interrupted: checked against get_groupmsg_list_v2 before any retry
    failed = "failed"  # WeCom refused it: nothing went out
    done = "done"  # results settled (or nothing left to send)
    cancelled = "cancelled"


class Result(str, enum.Enum):
    """What WeCom says became of one customer's message."""

    delivered = "delivered"
    not_confirmed = "not_confirmed"  # the staff member never confirmed the mass message
    quota_reached = "quota_reached"  # the customer had this month's mass messages already (status 3)
    not_friend = "not_friend"  # status 2


class Campaign(Base):
    """A campaign spec (CONTRACT §5) and its state."""

    __tablename__ = "campaigns"
    __table_args__ = (CheckConstraint(_check(CampaignStatus), name="status"),
                      CheckConstraint("schedule_kind IN ('manual', 'at', 'cron', 'trigger')", name="schedule_kind"))

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    spec: Mapped[dict] = mapped_column(JSONType)
    # RESTRICT: a segment a campaign uses is not deleted (segments answers 409 first through its usage hook).
    segment_id: Mapped[int | None] = mapped_column(ForeignKey("segments.id", ondelete="RESTRICT"), index=True)
    schedule_kind: Mapped[str] = mapped_column(String(10))
    action_type: Mapped[str] = mapped_column(String(30))
    trigger_event: Mapped[str | None] = mapped_column(String(40), index=True)
    status: Mapped[str] = mapped_column(String(20), default=CampaignStatus.draft.value)
    resume_to: Mapped[str | None] = mapped_column(String(20))  # the status a paused campaign resumes to
    launched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    fired_through: Mapped[datetime | None] = mapped_column(UTCDateTime)  # occurrences up to here are recorded
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class CampaignRun(Base):
    """One firing of a campaign, unique per campaign under a deterministic key (`manual`, `at:…`, `cron:…`,
    `entry:<id>`): a repeated launch or tick finds it written."""

    __tablename__ = "campaign_runs"
    __table_args__ = (UniqueConstraint("campaign_id", "key"), CheckConstraint(_check(RunStatus), name="status"))

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    key: Mapped[str] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(20), default=RunStatus.sending.value)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    member_id: Mapped[int | None] = mapped_column(BigId)  # a trigger run's one member
    planned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the ledger is written
    planned_through: Mapped[int | None] = mapped_column(BigId)  # planning's cursor: members up to here are in
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CampaignSend(Base):
    """One call: a run's chunk of one staff member's customers (add_msg_template), its msgid and fail_list; or, for
    the actions Tencent takes one member per call (oa_template, mp_subscribe), one member's message and its msgid."""

    __tablename__ = "campaign_sends"
    __table_args__ = (UniqueConstraint("run_id", "staff_id", "chunk"),
                      CheckConstraint(_check(SendStatus), name="status"),
                      Index("ix_campaign_sends_run_status", "run_id", "status"),
                      # Sends of members without an owning staff member (OA, MP actions): unique per run too.
                      Index("uq_campaign_sends_run_chunk_unowned", "run_id", "chunk", unique=True,
                            postgresql_where=text("staff_id IS NULL"), sqlite_where=text("staff_id IS NULL")))

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("campaign_runs.id"))
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), index=True)  # None: an OA/MP send, unowned
    chunk: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(20), default=SendStatus.planned.value)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempt: Mapped[int] = mapped_column(Integer, default=0)  # fencing token of the current claim
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    recipients: Mapped[list | None] = mapped_column(JSONType)  # external_userid sent in the call
    msgid: Mapped[str | None] = mapped_column(String(64), unique=True)
    fail_list: Mapped[list | None] = mapped_column(JSONType)
    error: Mapped[str | None] = mapped_column(ErrorText)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the staff member sent it
    next_poll_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reminded: Mapped[list | None] = mapped_column(JSONType)  # ISO instants of remind_groupmsg_send calls
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CampaignStep(Base):
    """The ledger: one row per (run, member, step), written before any side effect, under a deterministic key."""

    __tablename__ = "campaign_steps"
    __table_args__ = (
        CheckConstraint(_check(StepStatus), name="status"),
        Index("ix_campaign_steps_run_status", "run_id", "status"),
        Index("ix_campaign_steps_member_contacted", "member_id", "contacted_at"),
        Index("ix_campaign_steps_campaign_status", "campaign_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key: Mapped[str] = mapped_column(String(120), unique=True)  # run:<run>:member:<member>:<step>
    run_id: Mapped[int] = mapped_column(ForeignKey("campaign_runs.id"))
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"))
    member_id: Mapped[int] = mapped_column(BigId, ForeignKey("members.id"))
    step: Mapped[str] = mapped_column(String(30))
    status: Mapped[str] = mapped_column(String(20), default=StepStatus.planned.value)
    reason: Mapped[str | None] = mapped_column(String(40))  # why skipped or failed
    result: Mapped[str | None] = mapped_column(String(20))
    staff_id: Mapped[int | None] = mapped_column(Integer)  # the owning staff member who sends it
    store_id: Mapped[int | None] = mapped_column(Integer)
    external_userid: Mapped[str | None] = mapped_column(String(128))  # the address: OA/MP actions put the openid here
    send_id: Mapped[int | None] = mapped_column(ForeignKey("campaign_sends.id"), index=True)
    quota_month: Mapped[str | None] = mapped_column(String(6))  # set while a quota reservation is held
    contacted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # counts for the frequency cap
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class MassQuota(Base):
    """WeCom's per-customer mass messages in one natural month (SIYU_TIMEZONE): reservations never pass the quota."""

    __tablename__ = "campaign_mass_quota"
    __table_args__ = (CheckConstraint("used >= 0 AND used <= quota", name="within_quota"),)

    member_id: Mapped[int] = mapped_column(BigId, ForeignKey("members.id"), primary_key=True)
    month: Mapped[str] = mapped_column(String(6), primary_key=True)  # YYYYMM
    quota: Mapped[int] = mapped_column(Integer)
    used: Mapped[int] = mapped_column(Integer, default=0)


class TriggerEntry(Base):
    """A member entering a trigger campaign through a timeline event: once per campaign (or per event with
    re-entry), and sent `delay_minutes` later."""

    __tablename__ = "campaign_trigger_entries"
    __table_args__ = (UniqueConstraint("campaign_id", "entry_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"))
    member_id: Mapped[int] = mapped_column(BigId, ForeignKey("members.id"))
    event_id: Mapped[int] = mapped_column(BigId)
    entry_key: Mapped[str] = mapped_column(String(40))  # member:<id>, or event:<id> when re-entry is allowed
    due_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    run_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
