"""change_external_contact: customers added, edited, deleted, lost and transferred.

WeCom may deliver these out of order or twice, so the add and edit handlers re-read the contact from
the API and make Siyu match it; every timeline write carries a key derived from the inbox id.
"""
from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.clients import wecom_client
from bot.errors import PermanentAPIError
from webhooks.transfers import settle as transfer_settle
from config.queue import enqueue
from config.types import from_unix
from membership.identity import IdentityIn, bind
from membership.models import MemberTag, RelationStatus, Tag
from membership.service import add_relation, end_relation, ensure_staff, find_staff, lock_contact
from membership.tags import ensure_tag, tag_member, untag_member
from membership.timeline import record_event
from webhooks.dispatch import Event, handles
from webhooks.people import channel_code_by_state, member_by_external, wecom_identity
from webhooks.read_ahead import Reader, ahead, reads_ahead
from webhooks.wecom.alerts import loss_alert

log = logging.getLogger(__name__)

SOURCE_WECOM = "wecom"  # member_tags.source of tags that mirror WeCom (the tag listener must not push them back)
SOURCE_CHANNEL = "wecom:channel_code"  # channel-code tags, already marked on WeCom by the handler
CONTACT = ("wecom", "event", "change_external_contact")


def _read_contact(external_userid: str) -> dict:
    return wecom_client().get_external_contact(external_userid)


# The add and edit handlers' re-read: a batch of them reads its contacts at once (webhooks.read_ahead).
CONTACT_READ = Reader("wecom.externalcontact/get", lambda ev: ev.get("ExternalUserID") or None, _read_contact)


def _fetch(external_userid: str) -> dict | None:
    # 84061 (not an external contact any more) and friends: the customer is gone, which is itself the state.
    try:
        return ahead(CONTACT_READ, external_userid)
    except PermanentAPIError as exc:
        log.info("contact %s: not readable (%s)", external_userid, exc)
        return None


def _when(ts, default: datetime) -> datetime:
    # The API's own createtime: when it is corrupt, the event's time is the next best thing.
    return from_unix(ts) or default


def _corp_tags(follow: dict) -> list[dict]:
    return [t for t in follow.get("tags") or [] if t.get("tag_id") and int(t.get("type", 1)) == 1]


def sync_contact(session: Session, ev: Event, *, adding: bool):
    """Make the member, relation and tags of (UserID, ExternalUserID) match what the API says now."""
    userid, external_userid = ev.require("UserID"), ev.require("ExternalUserID")
    lock_contact(session, external_userid)
    info = _fetch(external_userid)
    if info is None:
        return None
    contact = info.get("external_contact") or {}
    follows = info.get("follow_user") or []
    follow = next((f for f in follows if f.get("userid") == userid), None)
    state = ev.get("State") or (follow or {}).get("state") or ""
    code = channel_code_by_state(session, state)
    identities = [wecom_identity(external_userid)]
    if contact.get("unionid"):
        identities.append(IdentityIn("unionid", contact["unionid"]))
    bound = bind(session, identities, name=contact.get("name"), store_id=code.store_id if code else None)
    member = bound.member
    if follow is None:  # the staff member no longer has this customer: a later delete was handled first
        log.info("contact %s: %s does not follow any more, no relation", external_userid, userid)
        return member
    staff = ensure_staff(session, userid)
    rel, new = add_relation(
        session, staff=staff, member_id=member.id, state=state or None, channel_code_id=code.id if code else None,
        remark=follow.get("remark") or None, added_at=_when(follow.get("createtime"), ev.at),
        dedupe_key=ev.key("contact.added"), new_member=bound.created,
    )
    if follow.get("remark") and rel.remark != follow["remark"]:
        rel.remark = follow["remark"]
    on_wecom = set()
    for t in _corp_tags(follow):
        tag = _wecom_tag(session, t)
        tag_member(session, member.id, tag, source=SOURCE_WECOM)
        on_wecom.add(t["tag_id"])
    if code is not None and new:
        _apply_channel_tags(session, code, userid, external_userid, member.id, on_wecom)
    if not adding:
        everyone = {t["tag_id"] for f in follows for t in _corp_tags(f)} | on_wecom
        _drop_removed_tags(session, member.id, everyone)
    return member


def _wecom_tag(session: Session, t: dict) -> Tag:
    # The WeCom id names a tag; its name and group may differ locally (renamed since, or never read).
    tag = session.scalar(select(Tag).where(Tag.wecom_tag_id == t["tag_id"]))
    return tag or ensure_tag(session, t.get("tag_name") or t["tag_id"], t.get("group_name") or "",
                             wecom_tag_id=t["tag_id"])


