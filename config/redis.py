"""The Redis connection, when SIYU_REDIS_URL is set."""
from __future__ import annotations

import functools

from redis import Redis

from config.settings import get_settings


@functools.lru_cache(maxsize=4)
def redis_for(url: str) -> Redis:
    """A process-wide Redis client for `url`, with timeouts so a dead Redis fails fast."""
    return Redis.from_url(url, socket_timeout=5, socket_connect_timeout=3, health_check_interval=30)


def get_redis() -> Redis | None:
    """The configured Redis, or None in embedded mode."""
    url = get_settings().redis_url
    return redis_for(url) if url else None
