"""Admin API of group-buy: offers, created by admins and marketers, read with their results."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Path
from sqlalchemy.orm import Session

from config.api_errors import ERROR_RESPONSES
from config.database import request_session
from config.inputs import MAX_DB_ID
from campaigns.groupbuy import offers
from campaigns.groupbuy.schemas import AdminOfferOut, OfferIn
from membership.access import Principal, require
from membership.models import Role

router = APIRouter(prefix="/api/v1/groupbuy", tags=["groupbuy"], responses=ERROR_RESPONSES)


@router.post("/offers", response_model=AdminOfferOut, status_code=201)
def create_offer(body: OfferIn, session: Session = request_session, _: Principal = Depends(require(Role.marketer))):
    """A group-buy offer: price, group size, how long a group stays open, seats in stock, the sale window."""
    offer = offers.create_offer(session, body=body)
    return offers.admin_view(session, offer.id)


@router.get("/offers/{offer_id}", response_model=AdminOfferOut)
def get_offer(offer_id: int = Path(ge=1, le=MAX_DB_ID), session: Session = request_session,
              _: Principal = Depends(require(Role.marketer))):
    """An offer with its groups and orders by status, and the staff credited through `ref`."""
    return offers.admin_view(session, offer_id)
