"""Background jobs of transfers (module level, safe to run twice)."""
from __future__ import annotations

from dataclasses import asdict

from webhooks.transfers.results import poll_transfers


def poll_transfers_job() -> dict:
    """Settle open handovers from transfer_result (the scheduled sweep; WeCom's callbacks settle them sooner)."""
    return asdict(poll_transfers())
