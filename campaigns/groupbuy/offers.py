"""Offers: created by admins and marketers, read with their groups and the staff credited through `ref`."""
from __future__ import annotations

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from config.errors import InvalidInput, NotFound
from config.types import utcnow
from campaigns.groupbuy import groups
from campaigns.groupbuy.models import Group, GroupStatus, Offer, Order, OrderStatus
from campaigns.groupbuy.schemas import (AdminOfferOut, ConsumerOfferOut, GroupOut, OfferIn, OfferOut, OfferStats,
                                        OrderGroup, OrderOut, StaffCredit)
from membership import service as members
from membership.models import Staff, Store

OPEN_GROUPS_SHOWN = 50


def create_offer(session: Session, *, body: OfferIn) -> Offer:
    """A new offer; InvalidInput naming the first store code that does not exist."""
    for code in body.stores:
        try:
            members.get_store_by_code(session, code)
        except NotFound:
            raise InvalidInput(f"stores: no store {code!r}") from None
    offer = Offer(name=body.name, price_fen=body.price_fen, original_price_fen=body.original_price_fen,
                  group_size=body.group_size, time_limit_minutes=body.time_limit_minutes, stock=body.stock,
                  stock_taken=0, starts_at=body.starts_at, ends_at=body.ends_at,
                  stores=list(dict.fromkeys(body.stores)), created_at=utcnow())
    session.add(offer)
    session.flush()
    return offer


def get_offer(session: Session, offer_id: int) -> Offer:
    """The offer, or NotFound."""
    offer = session.get(Offer, offer_id)
    if offer is None:
        raise NotFound(f"offer {offer_id} not found")
    return offer


def _out(offer: Offer) -> dict:
    return {"id": offer.id, "name": offer.name, "price_fen": offer.price_fen,
            "original_price_fen": offer.original_price_fen, "group_size": offer.group_size,
            "time_limit_minutes": offer.time_limit_minutes, "stock": offer.stock,
            "remaining": offer.stock - offer.stock_taken, "starts_at": offer.starts_at, "ends_at": offer.ends_at,
            "stores": list(offer.stores or [])}


def offer_out(offer: Offer) -> OfferOut:
    """The offer as both APIs show it."""
    return OfferOut(**_out(offer))


def admin_view(session: Session, offer_id: int) -> AdminOfferOut:
    """The offer with its groups and orders by status and the credit of each inviting staff member."""
    offer = get_offer(session, offer_id)
    orders = dict(session.execute(select(Order.status, func.count()).where(Order.offer_id == offer_id)
                                  .group_by(Order.status)).all())
    kept = Order.status == OrderStatus.paid.value
    credit = session.execute(
        select(Staff.userid, func.count(), func.sum(case((kept, 1), else_=0)),
               func.sum(case((kept, Order.amount_fen), else_=0)))
        .join(Staff, Staff.id == Order.staff_id).where(Order.offer_id == offer_id).group_by(Staff.userid)).all()
    stats = OfferStats(groups=groups.counts(session, offer_id),
                       orders={s.value: 0 for s in OrderStatus} | orders,
                       by_staff={u: StaffCredit(orders=n, paid=int(p or 0), paid_fen=int(f or 0))
                                 for u, n, p, f in credit})
    return AdminOfferOut(**_out(offer), stats=stats)


def consumer_view(session: Session, offer_id: int, store: str | None = None) -> ConsumerOfferOut:
    """The offer with its open groups that still have a free seat (of one store's, when `store` is given)."""
    offer = get_offer(session, offer_id)
    q = select(Group, Store.code).outerjoin(Store, Store.id == Group.store_id).where(
        Group.offer_id == offer_id, Group.status == GroupStatus.open.value, Group.seats < Group.size,
        Group.expires_at > utcnow())
    if store is not None:
        q = q.where(Store.code == store)
    rows = session.execute(q.order_by(Group.expires_at, Group.id).limit(OPEN_GROUPS_SHOWN))
    return ConsumerOfferOut(**_out(offer), groups=[
        GroupOut(id=g.id, store=code, status=g.status, size=g.size, seats=g.seats, paid=g.paid,
                 expires_at=g.expires_at) for g, code in rows])


def order_view(session: Session, *, out_trade_no: str, member_id: int) -> OrderOut:
    """An order and its group, for the member who holds it; NotFound for anyone else."""
    order = session.scalar(select(Order).where(Order.out_trade_no == out_trade_no))
    if order is None or order.member_id != member_id:
        raise NotFound(f"order {out_trade_no[:40]!r} not found")
    group = session.get(Group, order.group_id)
    return OrderOut(out_trade_no=order.out_trade_no, status=order.status, amount_fen=order.amount_fen,
                    group=OrderGroup(id=group.id, status=group.status, size=group.size, paid=group.paid))


def orders_of_member(session: Session, member_id: int) -> list[dict]:
    """A member's group-buy orders for their card, newest first (released seats left out)."""
    rows = session.execute(
        select(Order, Group.status).join(Group, Group.id == Order.group_id)
        .where(Order.member_id == member_id, Order.status != OrderStatus.released.value)
        .order_by(Order.id.desc()).limit(50)).all()
    return [{"kind": "groupbuy", "out_trade_no": o.out_trade_no, "offer_id": o.offer_id, "status": o.status,
             "amount_fen": o.amount_fen, "group": {"id": o.group_id, "status": group_status}}
            for o, group_status in rows]


def move_member(session: Session, survivor_id: int, merged_id: int) -> None:
    """After a merge the survivor holds the merged member's orders.

    A seat of a group the survivor holds a live seat in too stays with the merged record (one live seat per
    member and group is a unique index; the merged record's pointer still leads to the person).
    """
    live = (OrderStatus.pending.value, OrderStatus.paid.value)
    clash = select(Order.group_id).where(Order.member_id == survivor_id, Order.status.in_(live))
    session.execute(update(Order).where(Order.member_id == merged_id)
                    .where(~(Order.status.in_(live) & Order.group_id.in_(clash)))
                    .values(member_id=survivor_id))
