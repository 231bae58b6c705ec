"""拼团: offers (created by admins and marketers), an offer's groups, orders and refunds with their state.

Admins and marketers see everything, with the API's stats (GET /api/v1/groupbuy/offers/{id}); a store manager
sees the offers and, of their groups, orders and refunds, only those of their store's members (the members the
API lets them see); staff see none of it.
"""
from __future__ import annotations

from decimal import Decimal, InvalidOperation

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.groupbuy import offers
from campaigns.groupbuy.models import Group, Offer, Order, Refund
from campaigns.groupbuy.schemas import OfferIn
from config.database import request_session
from config.errors import InvalidInput
from config.inputs import DbId
from config.pagination import decode_cursor, page_of
from console.web import PREFIX, console_router, is_htmx, local_input, poster, render, viewer_of
from membership import service as members
from membership.access import Principal, visible_members
from membership.models import Member, Role, Staff

router = console_router()
reader = viewer_of(Role.marketer, Role.store_manager)
marketer = viewer_of(Role.marketer)
marketer_post = poster(Role.marketer)
PAGE = 20
GROUP_LABELS = {"open": "拼团中", "succeeded": "已成团", "failed": "未成团"}
ORDER_LABELS = {"pending": "待支付", "paid": "已支付", "refunding": "退款中", "refunded": "已退款",
                "released": "已释放"}
REFUND_LABELS = {"requested": "已申请", "unknown": "待核实", "processing": "处理中", "succeeded": "已退款",
                 "failed": "失败"}
LABELS = {"groups": GROUP_LABELS, "orders": ORDER_LABELS, "refunds": REFUND_LABELS}
FIELDS = ("name", "price_fen", "original_price_fen", "group_size", "time_limit_minutes", "stock", "starts_at",
          "ends_at", "stores")


def _after(q, column, cursor: str | None):
    after = decode_cursor(cursor)
    return q if after is None else q.where(column < after)


def _newest_page(session: Session, q, column, cursor: str | None):
    """A page of `q`, newest `column` first, after the cursor; the rows and the next cursor."""
    rows = session.execute(_after(q, column, cursor).order_by(column.desc()).limit(PAGE + 1)).all()
    return page_of(rows, PAGE, lambda r: r.id)


@router.get("/groupbuy")
def offer_list(request: Request, cursor: str | None = None, session: Session = request_session,
               who: Principal = Depends(reader)):
    """Every offer, newest first, a page at a time."""
    q = _after(select(Offer), Offer.id, cursor).order_by(Offer.id.desc()).limit(PAGE + 1)
    rows, next_cursor = page_of(list(session.scalars(q)), PAGE, lambda o: o.id)
    template = "groupbuy_rows.html" if is_htmx(request) and cursor else "groupbuy.html"
    return render(request, template, rows=rows, next_cursor=next_cursor, may_create=who.allows(Role.marketer))


def _form_page(request: Request, session: Session, form, errors: dict, status_code: int = 200):
    template = "groupbuy_form.html" if is_htmx(request) and errors else "groupbuy_new.html"
    return render(request, template, status_code=status_code, form=form, errors=errors,
                  stores=members.list_stores(session))


@router.get("/groupbuy/new")
def offer_new(request: Request, session: Session = request_session, who: Principal = Depends(marketer)):
    """The form of a new offer."""
    return _form_page(request, session, {"group_size": "3", "time_limit_minutes": "1440"}, {})


def _fen(raw: str, field: str) -> int:
    text = raw.strip().lstrip("¥￥")
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise InvalidInput(f"{field}: an amount in yuan such as 39.90, got {raw[:20]!r}") from None
    fen = amount * 100
    if fen != fen.to_integral_value():
        raise InvalidInput(f"{field}: at most two decimals (fen)")
    return int(fen)


def _body(form) -> OfferIn:
    body = {"name": form.get("name", "").strip(), "price_fen": _fen(form.get("price", ""), "price_fen"),
            "original_price_fen": _fen(form.get("original_price", ""), "original_price_fen"),
            "group_size": form.get("group_size", ""), "time_limit_minutes": form.get("time_limit_minutes", ""),
            "stock": form.get("stock", ""), "starts_at": local_input(form.get("starts_at", "")),
            "ends_at": local_input(form.get("ends_at", "")), "stores": form.getlist("stores")}
    return OfferIn.model_validate(body)


