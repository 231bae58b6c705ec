"""`groupbuy_invite` and `booking_invite`: the mini-program page of an offer or a service, with the sending staff
member as `ref`, carried by the invite's `via` action — a mass message (a `miniprogram` attachment whose page
carries ref=<that chunk's staff userid>), a subscribe message (the page, with the member's owning staff member
as ref), or a staff task (when that action is built). A consumer who follows the page opens a group or books
with that `ref`, and the order or booking is credited to the staff member (CONTRACT §3).
"""
from __future__ import annotations

from dataclasses import replace
from types import ModuleType
from urllib.parse import urlencode

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.credentials import mp_credentials
from campaigns.bookings.models import BookableService, ServiceStore
from campaigns.claims import Work
from campaigns.groupbuy.models import Offer
from campaigns.models import Campaign, CampaignRun, CampaignSend
from config.database import session_scope
from config.errors import InvalidInput
from config.settings import get_settings
from membership.models import Store

GROUPBUY_PAGE = "pages/groupbuy/offer"  # ?id=<offer id>&ref=<userid>
BOOKING_PAGE = "pages/booking/service"  # ?service=<code>&store=<code>&ref=<userid>
CARD_TITLE_BYTES = 64


def page_of(action: dict, ref: str | None, *, html: bool = False) -> str:
    """The mini-program page an invite opens; WeCom wants the path with an .html suffix in a mass message."""
    if action["type"] == "groupbuy_invite":
        path, params = GROUPBUY_PAGE, {"id": action["offer_id"]}
    else:
        path, params = BOOKING_PAGE, {"service": action["service"], **({"store": action["store"]}
                                                                        if action.get("store") else {})}
    if ref:
        params["ref"] = ref
    return f"{path}{'.html' if html else ''}?{urlencode(params)}"


def _name(action: dict) -> str:
    with session_scope() as s:
        if action["type"] == "groupbuy_invite":
            return s.scalar(select(Offer.name).where(Offer.id == action["offer_id"])) or "拼团"
        return s.scalar(select(BookableService.name).where(BookableService.code == action["service"])) or "预约"


def _card_title(action: dict) -> str:
    title = action.get("title") or _name(action)
    while len(title.encode()) > CARD_TITLE_BYTES:
        title = title[:-1]
    return title


def expand(action: dict, userid: str | None) -> dict:
    """The `via` action that carries the invite, sent by `userid` (the ref)."""
    via = action["via"]
    if via == "wecom_mass_message":
        card = {"title": _card_title(action), "pic_media_id": action["pic_media_id"],
                "appid": mp_credentials(get_settings()).app_id, "page": page_of(action, userid, html=True)}
        return {"type": via, "text": action.get("text") or "", "attachments": [{"msgtype": "miniprogram",
                                                                                 "miniprogram": card}]}
    if via == "mp_subscribe":
        return {"type": via, "template_id": action["template_id"], "data": action["data"],
                "page": page_of(action, userid)}
    return {"type": via, "title": action["title"], "description": action.get("description") or "",
            "due_in_hours": action["due_in_hours"], "page": page_of(action, userid)}


class Invite:
    """An invite action: carried out by the module of its `via` in `channels` (the registry of actions)."""

    def __init__(self, channels: dict[str, ModuleType]):
        self.channels = channels

    def _via(self, action: dict):
        return self.channels[action["via"]]

    def call(self, work: Work) -> str:
        """Send the claimed chunk (or member) the invite, through its channel."""
        return self._via(work.action).call(replace(work, action=expand(work.action, work.userid)))

    def reconcile(self, work: Work) -> str:
        """Settle an interrupted call the way its channel does."""
        return self._via(work.action).reconcile(replace(work, action=expand(work.action, work.userid)))

    def poll(self, send_id: int) -> str:
        """Poll results the way the channel does."""
        with session_scope() as s:
            action = s.scalar(select(Campaign.spec).join(CampaignRun, CampaignRun.campaign_id == Campaign.id)
                              .join(CampaignSend, CampaignSend.run_id == CampaignRun.id)
                              .where(CampaignSend.id == send_id))["action"]
        return self._via(action).poll(send_id)


def check(session: Session, action: dict, channels: dict[str, ModuleType]) -> None:
    """Refuse (422, naming the field) an invite of an offer or service Siyu lacks, or on a channel not built yet."""
    if action["via"] not in channels:
        raise InvalidInput(f"action.via: {action['via']} is not available yet")
    if action["type"] == "groupbuy_invite":
        if session.get(Offer, action["offer_id"]) is None:
            raise InvalidInput(f"action.offer_id: no group-buy offer {action['offer_id']}")
        return
    service = session.scalar(select(BookableService).where(BookableService.code == action["service"]))
    if service is None:
        raise InvalidInput(f"action.service: no service {action['service']!r}")
    if action.get("store"):
        store = session.scalar(select(Store).where(Store.code == action["store"]))
        if store is None or session.get(ServiceStore, (service.id, store.id)) is None:
            raise InvalidInput(f"action.store: service {action['service']!r} is not offered at {action['store']!r}")
