"""Polling transfer_result for every handover WeCom may still be carrying out, and settling what it says.

Waiting rows learn their outcome; `unknown` rows (a call without an answer) are reconciled: WeCom's record
says whether the handover began, and a call WeCom has no record of is failed, never made again.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import clients
from bot.errors import WeChatAPIError
from webhooks.transfers import service, settle
from webhooks.transfers.service import as_int
from webhooks.transfers.models import Transfer, TransferStatus
from config.database import session_scope
from config.types import utcnow

log = logging.getLogger(__name__)

STALE_CLAIM = timedelta(minutes=10)  # a `requested` row this old lost its request mid-call: unknown
UNKNOWN_GRACE = timedelta(minutes=5)  # an unknown call WeCom carried out is in transfer_result by then
LOST_AFTER = timedelta(days=1)  # a waiting handover still unlisted this long after its takeover time: lost
CLOCK_SKEW = timedelta(minutes=5)  # a takeover this much before the claim is an earlier handover's record

# transfer_result status -> (row status, reason); 2 (等待接替) keeps the row waiting
FINAL = {
    1: (TransferStatus.succeeded, None),
    3: (TransferStatus.refused, "customer_refused"),  # 客户拒绝
    4: (TransferStatus.failed, "customer_limit_exceed"),  # 接替成员客户达到上限
    5: (TransferStatus.failed, "no handover record"),  # 无接替记录
}


@dataclass
class PollReport:
    pairs: int = 0
    settled: int = 0
    waiting: int = 0
    errors: int = 0


def poll_transfers(*, now: datetime | None = None) -> PollReport:
    """Ask WeCom about every open handover pair and settle what it answers (safe to run at any time, twice)."""
    now = now or utcnow()
    report = PollReport()
    with session_scope() as session:
        service.mark_stale_requests(session, before=now - STALE_CLAIM)
        pairs = service.open_pairs(session)
    client = clients.wecom_client()
    for handover, takeover, resigned in pairs:
        report.pairs += 1
        try:
            records = {str(r.get("external_userid")): r
                       for r in client.iter_transfer_results(handover, takeover, resigned=resigned)}
        except WeChatAPIError as exc:  # read-only: the next poll asks again
            log.warning("transfer %s → %s: transfer_result failed: %s", handover, takeover, exc)
            report.errors += 1
            continue
        with session_scope() as session:
            reconcile(session, handover, takeover, resigned, records, now=now, report=report)
    return report


def reconcile(session: Session, handover: str, takeover: str, resigned: bool, records: dict[str, dict], *,
              now: datetime, report: PollReport | None = None) -> None:
    """Apply transfer_result's records (external_userid → record) to the pair's waiting and unknown rows."""
    report = report or PollReport()
    rows = session.scalars(select(Transfer).where(
        Transfer.handover_userid == handover, Transfer.takeover_userid == takeover, Transfer.resigned == resigned,
        Transfer.status.in_((TransferStatus.waiting.value, TransferStatus.unknown.value))).order_by(Transfer.id))
    for row in list(rows):
        record = records.get(row.external_userid)
        if record is not None and _earlier_handover(record, row):
            record = None
        if record is None:
            reason = _missing(row, now)
            if reason and settle.settle(session, row.id, TransferStatus.failed, reason=reason, now=now) is not None:
                report.settled += 1
            continue
        code, when = as_int(record.get("status")), _time(record.get("takeover_time"))
        if code == 2:
            settle.wait(session, row.id, takeover_at=when)
            report.waiting += 1
            continue
        status, reason = FINAL.get(code, (TransferStatus.failed, f"transfer_result status {code}"))
        if settle.settle(session, row.id, status, reason=reason, takeover_status=code, at=when or now, now=now,
                         customer_level=code in (3, 4)) is not None:
            report.settled += 1


def _missing(row: Transfer, now: datetime) -> str | None:
    # Why a row transfer_result does not list is failed now; None while it may yet appear there.
    if row.status == TransferStatus.unknown.value and (row.sent_at or row.requested_at) < now - UNKNOWN_GRACE:
        return "WeCom has no record of this handover: the call was not carried out"
    if row.status == TransferStatus.waiting.value and row.takeover_at and row.takeover_at < now - LOST_AFTER:
        return "WeCom has no record of this handover a day after it was due"  # else it is polled for ever
    return None


def _earlier_handover(record: dict, row: Transfer) -> bool:
    # WeCom lists the latest handover of each customer between the two; a takeover before this claim was made
    # belongs to an earlier one (an unknown call that never arrived must not borrow its success).
    when = _time(record.get("takeover_time"))
    return as_int(record.get("status")) == 1 and when is not None and when < row.requested_at - CLOCK_SKEW


def _time(value) -> datetime | None:
    seconds = as_int(value)
    try:
        return datetime.fromtimestamp(seconds, timezone.utc) if seconds else None
    except (OverflowError, OSError, ValueError):  # not a time Siyu can store: as if WeCom had given none
        return None