def _errors(exc: Exception) -> dict[str, str]:
    if isinstance(exc, InvalidInput):
        head = exc.detail.split(":", 1)[0]
        return {head if head in FIELDS else "_form": exc.detail}
    errors: dict[str, str] = {}
    for e in exc.errors():
        loc = [str(p) for p in e.get("loc", ())]
        msg = e["msg"].removeprefix("Value error, ")
        field = loc[0] if loc else next((f for f in FIELDS if msg.startswith(f)), "_form")
        errors.setdefault(field if field in FIELDS else "_form", f"{'.'.join(loc) + ': ' if loc else ''}{msg}")
    return errors


@router.post("/groupbuy")
def offer_create(request: Request, session: Session = request_session, who: Principal = Depends(marketer_post)):
    """Save the offer, or show the API's messages by their fields and save nothing."""
    form = request.state.form
    try:
        with session.begin_nested():
            offer = offers.create_offer(session, body=_body(form))
    except (InvalidInput, ValidationError) as exc:
        return _form_page(request, session, form, _errors(exc), 422)
    url = f"{PREFIX}/groupbuy/offers/{offer.id}"
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def _groups(session: Session, who: Principal, offer_id: int, status: str, cursor: str | None):
    if status and status not in GROUP_LABELS:
        raise InvalidInput(f"status: one of {', '.join(GROUP_LABELS)}")
    q = (select(Group.id, Group.status, Group.size, Group.seats, Group.paid, Group.expires_at, Group.closed_at,
                Member.name.label("leader")).join(Member, Member.id == Group.leader_member_id)
         .where(Group.offer_id == offer_id))
    if status:
        q = q.where(Group.status == status)
    if (mine := visible_members(who)) is not None:
        q = q.where(Group.id.in_(select(Order.group_id).where(Order.offer_id == offer_id, Order.member_id.in_(mine))))
    return _newest_page(session, q, Group.id, cursor)


def _orders(session: Session, who: Principal, offer_id: int, cursor: str | None):
    q = (select(Order.id, Order.out_trade_no, Order.group_id, Order.status, Order.amount_fen, Order.late,
                Order.created_at, Order.paid_at, Order.closed_at, Order.member_id, Member.name.label("member"),
                Staff.userid.label("ref")).join(Member, Member.id == Order.member_id)
         .outerjoin(Staff, Staff.id == Order.staff_id).where(Order.offer_id == offer_id))
    if (mine := visible_members(who)) is not None:
        q = q.where(Order.member_id.in_(mine))
    return _newest_page(session, q, Order.id, cursor)


def _refunds(session: Session, who: Principal, offer_id: int, cursor: str | None):
    q = (select(Refund.id, Refund.out_refund_no, Refund.out_trade_no, Refund.amount_fen, Refund.reason,
                Refund.status, Refund.attempts, Refund.error, Refund.created_at, Refund.settled_at,
                Member.name.label("member")).join(Order, Order.id == Refund.order_id)
         .join(Member, Member.id == Order.member_id).where(Order.offer_id == offer_id))
    if (mine := visible_members(who)) is not None:
        q = q.where(Order.member_id.in_(mine))
    return _newest_page(session, q, Refund.id, cursor)


@router.get("/groupbuy/offers/{offer_id}")
def offer_page(request: Request, offer_id: DbId, status: str = "", session: Session = request_session,
               who: Principal = Depends(reader)):
    """An offer: its stats (admins, marketers), groups with seats, orders and refunds, each paged by cursor."""
    offer = offers.get_offer(session, offer_id)
    stats = offers.admin_view(session, offer.id).stats if who.allows(Role.marketer) else None
    sections = {"groups": _groups(session, who, offer.id, status, None),
                "orders": _orders(session, who, offer.id, None), "refunds": _refunds(session, who, offer.id, None)}
    return render(request, "groupbuy_offer.html", offer=offer, stats=stats, sections=sections, status=status,
                  labels=LABELS, scoped=visible_members(who) is not None)


@router.get("/groupbuy/offers/{offer_id}/{section}")
def offer_section(request: Request, offer_id: DbId, section: str, status: str = "", cursor: str | None = None,
                  session: Session = request_session, who: Principal = Depends(reader)):
    """The next page of an offer's groups, orders or refunds (rows for htmx)."""
    offer = offers.get_offer(session, offer_id)
    if section == "groups":
        rows, next_cursor = _groups(session, who, offer.id, status, cursor)
    elif section == "orders":
        rows, next_cursor = _orders(session, who, offer.id, cursor)
    elif section == "refunds":
        rows, next_cursor = _refunds(session, who, offer.id, cursor)
    else:
        raise InvalidInput("section: groups, orders or refunds")
    return render(request, f"groupbuy_{section}_rows.html", offer=offer, rows=rows, next_cursor=next_cursor,
                  status=status, labels=LABELS)
