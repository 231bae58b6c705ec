"""Claiming transfers and recording WeCom's answers to them: plain functions over a session, never committing."""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from webhooks.transfers import settle
from webhooks.transfers.models import OPEN, Transfer, TransferStatus
from config.types import utcnow
from membership.exceptions import Forbidden, InvalidInput
from membership.models import Identity, IdentityType, Relation, RelationStatus, Staff
from membership.service import find_staff, get_staff

TAKEOVER_AFTER = timedelta(hours=24)  # "待24小时后自动接替"
MAX_MESSAGE = 200  # transfer_success_msg: "最多200个字符"


@dataclass
class Claim:
    """What one request claimed: the rows it wrote (to be sent) and those already open (not sent again)."""

    batch: str
    handover: str
    takeover: str
    resigned: bool
    new_ids: list[int] = field(default_factory=list)
    rows: list[Transfer] = field(default_factory=list)  # in the order the customers were asked for


def claim_transfers(
    session: Session, *, handover_userid: str, takeover_userid: str, external_userids: list[str] | None = None,
    resigned: bool | None = None, message: str | None = None, within_store: int | None = None,
    requested_by: str = "", now: datetime | None = None,
) -> Claim:
    """Write a `requested` row per customer to hand over (all their active customers by default).

    A customer already in an open handover from this staff member keeps that row and is not claimed again.
    `within_store` (a store manager's store): both staff members must work there, Forbidden otherwise.
    `resigned` None: 离职继承 when Siyu knows the handover staff member as inactive, 在职继承 otherwise.
    """
    handover = staff_in_scope(session, handover_userid, within_store)
    takeover = _takeover(session, handover, takeover_userid)
    if within_store is not None and takeover.store_id != within_store:
        raise Forbidden(f"to: {takeover_userid!r} works in another store (or none)")
    resigned = (not handover.active) if resigned is None else resigned
    if message is not None and (resigned or len(message) > MAX_MESSAGE):
        raise InvalidInput(f"transfer_success_msg: at most {MAX_MESSAGE} characters, and for 在职继承 only")
    customers = _customers(session, handover, external_userids)
    claim = Claim(secrets.token_hex(16), handover.userid, takeover.userid, resigned)
    at = now or utcnow()
    for ext, member_id in customers:
        row = Transfer(batch=claim.batch, handover_userid=handover.userid, takeover_userid=takeover.userid,
                       external_userid=ext, member_id=member_id, resigned=resigned, message=message,
                       status=TransferStatus.requested.value, requested_by=requested_by[:120], requested_at=at)
        try:
            with session.begin_nested():
                session.add(row)
                session.flush()
            claim.new_ids.append(row.id)
        except IntegrityError:  # open already (perhaps claimed concurrently): that row answers for the customer
            row = open_transfer(session, handover.userid, ext)
            if row is None:  # some other constraint refused the row
                raise
        claim.rows.append(row)
    return claim


def staff_in_scope(session: Session, userid: str, within_store: int | None) -> Staff:
    """The staff member (NotFound otherwise); with `within_store`, Forbidden unless they work in that store."""
    staff = get_staff(session, userid)
    if within_store is not None and staff.store_id != within_store:
        raise Forbidden(f"staff {userid!r} works in another store (or none)")
    return staff


def _takeover(session: Session, handover: Staff, takeover_userid: str) -> Staff:
    takeover = find_staff(session, takeover_userid)
    if takeover is None or not takeover.active:
        raise InvalidInput(f"to: {takeover_userid!r} is not an active staff member")
    if takeover.id == handover.id:
        raise InvalidInput("to: a staff member cannot take over their own customers")
    return takeover


def _customers(session: Session, handover: Staff, wanted: list[str] | None) -> list[tuple[str, int]]:
    # (external_userid, member id) of the handover's active customers, in the order asked for.
    q = (select(Identity.value, Identity.member_id)
         .join(Relation, Relation.member_id == Identity.member_id)
         .where(Identity.type == IdentityType.wecom_external.value, Relation.staff_id == handover.id,
                Relation.status == RelationStatus.active.value))
    if wanted is None:
        return [(ext, member_id) for ext, member_id in session.execute(q.order_by(Identity.id))]
    wanted = list(dict.fromkeys(wanted))
    found: dict[str, int] = {}
    for start in range(0, len(wanted), 500):
        rows = session.execute(q.where(Identity.value.in_(wanted[start:start + 500])))
        found.update((ext, member_id) for ext, member_id in rows)
    if missing := [ext for ext in wanted if ext not in found]:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise InvalidInput(f"customers: {', '.join(missing[:5])}{more} are not active customers of "
                           f"{handover.userid!r} (siyu sync wecom brings Siyu up to date)")
    return [(ext, found[ext]) for ext in wanted]


