"""Plaintext XML of the callbacks the sandbox sends, field for field as Tencent documents them."""
from __future__ import annotations

import time


def _cdata(value) -> str:
    return f"<![CDATA[{value}]]>"


def xml_of(fields: dict) -> str:
    """`<xml>` with one element per field: numbers bare, text in CDATA, as Tencent writes them."""
    parts = []
    for key, value in fields.items():
        if value is None:
            continue
        parts.append(f"<{key}>{value if isinstance(value, int) else _cdata(value)}</{key}>")
    return "<xml>" + "".join(parts) + "</xml>"


def _wecom_event(corp_id: str, event: str, change_type: str | None, create_time: int | None, **fields) -> str:
    return xml_of({"ToUserName": corp_id, "FromUserName": "sys", "CreateTime": create_time or int(time.time()),
                   "MsgType": "event", "Event": event, "ChangeType": change_type, **fields})


def add_external_contact(corp_id: str, userid: str, external_userid: str, state: str | None = None,
                         welcome_code: str | None = None, create_time: int | None = None) -> str:
    """change_external_contact / add_external_contact."""
    return _wecom_event(corp_id, "change_external_contact", "add_external_contact", create_time,
                        UserID=userid, ExternalUserID=external_userid, State=state, WelcomeCode=welcome_code)


def edit_external_contact(corp_id: str, userid: str, external_userid: str, create_time: int | None = None) -> str:
    """change_external_contact / edit_external_contact."""
    return _wecom_event(corp_id, "change_external_contact", "edit_external_contact", create_time,
                        UserID=userid, ExternalUserID=external_userid)


def del_external_contact(corp_id: str, userid: str, external_userid: str, source: str | None = None,
                         create_time: int | None = None) -> str:
    """change_external_contact / del_external_contact: the staff member deleted the customer."""
    return _wecom_event(corp_id, "change_external_contact", "del_external_contact", create_time,
                        UserID=userid, ExternalUserID=external_userid, Source=source)


def del_follow_user(corp_id: str, userid: str, external_userid: str, create_time: int | None = None) -> str:
    """change_external_contact / del_follow_user: the customer deleted the staff member."""
    return _wecom_event(corp_id, "change_external_contact", "del_follow_user", create_time,
                        UserID=userid, ExternalUserID=external_userid)


def transfer_fail(corp_id: str, userid: str, external_userid: str, reason: str = "customer_refused",
                  create_time: int | None = None) -> str:
    """change_external_contact / transfer_fail."""
    return _wecom_event(corp_id, "change_external_contact", "transfer_fail", create_time,
                        FailReason=reason, UserID=userid, ExternalUserID=external_userid)


def change_external_chat(corp_id: str, chat_id: str, change_type: str = "update",
                         update_detail: str | None = None, join_scene: int | None = None,
                         quit_scene: int | None = None, mem_change_cnt: int | None = None,
                         create_time: int | None = None) -> str:
    """change_external_chat (create / update add_member, del_member… / dismiss)."""
    return _wecom_event(corp_id, "change_external_chat", change_type, create_time, ChatId=chat_id,
                        UpdateDetail=update_detail, JoinScene=join_scene, QuitScene=quit_scene,
                        MemChangeCnt=mem_change_cnt)


def change_external_tag(corp_id: str, tag_id: str, tag_type: str = "tag", change_type: str = "create",
                        create_time: int | None = None) -> str:
    """change_external_tag (create / update / delete / shuffle)."""
    return _wecom_event(corp_id, "change_external_tag", change_type, create_time, Id=tag_id, TagType=tag_type)


def template_card_event(corp_id: str, userid: str, agent_id: str, response_code: str, event_key: str,
                        task_id: str, card_type: str = "button_interaction", create_time: int | None = None) -> str:
    """template_card_event: a staff member clicked a button on a task card."""
    return xml_of({"ToUserName": corp_id, "FromUserName": userid, "CreateTime": create_time or int(time.time()),
                   "MsgType": "event", "Event": "template_card_event", "EventKey": event_key, "TaskId": task_id,
                   "CardType": card_type, "ResponseCode": response_code, "AgentID": int(agent_id)})


def oa_subscribe(openid: str, scene_str: str | None = None, ticket: str | None = None,
                 create_time: int | None = None, to: str = "gh_sandbox") -> str:
    """OA subscribe (with `qrscene_` EventKey when it came from a parameter QR code)."""
    return xml_of({"ToUserName": to, "FromUserName": openid, "CreateTime": create_time or int(time.time()),
                   "MsgType": "event", "Event": "subscribe",
                   "EventKey": f"qrscene_{scene_str}" if scene_str else None, "Ticket": ticket})


def oa_template_finish(openid: str, msgid: int, status: str = "success", create_time: int | None = None,
                       to: str = "gh_sandbox") -> str:
    """OA TEMPLATESENDJOBFINISH: a template message's fate (success, failed:user block, failed: system failed)."""
    return xml_of({"ToUserName": to, "FromUserName": openid, "CreateTime": create_time or int(time.time()),
                   "MsgType": "event", "Event": "TEMPLATESENDJOBFINISH", "MsgID": msgid, "Status": status})


def oa_scan(openid: str, scene_str: str, ticket: str | None = None, create_time: int | None = None,
            to: str = "gh_sandbox") -> str:
    """OA SCAN: a follower scanned a parameter QR code."""
    return xml_of({"ToUserName": to, "FromUserName": openid, "CreateTime": create_time or int(time.time()),
                   "MsgType": "event", "Event": "SCAN", "EventKey": scene_str, "Ticket": ticket})


def oa_unsubscribe(openid: str, create_time: int | None = None, to: str = "gh_sandbox") -> str:
    """OA unsubscribe."""
    return xml_of({"ToUserName": to, "FromUserName": openid, "CreateTime": create_time or int(time.time()),
                   "MsgType": "event", "Event": "unsubscribe", "EventKey": ""})


def oa_text(openid: str, content: str, msg_id: int, create_time: int | None = None, to: str = "gh_sandbox") -> str:
    """OA text message from a follower."""
    return xml_of({"ToUserName": to, "FromUserName": openid, "CreateTime": create_time or int(time.time()),
                   "MsgType": "text", "Content": content, "MsgId": msg_id})


def mp_text(openid: str, content: str, msg_id: int, create_time: int | None = None, to: str = "gh_sandbox_mp") -> str:
    """A mini-program user's text to customer service (message push, XML)."""
    return xml_of({"ToUserName": to, "FromUserName": openid, "CreateTime": create_time or int(time.time()),
                   "MsgType": "text", "Content": content, "MsgId": msg_id})
