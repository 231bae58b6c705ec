"""/webhooks/miniprogram: URL check and message push (XML or JSON, plain or safe mode)."""
from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import PlainTextResponse

from webhooks.app_envelope import echo_or_reject, open_or_reject
from webhooks.intake import accept, raw_body, request_time

router = APIRouter(prefix="/webhooks", tags=["webhooks"])
SOURCE = "miniprogram"


@router.get("/miniprogram", response_class=PlainTextResponse)
def verify_url(signature: str | None = None, timestamp: str | None = None, nonce: str | None = None,
               echostr: str | None = None, now: float = Depends(request_time)):
    """Answer the URL check with echostr."""
    return PlainTextResponse(echo_or_reject(SOURCE, signature, timestamp, nonce, echostr, now=now))


@router.post("/miniprogram", response_class=PlainTextResponse)
def receive(signature: str | None = None, timestamp: str | None = None, nonce: str | None = None,
            encrypt_type: str | None = None, msg_signature: str | None = None, body: bytes = Depends(raw_body),
            now: float = Depends(request_time)):
    """Verify and store a pushed message; replies go through the customer-service API afterwards."""
    _, opened = open_or_reject(SOURCE, body, now=now, signature=signature, timestamp=timestamp, nonce=nonce,
                               encrypt_type=encrypt_type, msg_signature=msg_signature)
    accept(SOURCE, opened.plaintext, opened.data, seen=opened.seen, now=now)
    return PlainTextResponse("success")
