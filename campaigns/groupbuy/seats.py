"""Taking a seat (open a group, join one), holding it while unpaid, prepaying it, and releasing it.

A seat is taken by `UPDATE groupbuy_groups SET seats = seats + 1 WHERE seats < size AND status = 'open' AND
expires_at > now RETURNING …` and its stock by the same kind of UPDATE on the offer, in one transaction with the
order row; CHECK constraints back both counters. Nothing is read, decided and then written.
"""
from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.clients import pay_client
from bot.credentials import mp_credentials
from bot.errors import WeChatAPIError
from config.database import session_scope
from config.errors import Conflict, InvalidInput, NotFound, Upstream
from config.queue import enqueue
from config.settings import get_settings
from config.types import utcnow
from campaigns.groupbuy import groups
from campaigns.groupbuy.models import Group, GroupStatus, Offer, Order, OrderStatus
from membership import service as members
from membership import timeline
from membership.models import Identity, IdentityType, Staff, Store

log = logging.getLogger(__name__)

CHINA = timedelta(hours=8)


@dataclass(frozen=True)
class Seat:
    """A seat just taken: its group and its order."""

    group_id: int
    order_id: int
    out_trade_no: str
    amount_fen: int


def _openid(session: Session, member_id: int) -> str:
    members.get_member(session, member_id)
    openid = session.scalar(select(Identity.value).where(
        Identity.member_id == member_id, Identity.type == IdentityType.mp_openid.value,
        Identity.scope == mp_credentials(get_settings()).app_id).order_by(Identity.id).limit(1))
    if not openid:
        raise Conflict("this member has no mini-program openid: sign in (POST /mp/v1/session) first")
    return openid


def _staff(session: Session, ref: str | None) -> Staff | None:
    # A stale or mistyped invitation does not stop the purchase; it just credits nobody.
    return members.find_staff(session, ref) if ref else None


def _take_stock(session: Session, offer_id: int, now: datetime) -> None:
    # The offer row is every reservation's hot spot: taken last, so its lock is held only until the commit.
    taken = session.execute(
        update(Offer).where(Offer.id == offer_id, Offer.stock_taken < Offer.stock, Offer.starts_at <= now,
                            Offer.ends_at > now)
        .values(stock_taken=Offer.stock_taken + 1).returning(Offer.id)).first()
    if taken is None:  # raising rolls the seat and the order back with the rest of the transaction
        raise Conflict("this offer is sold out or not on sale now")


def _store_of(session: Session, offer: Offer, member_id: int, code: str | None) -> int | None:
    """The store a new group of `offer` buys in: the one named, else the member's own; InvalidInput unless it is
    one of the offer's `stores` (an offer naming no store is sold in every store, and in none in particular)."""
    sold_in = list(offer.stores or [])
    if code is not None:
        store = session.scalar(select(Store).where(Store.code == code))
        if store is None:
            raise InvalidInput(f"store: no store {code!r}")
    else:
        home = members.get_member(session, member_id).store_id
        store = session.get(Store, home) if home else None
    if not sold_in or (store is not None and store.code in sold_in):
        return store.id if store else None
    where = ", ".join(sold_in)
    if code is not None:
        raise InvalidInput(f"store: offer {offer.id} is sold in {where} only, not in {code!r}")
    if store is not None:
        raise InvalidInput(f"store: offer {offer.id} is sold in {where} only, not in your store {store.code!r}: "
                           "name one of them")
    raise InvalidInput(f"store: offer {offer.id} is sold in {where} only: name one of them")


def open_group(session: Session, *, offer_id: int, member_id: int, ref: str | None = None,
               store: str | None = None) -> Seat:
    """Open a new group of an offer with the member's seat in it, in one of the offer's stores (`store`, else the
    member's own); InvalidInput for a store the offer is not sold in, Conflict when it is sold out or closed."""
    now = utcnow()
    openid = _openid(session, member_id)
    offer = session.get(Offer, offer_id)
    if offer is None:
        raise NotFound(f"offer {offer_id} not found")
    store_id = _store_of(session, offer, member_id, store)
    group = Group(offer_id=offer_id, leader_member_id=member_id, store_id=store_id, size=offer.group_size, seats=1,
                  paid=0,
                  status=GroupStatus.open.value, expires_at=now + timedelta(minutes=offer.time_limit_minutes),
                  created_at=now)
    session.add(group)
    session.flush()
    seat = _order(session, group_id=group.id, offer_id=offer_id, member_id=member_id, openid=openid,
                  amount=offer.price_fen, group_ends=group.expires_at, staff=_staff(session, ref), now=now)
    _take_stock(session, offer_id, now)
    groups.schedule_deadline(session, group.id, group.expires_at)
    return seat


