"""Prometheus counters of the intake (summed over every process at /metrics)."""
from __future__ import annotations

from config.metrics import Counter

REJECTED = Counter("siyu_webhook_rejected", "Callbacks refused before storing", ["source", "reason"])
RECEIVED = Counter("siyu_webhook_received", "Verified callbacks, by outcome (stored, duplicate, busy: not stored, 503)",
                   ["source", "outcome"])
UNHANDLED = Counter("siyu_webhook_unhandled", "Stored events no handler is registered for", ["source", "kind"])
PROCESSED = Counter("siyu_webhook_processed", "Inbox events handled, by outcome (done, retry, failed)",
                    ["source", "outcome"])