def open_transfer(session: Session, handover_userid: str, external_userid: str) -> Transfer | None:
    """The open handover of this customer from this staff member, if there is one."""
    return session.scalar(select(Transfer).where(Transfer.handover_userid == handover_userid,
                                                 Transfer.external_userid == external_userid,
                                                 Transfer.status.in_(OPEN)))


# -- WeCom's answer to transfer_customer ------------------------------------------------------------------
def record_answer(session: Session, transfer_id: int, errcode: int | None, *, now: datetime | None = None) -> None:
    """One customer's `customer[].errcode`: 0 starts the 24-hour handover; anything else fails this customer."""
    at = now or utcnow()
    if errcode == 0:
        session.execute(update(Transfer).where(Transfer.id == transfer_id,
                                               Transfer.status == TransferStatus.requested.value)
                        .values(status=TransferStatus.waiting.value, errcode=0, sent_at=at,
                                takeover_at=at + TAKEOVER_AFTER))
        return
    settle.settle(session, transfer_id, TransferStatus.failed, errcode=errcode, reason=f"errcode {errcode}",
                  customer_level=True, at=at, now=at)


def record_call_failure(session: Session, transfer_ids: list[int], errcode: int | None, reason: str, *,
                        now: datetime | None = None) -> None:
    """WeCom refused the whole call (its errcode): nothing was handed over, so each row fails."""
    for transfer_id in transfer_ids:
        settle.settle(session, transfer_id, TransferStatus.failed, errcode=errcode, reason=reason, now=now)


def record_unknown(session: Session, transfer_ids: list[int], reason: str, *, now: datetime | None = None) -> None:
    """The call's outcome is not known: the rows wait for transfer_result, and are never sent again."""
    session.execute(update(Transfer).where(Transfer.id.in_(transfer_ids),
                                           Transfer.status == TransferStatus.requested.value)
                    .values(status=TransferStatus.unknown.value, reason=reason, sent_at=now or utcnow()))


def mark_stale_requests(session: Session, *, before: datetime) -> int:
    """Claims older than `before` without an answer: the process died around the call, so the outcome is unknown."""
    result = session.execute(update(Transfer).where(Transfer.status == TransferStatus.requested.value,
                                                    Transfer.requested_at < before)
                             .values(status=TransferStatus.unknown.value,
                                     reason="no answer recorded: the request ended while making the call"))
    return result.rowcount or 0


def as_int(value) -> int | None:
    """An errcode or status from a WeCom answer as an int; None when it is not one."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# -- reading ------------------------------------------------------------------------------------------------
def transfers_of(session: Session, handover_userid: str, *, status: str | None = None, before_id: int | None = None,
                 limit: int = 50) -> list[Transfer]:
    """A staff member's handovers, newest first, from `before_id` down (a keyset page)."""
    q = select(Transfer).where(Transfer.handover_userid == handover_userid)
    if status is not None:
        q = q.where(Transfer.status == status)
    if before_id is not None:
        q = q.where(Transfer.id < before_id)
    return list(session.scalars(q.order_by(Transfer.id.desc()).limit(limit)))


def open_pairs(session: Session) -> list[tuple[str, str, bool]]:
    """(handover, takeover, resigned) of every pair with a handover WeCom may still be carrying out."""
    q = (select(Transfer.handover_userid, Transfer.takeover_userid, Transfer.resigned)
         .where(Transfer.status.in_((TransferStatus.waiting.value, TransferStatus.unknown.value)))
         .group_by(Transfer.handover_userid, Transfer.takeover_userid, Transfer.resigned)
         .order_by(func.min(Transfer.id)))
    return [tuple(r) for r in session.execute(q)]
