"""Replay defence of the official account's and the mini-program's callbacks: a timestamp window and a nonce memory.

Plain mode signs (token, timestamp, nonce) and no body, so one logged query string would carry any body.
A callback is taken only within WINDOW seconds of its timestamp, and its (source, nonce, timestamp) is
remembered while that timestamp is fresh, with a digest of what it carried: the same content again is
Tencent retrying (a harmless duplicate, which the inbox's content key dedupes); other content is a forgery.
With SIYU_REDIS_URL set the memory is a Redis key (SET NX EX); otherwise, or while Redis is down, it is
the `webhook_nonces` table, written in the transaction that stores the callback.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timezone

from redis.exceptions import RedisError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from config.database import upsert
from config.redis import get_redis
from webhooks.crypto import BadSignature
from webhooks.models import WebhookNonce

log = logging.getLogger(__name__)

WINDOW = 300  # seconds between a callback's timestamp and now, either way
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_PLAIN_NONCE = re.compile(r"[0-9A-Za-z_-]{1,64}")


class StaleTimestamp(BadSignature):
    """The timestamp is missing or more than WINDOW seconds from now (answer 403)."""

    reason = "timestamp"


class ReplayedNonce(BadSignature):
    """The nonce and timestamp were used within the window for other content (answer 403)."""

    reason = "replay"


@dataclass(frozen=True)
class Delivery:
    """What a callback's nonce memory records: who sent it, its nonce and timestamp, and a digest of its content."""

    source: str
    nonce: str  # as sent when short and plain, else its SHA-256 (the column and the Redis key stay bounded)
    timestamp: int
    digest: str

    @property
    def expires(self) -> int:
        """The first second at which the timestamp is no longer fresh, so no request can reuse the nonce."""
        return self.timestamp + WINDOW + 1


def fresh_timestamp(timestamp: str | None, now: float) -> int:
    """The timestamp in seconds when it lies within WINDOW of `now`; StaleTimestamp otherwise."""
    if timestamp is None or not _TIMESTAMP.fullmatch(timestamp):
        raise StaleTimestamp("timestamp missing or not a number of seconds")
    seconds = int(timestamp)
    if abs(now - seconds) > WINDOW:
        raise StaleTimestamp(f"timestamp {seconds} is more than {WINDOW} s from now")
    return seconds


def delivery(source: str, nonce: str, timestamp: int, content: str) -> Delivery:
    """The Delivery of a verified callback: `content` is its plaintext (the body in plain mode)."""
    if not _PLAIN_NONCE.fullmatch(nonce):
        nonce = hashlib.sha256(nonce.encode("utf-8", "replace")).hexdigest()
    digest = hashlib.sha256(content.encode("utf-8", "replace")).hexdigest()
    return Delivery(source, nonce, timestamp, digest)


def remember(session: Session, seen: Delivery, now: float) -> None:
    """Record the delivery's nonce; ReplayedNonce when the window already saw it with other content."""
    earlier = _remember(session, seen, now)
    if earlier is not None and not hmac.compare_digest(earlier, seen.digest):
        raise ReplayedNonce(f"nonce {seen.nonce} at {seen.timestamp} was used for other content")


def _remember(session: Session, seen: Delivery, now: float) -> str | None:
    # The digest remembered earlier for this nonce, or None when this delivery is the first.
    redis = get_redis()
    if redis is not None:
        try:
            return _remember_in_redis(redis, seen, now)
        except RedisError as exc:  # intake keeps working while Redis is down (the sweeper enqueues later)
            log.warning("nonce %s:%s: Redis unavailable (%s), remembered in the database", seen.source,
                        seen.nonce, type(exc).__name__)
    return _remember_in_table(session, seen)


def _remember_in_redis(redis, seen: Delivery, now: float) -> str | None:
    key = f"siyu:nonce:{seen.source}:{seen.nonce}:{seen.timestamp}"
    ttl = max(1, int(seen.expires - now))
    for _ in range(3):  # the key may expire between SET and GET; then the next SET takes it
        if redis.set(key, seen.digest, nx=True, ex=ttl):
            return None
        earlier = redis.get(key)
        if earlier is not None:
            return earlier.decode()
    return None


def _remember_in_table(session: Session, seen: Delivery) -> str | None:
    row = {"source": seen.source, "nonce": seen.nonce, "timestamp": seen.timestamp, "body_sha256": seen.digest,
           "expires_at": datetime.fromtimestamp(seen.expires, timezone.utc)}
    keys = ["source", "nonce", "timestamp"]
    if upsert(session, WebhookNonce.__table__, row, keys, returning=WebhookNonce.timestamp) is not None:
        return None
    return session.scalar(select(WebhookNonce.body_sha256).where(
        WebhookNonce.source == seen.source, WebhookNonce.nonce == seen.nonce,
        WebhookNonce.timestamp == seen.timestamp))


def purge_nonces(session: Session, now: datetime) -> int:
    """Forget nonces whose timestamp is no longer fresh (no request can reuse them); returns how many."""
    return session.execute(delete(WebhookNonce).where(WebhookNonce.expires_at <= now)).rowcount or 0
