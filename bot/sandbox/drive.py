"""Driving the sandbox from outside (`siyu sandbox send …`): change what Tencent knows, then deliver the callback
Tencent would send for it — encrypted and signed with the channel's credentials — to Siyu at SIYU_PUBLIC_URL.

Each function changes the shared state first and releases it before POSTing, because Siyu's handler calls the
sandbox back (externalcontact/get, user/info) while it handles the event. Each returns what it did and what Siyu
answered; a request Tencent could not have sent (unknown staff, a `state` longer than WeCom allows, a message
from someone who does not follow) raises ValueError before anything changes.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass

import httpx

from bot.credentials import mp_credentials, oa_credentials, wecom_credentials
from bot.sandbox import callbacks, events, wecom_cards
from bot.sandbox.store import shared
from bot.sandbox.wecom_state import STATE_MAX


@dataclass(frozen=True)
class Sent:
    """One delivered callback: what to print, and the plaintext Siyu stored it as (to wait for its handling)."""

    result: dict
    source: str  # wecom, official_account or miniprogram
    plaintext: str


def _sent(source: str, plaintext: str, event: str, response: httpx.Response, **fields) -> Sent:
    return Sent({"event": event, **fields, "status": response.status_code, "answer": response.text}, source, plaintext)


def _staff_for(sandbox, staff: str | None, state: str | None) -> str:
    if staff:
        if staff not in sandbox.staff:
            raise ValueError(f"--staff {staff}: not a member of the sandbox corp (`siyu sandbox seed` adds staff)")
        return staff
    for way in sandbox.contact_ways.values():  # the 联系我 code of this state names who is added
        if state and way.get("state") == state and way.get("user"):
            return way["user"][0]
    if state:
        raise ValueError(f"--state {state}: no 联系我 code has it (POST /api/v1/channel-codes makes one); "
                         "or name the staff member with --staff")
    if not sandbox.follow_enabled:
        raise ValueError("the sandbox corp has no staff: run `siyu sandbox seed` first")
    return sandbox.follow_enabled[0]


def add_contact(settings, staff: str | None = None, customer: str | None = None, state: str | None = None,
                name: str = "新客户", unionid: str | None = None, client: httpx.Client | None = None) -> Sent:
    """A customer adds a staff member (scanning the 联系我 code of `state`): add_external_contact, a welcome_code."""
    if state is not None and not 0 < len(state) <= STATE_MAX:
        raise ValueError(f"--state: WeCom's state is 1 to {STATE_MAX} characters, got {len(state)}")
    creds = wecom_credentials(settings)
    with shared() as sandbox:
        staff = _staff_for(sandbox, staff, state)
        if customer and customer in sandbox.follows.get(staff, {}):
            raise ValueError(f"--customer {customer}: already a contact of {staff} (del-contact first)")
        ext = sandbox.add_external_contact(staff, external_userid=customer, unionid=unionid, name=name, state=state,
                                           add_way=1 if state else 0)
        welcome_code = sandbox.new_welcome_code(staff, ext)
    xml = events.add_external_contact(creds.corp_id, staff, ext, state=state, welcome_code=welcome_code)
    response = callbacks.send_wecom_event(f"{settings.public_url}webhooks/wecom", creds, xml, client=client)
    return _sent("wecom", xml, "add_external_contact", response, staff=staff, external_userid=ext, state=state)


def del_contact(settings, staff: str, customer: str, by: str = "staff", client: httpx.Client | None = None) -> Sent:
    """The relation ends: the staff member deletes the customer (`by="staff"`) or the customer deletes them."""
    if by not in ("staff", "customer"):
        raise ValueError(f"--by: staff or customer, got {by!r}")
    creds = wecom_credentials(settings)
    with shared() as sandbox:
        if customer not in sandbox.follows.get(staff, {}):
            raise ValueError(f"--customer {customer}: not a contact of {staff}")
        sandbox.remove_follow(staff, customer)
    make = events.del_external_contact if by == "staff" else events.del_follow_user
    xml = make(creds.corp_id, staff, customer)
    response = callbacks.send_wecom_event(f"{settings.public_url}webhooks/wecom", creds, xml, client=client)
    return _sent("wecom", xml, make.__name__, response, staff=staff, external_userid=customer)


def card_click(settings, staff: str, task_id: str, key: str, client: httpx.Client | None = None) -> Sent:
    """A staff member taps button `key` on the task card `task_id`: template_card_event with a fresh ResponseCode."""
    creds = wecom_credentials(settings)
    with shared() as sandbox:
        code = wecom_cards.click(sandbox, staff, task_id, key)  # ValueError: no such card, button, or done already
        agent_id = sandbox.agent_id
    xml = events.template_card_event(creds.corp_id, staff, agent_id, code, key, task_id)
    response = callbacks.send_wecom_event(f"{settings.public_url}webhooks/wecom", creds, xml, client=client)
    return _sent("wecom", xml, "template_card_event", response, staff=staff, task_id=task_id, key=key)


def oa_subscribe(settings, openid: str | None = None, scene: str | None = None, unionid: str | None = None,
                 nickname: str = "粉丝", client: httpx.Client | None = None) -> Sent:
    """Someone follows the official account (through the parameter QR code of `scene`, when given)."""
    if scene is not None and not 0 < len(scene) <= 64:
        raise ValueError(f"--state: a QR code's scene_str is 1 to 64 characters, got {len(scene)}")
    creds = oa_credentials(settings)
    with shared() as sandbox:
        if openid and sandbox.oa_followers.get(openid, {}).get("subscribe") == 1:
            raise ValueError(f"--openid {openid}: follows the official account already")
        openid = sandbox.add_oa_follower(openid, unionid=unionid, nickname=nickname,
                                         scene="ADD_SCENE_QR_CODE" if scene else "ADD_SCENE_SEARCH",
                                         qr_scene_str=scene or "")
    xml = events.oa_subscribe(openid, scene_str=scene, to=creds.app_id)
    response = callbacks.send_oa_event(f"{settings.public_url}webhooks/official-account", creds, xml, openid,
                                       client=client)
    return _sent("official_account", xml, "subscribe", response, openid=openid, scene=scene,
                 reply=_reply(creds, response))


def oa_text(settings, openid: str, text: str, client: httpx.Client | None = None) -> Sent:
    """A follower writes to the official account; the passive reply Siyu answers with, as the follower reads it."""
    _check_text(text)
    creds = oa_credentials(settings)
    with shared() as sandbox:
        if sandbox.oa_followers.get(openid, {}).get("subscribe") != 1:
            raise ValueError(f"--openid {openid}: does not follow the official account (oa-subscribe first)")
    xml = events.oa_text(openid, text, _msg_id(), to=creds.app_id)
    response = callbacks.send_oa_event(f"{settings.public_url}webhooks/official-account", creds, xml, openid,
                                       client=client)
    return _sent("official_account", xml, "text", response, openid=openid, reply=_reply(creds, response))


def oa_template_finish(settings, client: httpx.Client | None = None) -> Sent:
    """Tencent reports the oldest template message's fate (TEMPLATESENDJOBFINISH: success, or failed:user block
    for a follower in `oa_blocked`)."""
    creds = oa_credentials(settings)
    with shared() as sandbox:
        if not sandbox.oa_template_results:
            raise ValueError("no template message is waiting for its TEMPLATESENDJOBFINISH (none sent since)")
        openid, msgid, status = sandbox.oa_template_results.pop(0)
    xml = events.oa_template_finish(openid, msgid, status, to=creds.app_id)
    response = callbacks.send_oa_event(f"{settings.public_url}webhooks/official-account", creds, xml, openid,
                                       client=client)
    return _sent("official_account", xml, "TEMPLATESENDJOBFINISH", response, openid=openid, msgid=msgid,
                 fate=status)


def mp_text(settings, openid: str | None, text: str, unionid: str | None = None,
            client: httpx.Client | None = None) -> Sent:
    """A mini-program user writes to customer service (message push; replies go through the API, not the answer)."""
    _check_text(text)
    creds = mp_credentials(settings)
    with shared() as sandbox:
        openid = sandbox.add_mp_user(openid, unionid)
    xml = events.mp_text(openid, text, _msg_id())
    response = callbacks.send_oa_event(f"{settings.public_url}webhooks/miniprogram", creds, xml, openid,
                                       client=client)
    return _sent("miniprogram", xml, "mp_text", response, openid=openid)


def _check_text(text: str) -> None:
    if not text.strip() or len(text.encode()) > 2048:  # Tencent's text messages: up to 2048 bytes
        raise ValueError(f"--text: 1 to 2048 bytes, got {len(text.encode())}")


def _msg_id() -> int:
    return 10**17 + secrets.randbelow(9 * 10**17)  # Tencent's MsgId: a 64-bit number, unique per message


def _reply(creds, response: httpx.Response) -> str | None:
    if response.status_code != 200 or response.text in ("", "success"):
        return None
    try:
        return callbacks.open_oa_reply(creds, response.text)
    except ValueError:
        return response.text
