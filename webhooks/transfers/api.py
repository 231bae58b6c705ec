"""Admin API of transfers: hand a staff member's customers over, and read how the handovers went."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from sqlalchemy.orm import Session

from webhooks.transfers import sender, service
from webhooks.transfers.models import Transfer, TransferStatus
from webhooks.transfers.schemas import CustomerTransferOut, TransferIn, TransferOut, TransferPage, TransferRowOut
from config.api_errors import ERROR_RESPONSES
from config.database import request_session
from config.pagination import decode_cursor, page_of
from membership.access import Principal, require
from membership.models import Role

router = APIRouter(prefix="/api/v1", tags=["transfers"], responses=ERROR_RESPONSES)
UserId = Annotated[str, Path(min_length=1, max_length=64)]


def _own_store(who: Principal) -> int | None:
    return who.store_id if who.role is Role.store_manager else None


@router.post("/staff/{userid}/transfer", response_model=TransferOut, status_code=202,
             response_model_exclude_none=True)
def transfer_customers(userid: UserId, body: TransferIn, session: Session = request_session,
                       who: Principal = Depends(require(Role.store_manager))):
    """Hand a staff member's customers (all active ones by default) to another: 在职继承, or 离职继承 for one who left.

    202: WeCom has started (`waiting`) or refused (`failed`, with its errcode) each handover; the customer is
    taken over 24 hours later unless they refuse. GET …/transfers shows how it ends.
    Store managers hand over within their own store only.
    """
    claim = service.claim_transfers(
        session, handover_userid=userid, takeover_userid=body.to, external_userids=body.customers,
        resigned=body.resigned, message=body.transfer_success_msg, within_store=_own_store(who),
        requested_by=who.name)
    # DESIGN 14: the claims are stored before WeCom hears of them (a retry or a second request finds them open).
    session.commit()
    sender.send_claimed(claim.new_ids)
    session.expire_all()  # the sender recorded the answers in its own transactions
    return TransferOut(batch=claim.batch, handover=claim.handover, takeover=claim.takeover, resigned=claim.resigned,
                       customers=[_customer(row) for row in claim.rows])


@router.get("/staff/{userid}/transfers", response_model=TransferPage)
def list_transfers(userid: UserId, status: TransferStatus | None = None, cursor: str | None = None,
                   limit: int = Query(50, ge=1, le=500), session: Session = request_session,
                   who: Principal = Depends(require(Role.store_manager))):
    """A staff member's handovers, newest first, optionally of one status."""
    service.staff_in_scope(session, userid, _own_store(who))
    rows = service.transfers_of(session, userid, status=status.value if status else None,
                                before_id=decode_cursor(cursor), limit=limit + 1)
    page, next_cursor = page_of(rows, limit, lambda r: r.id)
    return TransferPage(items=[_row(r) for r in page], next_cursor=next_cursor)


def _customer(row: Transfer) -> CustomerTransferOut:
    return CustomerTransferOut(external_userid=row.external_userid, transfer_id=row.id, status=row.status,
                               errcode=row.errcode, reason=row.reason, takeover_at=row.takeover_at)


def _row(row: Transfer) -> TransferRowOut:
    return TransferRowOut(**_customer(row).model_dump(), batch=row.batch, handover=row.handover_userid,
                          takeover=row.takeover_userid, resigned=row.resigned, requested_at=row.requested_at,
                          settled_at=row.settled_at)