def join_group(session: Session, *, group_id: int, member_id: int, ref: str | None = None,
               store: str | None = None) -> Seat:
    """Take a seat in an open group, in the group's store; Conflict when it is full, closed, past its deadline, the
    offer is sold out, or `store` names another store than the group's."""
    now = utcnow()
    openid = _openid(session, member_id)
    if store is not None:
        group_store = session.execute(select(Store.code).select_from(Group).outerjoin(Store, Store.id == Group.store_id)
                                      .where(Group.id == group_id)).first()
        if group_store is not None and group_store.code not in (None, store):
            raise Conflict(f"this group buys in store {group_store.code}, not in {store!r}: open a group there")
    group = session.execute(
        update(Group).where(Group.id == group_id, Group.seats < Group.size, Group.status == GroupStatus.open.value,
                            Group.expires_at > now)
        .values(seats=Group.seats + 1).returning(Group.offer_id, Group.expires_at)).first()
    if group is None:
        if session.get(Group, group_id) is None:
            raise NotFound(f"group {group_id} not found")
        raise Conflict("this group is full or closed")
    price = session.scalar(select(Offer.price_fen).where(Offer.id == group.offer_id))
    seat = _order(session, group_id=group_id, offer_id=group.offer_id, member_id=member_id, openid=openid,
                  amount=price, group_ends=group.expires_at, staff=_staff(session, ref), now=now)
    _take_stock(session, group.offer_id, now)
    return seat


def _order(session: Session, *, group_id: int, offer_id: int, member_id: int, openid: str, amount: int,
           group_ends: datetime, staff: Staff | None, now: datetime) -> Seat:
    hold_until = min(now + timedelta(minutes=get_settings().groupbuy_hold_minutes), group_ends)
    order = Order(out_trade_no=new_trade_no(now), offer_id=offer_id, group_id=group_id, member_id=member_id,
                  staff_id=staff.id if staff else None, openid=openid, amount_fen=amount,
                  status=OrderStatus.pending.value, hold_until=hold_until, created_at=now)
    try:
        with session.begin_nested():
            session.add(order)
            session.flush()
    except IntegrityError:
        raise Conflict("you already hold a seat in this group") from None
    timeline.record_event(session, member_id, "groupbuy.joined", {
        "offer_id": offer_id, "group_id": group_id, "out_trade_no": order.out_trade_no,
        "staff": staff.userid if staff else None},
        at=now, dedupe_key=f"groupbuy:joined:{order.id}")
    enqueue(release_job, order.id, at=hold_until, job_id=f"groupbuy-hold-{order.id}", session=session)
    return Seat(group_id, order.id, order.out_trade_no, amount)


def new_trade_no(now: datetime) -> str:
    """A fresh out_trade_no (Pay allows 6-32 letters and digits): GB, the day, 20 random hex digits."""
    return f"GB{(now + CHINA):%Y%m%d}{secrets.token_hex(10).upper()}"


def prepay(session: Session, *, order_id: int) -> dict:
    """Prepay the order through Pay v3 JSAPI and answer what `wx.requestPayment` takes, as it takes it."""
    order = session.get(Order, order_id)
    offer = session.get(Offer, order.offer_id)
    appid = mp_credentials(get_settings()).app_id
    expire = (order.hold_until + CHINA).strftime("%Y-%m-%dT%H:%M:%S+08:00")
    client = pay_client()
    try:
        answer = client.jsapi_prepay(appid, offer.name[:127], order.out_trade_no, order.amount_fen, order.openid,
                                     f"{get_settings().public_url}webhooks/wechatpay", time_expire=expire)
    except WeChatAPIError as exc:
        log.warning("order %s: prepay failed: %s", order.out_trade_no, exc)
        raise Upstream(f"WeChat Pay did not take the order: {exc}") from None
    order.prepay_id = answer["prepay_id"]
    params = client.jsapi_pay_params(appid, answer["prepay_id"])
    return {k: params[k] for k in ("timeStamp", "nonceStr", "package", "signType", "paySign")}


def release_job(order_id: int) -> str:
    """At the end of a hold: release the seat if it is still unpaid; safe to run twice."""
    with session_scope() as session:
        return "released" if release(session, order_id=order_id) else "unchanged"


def release(session: Session, *, order_id: int, now: datetime | None = None, force: bool = False) -> bool:
    """Give an unpaid seat back (its hold ended, or its prepay failed); False when it was paid or released."""
    now = now or utcnow()
    group_id = session.scalar(select(Order.group_id).where(Order.id == order_id))
    if group_id is None:
        return False
    groups.lock(session, group_id)
    cond = [Order.id == order_id, Order.status == OrderStatus.pending.value]
    if not force:
        cond.append(Order.hold_until <= now)
    order = session.execute(update(Order).where(*cond).values(status=OrderStatus.released.value, closed_at=now)
                            .returning(Order.offer_id, Order.out_trade_no)).first()
    if order is None:
        return False
    session.execute(update(Group).where(Group.id == group_id, Group.status == GroupStatus.open.value)
                    .values(seats=Group.seats - 1))
    groups.return_stock(session, order.offer_id, 1)
    enqueue(groups.close_pay_order, order.out_trade_no, session=session, retries=1)
    log.info("order %s: hold released", order.out_trade_no)
    return True


def due(session: Session, limit: int = 500) -> list[int]:
    """Unpaid orders past their hold (their release job was lost)."""
    return list(session.scalars(select(Order.id).where(Order.status == OrderStatus.pending.value,
                                                       Order.hold_until <= utcnow())
                                .order_by(Order.id).limit(limit)))
