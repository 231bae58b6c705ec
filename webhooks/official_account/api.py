"""/webhooks/official-account: URL check and messages, plain or safe mode; keyword replies inside the 5 s."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from fastapi.responses import PlainTextResponse

from config.database import read_scope
from webhooks.app_envelope import echo_or_reject, open_or_reject, seal_reply
from webhooks.intake import accept, raw_body, request_time
from webhooks.replies import find_rule, passive_text

router = APIRouter(prefix="/webhooks", tags=["webhooks"])
SOURCE = "official_account"


@router.get("/official-account", response_class=PlainTextResponse)
def verify_url(signature: str | None = None, timestamp: str | None = None, nonce: str | None = None,
               echostr: str | None = None, now: float = Depends(request_time)):
    """Answer the URL check with echostr."""
    return PlainTextResponse(echo_or_reject(SOURCE, signature, timestamp, nonce, echostr, now=now))


@router.post("/official-account")
def receive(signature: str | None = None, timestamp: str | None = None, nonce: str | None = None,
            encrypt_type: str | None = None, msg_signature: str | None = None, body: bytes = Depends(raw_body),
            now: float = Depends(request_time)):
    """Verify and store a message or event; answer a matching keyword rule as the passive reply."""
    creds, opened = open_or_reject(SOURCE, body, now=now, signature=signature, timestamp=timestamp, nonce=nonce,
                                   encrypt_type=encrypt_type, msg_signature=msg_signature)
    accept(SOURCE, opened.plaintext, opened.data, seen=opened.seen, now=now)
    reply = _passive_reply(opened.data)
    if reply is None:
        return PlainTextResponse("success")
    return Response(seal_reply(creds, opened, reply, nonce, timestamp), media_type="application/xml")


def _passive_reply(data: dict) -> str | None:
    # A repeated delivery gets the reply again: WeChat retries only when the first answer was lost.
    if str(data.get("MsgType", "")).lower() != "text":
        return None
    # A read-only session: on SQLite it never waits for a job holding the write lock, inside the 5 s.
    with read_scope() as session:
        rule = find_rule(session, SOURCE, str(data.get("Content") or ""))
        text = rule.reply_text if rule is not None and not rule.miniprogram else None
    if not text:
        return None
    return passive_text(str(data.get("FromUserName", "")), str(data.get("ToUserName", "")), text)
