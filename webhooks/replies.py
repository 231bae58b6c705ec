"""Keyword auto-replies for official-account and mini-program text messages, and the jieba keywords of a text."""
from __future__ import annotations

import logging
import threading
import time

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import sends
from bot.clients import mp_client, oa_client
from config.database import session_scope
from webhooks.models import AutoReply
from webhooks.inbox import cause_of

log = logging.getLogger(__name__)
MATCH_MODES = ("exact", "contains", "keyword")  # whole text; substring; a jieba word of the text
_jieba_lock = threading.Lock()


def _jieba():
    import jieba
    import jieba.analyse

    with _jieba_lock:  # jieba loads its dictionary on first use; one thread does it
        jieba.initialize()
    return jieba


def keywords(text: str, top: int = 5) -> list[str]:
    """The salient words of a text (jieba TF-IDF)."""
    return list(_jieba().analyse.extract_tags(text or "", topK=top))


def _words(text: str) -> set[str]:
    return {w.strip().lower() for w in _jieba().lcut(text or "") if w.strip()}


def matches(rule: AutoReply, text: str) -> bool:
    """Whether a rule answers this text."""
    text_l = (text or "").strip().lower()
    words = [k.strip().lower() for k in rule.keywords or [] if k and k.strip()]
    if rule.match == "exact":
        return text_l in words
    if rule.match == "keyword":
        return bool(_words(text_l) & set(words))
    return any(w in text_l for w in words)


def find_rule(session: Session, channel: str, text: str) -> AutoReply | None:
    """The highest-priority active rule of `channel` matching `text`."""
    rules = session.scalars(select(AutoReply).where(AutoReply.active.is_(True))
                            .order_by(AutoReply.priority.desc(), AutoReply.id))
    for rule in rules:
        if (not rule.channels or channel in rule.channels) and matches(rule, text):
            return rule
    return None


def passive_text(to_user: str, from_user: str, content: str) -> str:
    """A passive text reply in WeChat's XML."""
    def cdata(value: str) -> str:
        return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"

    return (f"<xml><ToUserName>{cdata(to_user)}</ToUserName><FromUserName>{cdata(from_user)}</FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType>{cdata('text')}</MsgType>"
            f"<Content>{cdata(content)}</Content></xml>")


def custom_message(openid: str, rule: AutoReply) -> dict | None:
    """The customer-service message of a rule that cannot be a passive reply (mini-program cards, MP replies)."""
    if rule.miniprogram:
        return {"touser": openid, "msgtype": "miniprogrampage", "miniprogrampage": dict(rule.miniprogram)}
    if rule.reply_text:
        return {"touser": openid, "msgtype": "text", "text": {"content": rule.reply_text}}
    return None


def send_custom_reply(channel: str, openid: str, rule_id: int, inbox_id: int) -> None:
    """Send a rule's reply through the customer-service API (queue `fast`), once per message and rule."""
    with session_scope() as session:
        rule = session.get(AutoReply, rule_id)
        body = custom_message(openid, rule) if rule else None
    if body is None:
        return
    client = oa_client() if channel == "official_account" else mp_client()
    outcome = sends.send_once(key=f"auto_reply:{inbox_id}:{rule_id}", cause=cause_of(inbox_id),
                              send=lambda: client.sdk.post("message/custom/send", data=body))
    log.info("auto-reply %s: %s to %s on %s", rule_id, outcome, openid, channel)


__all__ = ["MATCH_MODES", "custom_message", "find_rule", "keywords", "matches", "passive_text",
           "send_custom_reply"]
