"""Scheduled entries of the intake (they only enqueue)."""
from __future__ import annotations

from webhooks.jobs import sweep_inbox

# The sweeper re-enqueues inbox rows whose job was lost; it does no handling itself.
SCHEDULES = [(sweep_inbox, {"trigger": "interval", "seconds": 60})]
