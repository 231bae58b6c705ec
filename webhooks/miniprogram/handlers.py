"""Mini-program message push handlers: text messages to customer service."""
from __future__ import annotations

from webhooks.dispatch import handles
from webhooks.official_account.handlers import text_received

# One text handler serves both: the channel is the event's source.
handles("miniprogram", "text")(text_received)
