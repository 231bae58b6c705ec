"""Background jobs of the bot (module level, safe to run twice)."""
from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def sync_wecom_job() -> dict:
    """The nightly full reconcile with WeCom (resumes an interrupted run)."""
    from dataclasses import asdict

    from bot.sync import sync_wecom

    return asdict(sync_wecom(progress=False))
