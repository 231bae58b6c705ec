"""A transfer's final word, from whichever comes first: the poll of transfer_result or WeCom's callbacks.

Each open row moves once (a conditional UPDATE … RETURNING decides who moves it), and its effects are
written under keys of the row: the old relation ends as `transferred` with `contact.transferred`, the
takeover's relation starts (`contact.added`, unless the callback for it came first), or the customer gets
`contact.transfer_failed`. A poll repeated, or a callback that arrives after the poll, finds nothing open.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from webhooks.transfers.models import OPEN, Transfer, TransferStatus
from config.types import utcnow
from membership.identity import live_member
from membership.models import Relation, RelationStatus
from membership.service import add_relation, end_relation, ensure_staff, find_staff, lock_contact
from membership.timeline import record_event

log = logging.getLogger(__name__)

# transfer_fail's FailReason -> the row's status and the transfer_result status it stands for
FAIL_REASONS = {"customer_refused": (TransferStatus.refused, 3), "customer_limit_exceed": (TransferStatus.failed, 4)}
CALLBACK_WINDOW = timedelta(days=2)  # a transfer_fail is about a handover begun at most this long before it


def settle(session: Session, transfer_id: int, status: TransferStatus, *, errcode: int | None = None,
           reason: str | None = None, takeover_status: int | None = None, customer_level: bool = False,
           at: datetime | None = None, now: datetime | None = None) -> Transfer | None:
    """Close an open transfer with `status` and write its effects; None when it was not open any more.

    `customer_level`: the outcome is the customer's own (their errcode, a refusal, a full takeover), which
    their timeline shows as `contact.transfer_failed`; a refused call or a missing record does not.
    """
    moved = session.execute(
        update(Transfer).where(Transfer.id == transfer_id, Transfer.status.in_(OPEN))
        .values(status=status.value, settled_at=now or utcnow(),
                **{k: v for k, v in (("errcode", errcode), ("reason", reason), ("takeover_status", takeover_status),
                                     ("takeover_at", at if status is TransferStatus.succeeded else None))
                   if v is not None})
        .returning(Transfer.id)
    ).scalar()
    if moved is None:
        return None
    row = session.scalar(select(Transfer).where(Transfer.id == moved).execution_options(populate_existing=True))
    log.info("transfer %s: %s → %s %s", row.id, row.handover_userid, row.takeover_userid, status.value)
    if status is TransferStatus.succeeded:
        _move_relation(session, row, at or utcnow())
    elif customer_level:
        _record_failure(session, row, at or utcnow())
    return row


def wait(session: Session, transfer_id: int, *, takeover_at: datetime | None) -> bool:
    """WeCom says the handover is pending (status 2): an unknown row learns it started; True when open."""
    values = {"status": TransferStatus.waiting.value, "takeover_status": 2}
    if takeover_at is not None:
        values["takeover_at"] = takeover_at
    moved = session.execute(update(Transfer).where(Transfer.id == transfer_id, Transfer.status.in_(OPEN))
                            .values(**values).returning(Transfer.id)).scalar()
    return moved is not None


def _event_data(row: Transfer) -> dict:
    return {"from": row.handover_userid, "to": row.takeover_userid, "resigned": row.resigned, "transfer_id": row.id}


def _move_relation(session: Session, row: Transfer, at: datetime) -> None:
    lock_contact(session, row.external_userid)
    member = live_member(session, row.member_id)
    if member is None:
        return
    handover, takeover = find_staff(session, row.handover_userid), ensure_staff(session, row.takeover_userid)
    old = session.scalar(select(Relation).where(Relation.staff_id == handover.id, Relation.member_id == member.id)) \
        if handover is not None else None
    if old is not None:
        end_relation(session, staff=handover, member_id=member.id, status=RelationStatus.transferred, at=at,
                     dedupe_key=f"transfer:{row.id}:transferred", data=_event_data(row))
    # The customer came in through the old relation's code: the takeover's relation keeps that attribution.
    add_relation(session, staff=takeover, member_id=member.id, state=old.state if old else None,
                 channel_code_id=old.channel_code_id if old else None, added_at=at,
                 dedupe_key=f"transfer:{row.id}:added")


def _record_failure(session: Session, row: Transfer, at: datetime) -> None:
    member = live_member(session, row.member_id)
    if member is None:
        return
    record_event(session, member.id, "contact.transfer_failed",
                 {"staff": row.takeover_userid, **_event_data(row), "reason": row.reason, "errcode": row.errcode},
                 at=at, dedupe_key=f"transfer:{row.id}:failed")


# -- WeCom's callbacks ------------------------------------------------------------------------------------------
def transferred_by_callback(session: Session, *, handover_userid: str, external_userid: str, at: datetime) -> bool:
    """del_external_contact with DELETE_BY_TRANSFER: settles Siyu's open handover of it; False when there is none."""
    row = session.scalar(select(Transfer.id).where(Transfer.handover_userid == handover_userid,
                                                   Transfer.external_userid == external_userid,
                                                   Transfer.status.in_(OPEN)))
    if row is None:
        return False
    settle(session, row, TransferStatus.succeeded, takeover_status=1, at=at)
    return True


def failed_by_callback(session: Session, *, takeover_userid: str, external_userid: str, reason: str,
                       at: datetime) -> bool:
    """transfer_fail (UserID is the takeover): settles Siyu's handover it is about; False when Siyu made none.

    A handover already settled (the poll saw the refusal first) is the same fact: True, and nothing is written.
    """
    row = session.scalar(
        select(Transfer).where(Transfer.takeover_userid == takeover_userid,
                               Transfer.external_userid == external_userid,
                               Transfer.requested_at >= at - CALLBACK_WINDOW)
        .order_by(Transfer.id.desc()).limit(1))
    if row is None:
        return False
    if row.status in OPEN:
        status, takeover_status = FAIL_REASONS.get(reason, (TransferStatus.failed, None))
        settle(session, row.id, status, reason=reason or "transfer_fail", takeover_status=takeover_status,
               customer_level=True, at=at)
    return True
