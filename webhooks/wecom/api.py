"""/webhooks/wecom: URL verification (GET) and encrypted callbacks (POST), answered before any processing."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from fastapi.responses import PlainTextResponse

from webhooks.crypto import (BadPayload, BadSignature, WrongReceiver, check_signature, decrypt, extract_encrypt,
                             parse_xml)
from webhooks.inbox import event_kind
from webhooks.intake import accept, credentials, raw_body, reject
from webhooks.wecom.welcome import send_welcome

router = APIRouter(prefix="/webhooks", tags=["webhooks"])
SOURCE = "wecom"
WELCOME_CHANGES = {"add_external_contact", "add_half_external_contact"}


@router.get("/wecom", response_class=PlainTextResponse)
def verify_url(msg_signature: str | None = None, timestamp: str | None = None, nonce: str | None = None,
               echostr: str | None = None):
    """Answer WeCom's URL check with the decrypted echostr alone."""
    creds = credentials(SOURCE)
    try:
        check_signature(msg_signature, creds.token, timestamp, nonce, echostr)
        return PlainTextResponse(decrypt(SOURCE, creds.token, creds.aes_key, creds.corp_id, echostr))
    except (BadSignature, WrongReceiver, BadPayload) as exc:
        raise reject(SOURCE, exc) from None


@router.post("/wecom")
def receive(msg_signature: str | None = None, timestamp: str | None = None, nonce: str | None = None,
            body: bytes = Depends(raw_body)):
    """Verify, decrypt, store and enqueue one callback; answer 200 with an empty body.

    The signature covers the ciphertext alone: it is taken out of the body without building a document,
    and only a verified, decrypted plaintext from our corp is parsed.
    """
    creds = credentials(SOURCE)
    try:
        encrypted = extract_encrypt(body)
        check_signature(msg_signature, creds.token, timestamp, nonce, encrypted)
        plaintext = decrypt(SOURCE, creds.token, creds.aes_key, creds.corp_id, encrypted)
        data = parse_xml(plaintext)
    except (BadSignature, WrongReceiver, BadPayload) as exc:
        raise reject(SOURCE, exc) from None
    _, event, change = event_kind(data)
    extra = []
    # The welcome_code lives 20 seconds: its send goes on the fast queue now, not behind the backlog.
    if event == "change_external_contact" and change in WELCOME_CHANGES and data.get("WelcomeCode"):
        extra.append((send_welcome, "fast"))
    accept(SOURCE, plaintext, data, extra)
    return Response(status_code=200)
