"""Access tokens shared by every process: one fetch per secret, single-flight under a lock.

Tencent allows a limited number of gettoken calls a day and invalidates the previous token when a
new one is fetched by some apps, so every process must use the same cached token and only one may
refresh it at a time. The cache is Redis when configured, else the `wechat_access_tokens` table.
A process keeps a local copy too: a stale copy costs one 40014, after which `refresh(stale=…)`
picks up whatever another process already fetched instead of fetching again.
"""
from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from sqlalchemy import select
from sqlalchemy.engine import make_url

from bot.models import AccessToken
from config.database import engine_for, session_scope, upsert
from config.redis import redis_for

log = logging.getLogger(__name__)

EARLY_REFRESH = 300  # seconds: refresh before Tencent's expiry so an in-flight call never carries a dead token
Fetch = Callable[[], tuple[str, int]]  # -> (access_token, expires_in)


def token_key(channel: str, app_id: str, secret: str) -> str:
    """Cache key of one (channel, app, secret): a separate token per secret, the secret itself never stored."""
    digest = hashlib.sha256(secret.encode()).hexdigest()[:16]
    return f"siyu:token:{channel}:{app_id}:{digest}"


class _LocalCopies:
    def __init__(self) -> None:
        self._copies: dict[str, tuple[str, float]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, key: str) -> str | None:
        hit = self._copies.get(key)
        return hit[0] if hit and hit[1] > time.time() else None

    def put(self, key: str, token: str, expires_at: float) -> None:
        self._copies[key] = (token, expires_at)

    def drop(self, key: str) -> None:
        self._copies.pop(key, None)

    def lock(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())


class RedisTokenCache:
    """Tokens in Redis under `key`, refreshed under a Redis lock `key:lock`."""

    def __init__(self, redis) -> None:
        self.redis = redis
        self.local = _LocalCopies()

    def get(self, key: str, fetch: Fetch) -> str:
        """The current token of `key`, fetched when there is none."""
        token = self.local.get(key)
        if token:
            return token
        raw = self.redis.get(key)
        if raw:
            ttl = self.redis.ttl(key)
            token = raw.decode()
            self.local.put(key, token, time.time() + max(ttl, 1))
            return token
        return self.refresh(key, None, fetch)

    def refresh(self, key: str, stale: str | None, fetch: Fetch) -> str:
        """A token other than `stale`: another process's fresh one, or one fetched now under the lock."""
        self.local.drop(key)
        with self.local.lock(key), self.redis.lock(f"{key}:lock", timeout=60, blocking_timeout=60):
            raw = self.redis.get(key)
            if raw and raw.decode() != stale:
                token = raw.decode()
                self.local.put(key, token, time.time() + max(self.redis.ttl(key), 1))
                return token
            token, expires_in = fetch()
            ttl = max(expires_in - EARLY_REFRESH, 60)
            self.redis.set(key, token, ex=ttl)
            self.local.put(key, token, time.time() + ttl)
            return token


class DatabaseTokenCache:
    """Tokens in `wechat_access_tokens`, refreshed while the row is locked (embedded mode)."""

    def __init__(self, engine=None) -> None:
        self.engine = engine
        self.local = _LocalCopies()

    def get(self, key: str, fetch: Fetch) -> str:
        """The current token of `key`, fetched when there is none."""
        token = self.local.get(key)
        if token:
            return token
        with session_scope(self.engine) as s:
            row = s.get(AccessToken, key)
            if row and row.token and row.expires_at and row.expires_at > datetime.now(timezone.utc):
                self.local.put(key, row.token, row.expires_at.timestamp())
                return row.token
        return self.refresh(key, None, fetch)

    def refresh(self, key: str, stale: str | None, fetch: Fetch) -> str:
        """A token other than `stale`: another process's fresh one, or one fetched now under the row lock."""
        self.local.drop(key)
        with self.local.lock(key), session_scope(self.engine) as s:
            upsert(s, AccessToken.__table__, {"key": key}, ["key"])
            # FOR UPDATE on PostgreSQL; SQLite's BEGIN IMMEDIATE already holds the write lock.
            row = s.scalar(select(AccessToken).where(AccessToken.key == key).with_for_update())
            now = datetime.now(timezone.utc)
            if row.token and row.token != stale and row.expires_at and row.expires_at > now:
                self.local.put(key, row.token, row.expires_at.timestamp())
                return row.token
            token, expires_in = fetch()
            row.token = token
            row.expires_at = now + timedelta(seconds=max(expires_in - EARLY_REFRESH, 60))
            self.local.put(key, token, row.expires_at.timestamp())
            return token


def token_cache_from_settings(settings) -> RedisTokenCache | DatabaseTokenCache:
    """The shared token cache: Redis when configured, else the database (on SQLite, a file of its own)."""
    if settings.redis_url:
        return RedisTokenCache(redis_for(settings.redis_url))
    if make_url(settings.database_url).get_backend_name() != "sqlite":
        return DatabaseTokenCache(engine_for(settings.database_url))
    # SQLite locks the whole database for a writer: a job that calls WeCom inside its transaction would
    # wait on itself for the token row. Tokens get their own file, shared by every process on the machine.
    engine = engine_for(f"sqlite:///{settings.var_dir.resolve()}/tokens.db")
    AccessToken.__table__.create(engine, checkfirst=True)
    return DatabaseTokenCache(engine)
