"""template_card_event: a staff member clicked a button on a task card; campaigns decide what it means."""
from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from webhooks.dispatch import Event, handles
from webhooks import registry

log = logging.getLogger(__name__)


@handles("wecom", "event", "template_card_event")
def template_card_clicked(session: Session, ev: Event) -> None:
    """Route the click to every registered handler (the inbox row is its record)."""
    ev.require("FromUserName")  # the staff member who clicked: every card handler needs them
    card = dict(ev.data, inbox_id=ev.inbox_id)
    if not registry.TEMPLATE_CARD_HANDLERS:
        log.info("template card %s: no handler registered, kept in the inbox", ev.get("TaskId"))
    for fn in registry.TEMPLATE_CARD_HANDLERS:
        fn(session, card)
