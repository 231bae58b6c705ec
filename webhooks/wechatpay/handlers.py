"""Handlers of stored Pay notifications: each is passed to the packages that registered for them (siyu.wiring)."""
from __future__ import annotations

from sqlalchemy.orm import Session

from webhooks import registry
from webhooks.dispatch import Event, handles

SOURCE = "wechatpay"


def _apply(session: Session, event: Event) -> None:
    resource = event.data.get("resource") or {}
    for handler in registry.PAY_HANDLERS:
        handler(session, event.get("Event"), resource)


for _kind in ("transaction.success", "refund.success", "refund.abnormal", "refund.closed"):
    handles(SOURCE, "notification", _kind)(_apply)
