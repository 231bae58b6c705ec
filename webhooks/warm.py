"""Fetch access tokens before a transaction opens.

In embedded mode the shared token cache lives in the database; a first fetch from inside an open SQLite
write transaction would wait on that very transaction. Once fetched, the token is served from memory.
"""
from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def warm(source: str) -> None:
    """Make sure the client of `source` holds a token (errors are left to the real call to report)."""
    from bot import clients

    client = {"wecom": clients.wecom_client, "official_account": clients.oa_client,
              "miniprogram": clients.mp_client}.get(source)
    if client is None:
        return
    try:
        client().access_token()
    except Exception as exc:  # noqa: BLE001 - the handler's own call will fail and be retried
        log.info("token %s: not fetched ahead (%s)", source, exc)


def warm_wecom() -> None:
    """FastAPI dependency: the WeCom token, fetched before the request's transaction starts."""
    warm("wecom")


def warm_oa() -> None:
    """FastAPI dependency: the official-account token, fetched before the request's transaction starts."""
    warm("official_account")