def _apply_channel_tags(session: Session, code, userid: str, external_userid: str, member_id: int,
                        on_wecom: set[str]) -> None:
    tags = list(session.scalars(select(Tag).where(Tag.id.in_(code.tag_ids or []))))
    missing = sorted({t.wecom_tag_id for t in tags if t.wecom_tag_id and t.wecom_tag_id not in on_wecom})
    if missing:
        # Changes Siyu makes through the API produce no callback: mark first, then mirror locally.
        wecom_client().mark_tag(userid, external_userid, add_tag=missing)
        on_wecom.update(missing)
    for tag in tags:
        tag_member(session, member_id, tag, source=SOURCE_CHANNEL if tag.wecom_tag_id else "channel_code")


def _drop_removed_tags(session: Session, member_id: int, on_wecom: set[str]) -> None:
    rows = session.execute(
        select(Tag, MemberTag.source).join(MemberTag, MemberTag.tag_id == Tag.id)
        .where(MemberTag.member_id == member_id, Tag.wecom_tag_id.is_not(None))
    ).all()
    for tag, source in rows:
        if source.startswith("wecom") and tag.wecom_tag_id not in on_wecom:
            untag_member(session, member_id, tag, source=SOURCE_WECOM)


@handles(*CONTACT, "add_external_contact")
@handles(*CONTACT, "add_half_external_contact")
@reads_ahead(CONTACT_READ)
def contact_added(session: Session, ev: Event) -> None:
    """A customer added a staff member (the welcome message goes separately, on the fast queue)."""
    sync_contact(session, ev, adding=True)


@handles(*CONTACT, "edit_external_contact")
@reads_ahead(CONTACT_READ)
def contact_edited(session: Session, ev: Event) -> None:
    """A staff member edited a customer's remark, tags or description: refresh from the API."""
    member = sync_contact(session, ev, adding=False)
    if member is not None:
        record_event(session, member.id, "contact.edited", {"staff": ev.get("UserID")}, at=ev.at,
                     dedupe_key=ev.key("contact.edited"))


@handles(*CONTACT, "del_external_contact")
def contact_deleted_by_staff(session: Session, ev: Event) -> None:
    """A staff member deleted a customer, or a transfer moved the customer away from them."""
    external_userid, userid = ev.require("ExternalUserID"), ev.require("UserID")
    lock_contact(session, external_userid)
    by_transfer = ev.get("Source") == "DELETE_BY_TRANSFER"
    if by_transfer and transfer_settle.transferred_by_callback(
            session, handover_userid=userid, external_userid=external_userid, at=ev.at):
        return  # Siyu's own handover: settled with its takeover relation, as the poll would have
    member, staff = member_by_external(session, external_userid), find_staff(session, userid)
    if member is None or staff is None:
        return
    status = RelationStatus.transferred if by_transfer else RelationStatus.removed_by_staff
    end_relation(session, staff=staff, member_id=member.id, status=status, at=ev.at, dedupe_key=ev.key("ended"))


@handles(*CONTACT, "del_follow_user")
def contact_lost(session: Session, ev: Event) -> None:
    """The customer deleted the staff member: relation lost, and the staff member and their manager are told."""
    external_userid, userid = ev.require("ExternalUserID"), ev.require("UserID")
    lock_contact(session, external_userid)
    member, staff = member_by_external(session, external_userid), find_staff(session, userid)
    if member is None or staff is None:
        return
    if end_relation(session, staff=staff, member_id=member.id, status=RelationStatus.lost, at=ev.at,
                    dedupe_key=ev.key("contact.lost")) is not None:
        enqueue(send_loss_alert, ev.inbox_id, session=session)


@handles(*CONTACT, "transfer_fail")
def transfer_failed(session: Session, ev: Event) -> None:
    """A 继承 did not happen (the customer refused, or the takeover reached its limit): the customer stays.

    UserID is the takeover staff member. A handover Siyu made is settled (once, whether the poll saw it first
    or not); one made elsewhere (the admin console) is only written to the customer's timeline.
    """
    external_userid = ev.require("ExternalUserID")
    lock_contact(session, external_userid)
    if transfer_settle.failed_by_callback(session, takeover_userid=ev.get("UserID"),
                                          external_userid=external_userid, reason=ev.get("FailReason"),
                                          at=ev.at):
        return
    member = member_by_external(session, external_userid)
    if member is not None:
        record_event(session, member.id, "contact.transfer_failed",
                     {"staff": ev.get("UserID"), "reason": ev.get("FailReason")}, at=ev.at,
                     dedupe_key=ev.key("contact.transfer_failed"))


def send_loss_alert(inbox_id: int) -> None:
    """Job: tell the staff member and their store's managers that a customer deleted them."""
    loss_alert(inbox_id)
