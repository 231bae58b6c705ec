"""/mp/v1/groupbuy: the consumer's side of group-buy — see an offer, open or join a group, pay, follow the order."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from psycopg.errors import DeadlockDetected
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from config.api_errors import ERROR_RESPONSES
from config.database import request_session
from config.errors import Conflict, Upstream
from config.inputs import MAX_DB_ID
from campaigns.groupbuy import offers, seats
from campaigns.groupbuy.schemas import ConsumerOfferOut, OrderOut, OrderPay, RefIn, SeatOut
from miniprogram_api.auth import current_member

SEAT_TRIES = 3


def _taking(session: Session, take):
    """Take a seat in a savepoint, again if PostgreSQL broke a deadlock between racing consumers by rolling this
    one back (nothing of it stayed); 409 "busy" if it keeps happening, never a 500."""
    for _ in range(SEAT_TRIES):
        try:
            with session.begin_nested():
                return take()
        except OperationalError as exc:
            if not isinstance(exc.orig, DeadlockDetected):
                raise
    raise Conflict("the group is busy: try again")


router = APIRouter(prefix="/mp/v1/groupbuy", tags=["mini-program"], responses=ERROR_RESPONSES)
Id = Annotated[int, Path(ge=1, le=MAX_DB_ID)]


@router.get("/offers/{offer_id}", response_model=ConsumerOfferOut)
def get_offer(offer_id: Id, store: str | None = Query(None, min_length=1, max_length=40),
              session: Session = request_session, _: int = Depends(current_member)):
    """An offer with its open groups that still have a free seat (with `store`, that store's groups only)."""
    return offers.consumer_view(session, offer_id, store)


@router.post("/offers/{offer_id}/groups", response_model=SeatOut, status_code=201)
def open_group(offer_id: Id, body: RefIn | None = None, session: Session = request_session,
               member_id: int = Depends(current_member)):
    """Open a group with the caller's seat in it, in `store` (default: the member's own store), which must be one of
    the offer's stores (422 otherwise); 409 when the offer is sold out or not on sale."""
    seat = _taking(session, lambda: seats.open_group(session, offer_id=offer_id, member_id=member_id,
                                                     ref=body.ref if body else None,
                                                     store=body.store if body else None))
    return _prepaid(session, seat)


@router.post("/groups/{group_id}/join", response_model=SeatOut, status_code=201)
def join_group(group_id: Id, body: RefIn | None = None, session: Session = request_session,
               member_id: int = Depends(current_member)):
    """Take a seat in a group (in the group's store); 409 when it is full, closed, the offer is out of stock, or
    `store` names another store than the group's."""
    seat = _taking(session, lambda: seats.join_group(session, group_id=group_id, member_id=member_id,
                                                     ref=body.ref if body else None,
                                                     store=body.store if body else None))
    return _prepaid(session, seat)


@router.get("/orders/{out_trade_no}", response_model=OrderOut)
def get_order(out_trade_no: str = Path(min_length=1, max_length=32), session: Session = request_session,
              member_id: int = Depends(current_member)):
    """The caller's order and its group; 404 for an order that is not theirs."""
    return offers.order_view(session, out_trade_no=out_trade_no, member_id=member_id)


def _prepaid(session: Session, seat: seats.Seat) -> SeatOut:
    # DESIGN 14: the seat and its order are stored (with the job that releases them) before Pay hears of it.
    session.commit()
    try:
        params = seats.prepay(session, order_id=seat.order_id)
    except Upstream:
        seats.release(session, order_id=seat.order_id, force=True)  # nobody can pay it: the seat goes back now
        session.commit()
        raise
    return SeatOut(group_id=seat.group_id, order=OrderPay(out_trade_no=seat.out_trade_no, amount_fen=seat.amount_fen,
                                                          pay_params=params))
