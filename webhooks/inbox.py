"""The inbox: every decrypted callback stored once under its content key, then its id enqueued."""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from config.database import upsert
from config.queue import enqueue
from config.types import utcnow
from webhooks.metrics import RECEIVED
from webhooks.models import InboxEvent, InboxStatus

log = logging.getLogger(__name__)


def _text(value) -> str:
    return value.strip() if isinstance(value, str) else ""


def _width(column) -> int:
    return InboxEvent.__table__.c[column].type.length


def storable_text(text: str) -> str:
    """`text` as both databases take it: NUL removed (PostgreSQL refuses it), a lone surrogate replaced."""
    text = text.replace("\x00", "")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # JSON's "\ud800" escapes decode to lone surrogates no driver can encode
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def storable(value):
    """`value` (a parsed callback) with every string in it, keys included, made storable."""
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, dict):
        return {storable_text(str(k)): storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [storable(v) for v in value]
    return value


def _bounded(value: str, column: str) -> str:
    # The ellipsis makes a cut kind differ from every handled one (all are ASCII): it is kept as unhandled.
    width = _width(column)
    return value if len(value) <= width else value[:width - 1] + "…"


def event_kind(data: dict) -> tuple[str, str, str]:
    """(MsgType, Event, ChangeType) of a parsed callback, lower-cased (the OA mixes `SCAN` and `subscribe`)."""
    msg_type = _text(data.get("MsgType") or data.get("msgtype"))
    event = _text(data.get("Event") or data.get("event"))
    change = _text(data.get("ChangeType") or data.get("changetype"))
    return msg_type.lower(), event.lower(), change.lower()


def content_key(source: str, plaintext: str, data: dict) -> str:
    """The dedupe key of a callback: MsgId for messages, a SHA-256 of the whole plaintext for events.

    FromUserName + CreateTime is not a key: change_external_* events all come from `sys`, and two
    customers added in one second would collide.
    """
    msg_id = _text(str(data.get("MsgId") or data.get("MsgID") or data.get("msgid") or ""))
    if msg_id:
        prefix = f"{source}:msg:"
        if len(prefix) + len(msg_id) <= _width("content_key"):
            return prefix + msg_id
        return f"{prefix}sha256:{hashlib.sha256(msg_id.encode()).hexdigest()}"  # a MsgId too long for the column
    return f"{source}:sha256:{hashlib.sha256(plaintext.encode()).hexdigest()}"


@dataclass
class Stored:
    inbox_id: int
    created: bool


def store(session: Session, source: str, plaintext: str, data: dict, extra_jobs=()) -> Stored:
    """Insert the callback (or find its earlier copy) and, when new, enqueue it after the commit.

    What is stored always fits the columns, so no callback's content can make the insert fail.
    """
    from webhooks.jobs import process_inbox

    plaintext, data = storable_text(plaintext), storable(data)
    key = content_key(source, plaintext, data)
    msg_type, event, change = event_kind(data)
    msg_type, event, change = _bounded(msg_type, "msg_type"), _bounded(event, "event"), _bounded(change, "change_type")
    now = utcnow()
    inbox_id = upsert(session, InboxEvent.__table__, {
        "source": source, "content_key": key, "msg_type": msg_type, "event": event, "change_type": change,
        "payload": plaintext, "data": data, "status": InboxStatus.received.value, "attempts": 0,
        "received_at": now, "due_at": now,
    }, ["content_key"], returning=InboxEvent.id)
    if inbox_id is None:
        RECEIVED.labels(source, "duplicate").inc()
        existing = session.scalar(select(InboxEvent.id).where(InboxEvent.content_key == key))
        log.info("inbox %s: duplicate delivery of #%s, ignored", key, existing)
        return Stored(existing, False)
    RECEIVED.labels(source, "stored").inc()
    enqueue(process_inbox, inbox_id, session=session)
    for func, queue in extra_jobs:
        enqueue(func, inbox_id, queue=queue, session=session)
    return Stored(inbox_id, True)


def requeue(session: Session, inbox_id: int) -> None:
    """Put an event back to `received` and enqueue it (replay of a failed or unhandled event)."""
    from webhooks.jobs import process_inbox

    session.execute(update(InboxEvent).where(InboxEvent.id == inbox_id).values(
        status=InboxStatus.received.value, attempts=0, error=None, due_at=utcnow(), processed_at=None))
    enqueue(process_inbox, inbox_id, session=session)


def stuck(session: Session, older_than: timedelta, limit: int = 500) -> list[int]:
    """Ids of events still `received` well after they were due (their job was lost)."""
    cutoff = utcnow() - older_than
    q = (select(InboxEvent.id)
         .where(InboxEvent.status == InboxStatus.received.value, InboxEvent.due_at < cutoff)
         .order_by(InboxEvent.id).limit(limit))
    return list(session.scalars(q))
