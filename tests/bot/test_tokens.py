"""Access tokens shared by all processes, refreshed single-flight."""
from __future__ import annotations

import threading

from bot.tokens import DatabaseTokenCache, RedisTokenCache, token_key
from config.database import engine_for


def _fetcher(calls: list, prefix: str = "tok", barrier_wait: float = 0.05):
    def fetch():
        import time

        calls.append(1)
        time.sleep(barrier_wait)  # hold the lock long enough for every other thread to queue on it
        return f"{prefix}{len(calls)}", 7200

    return fetch


def _race(cache, key, stale=None, threads=8, prefix="tok"):
    calls, got = [], []
    fetch = _fetcher(calls, prefix)

    def run():
        got.append(cache.refresh(key, stale, fetch) if stale else cache.get(key, fetch))

    ts = [threading.Thread(target=run) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return calls, got


def test_token_keys_differ_per_secret_and_hide_it():
    a, b = token_key("wecom", "corp", "secret-a"), token_key("wecom", "corp", "secret-b")
    assert a != b and "secret" not in a


def test_given_the_database_cache_when_many_threads_need_a_token_then_one_fetch(settings):
    # given: two caches, as in two processes sharing the database
    engine = engine_for(settings.database_url)
    one, two = DatabaseTokenCache(engine), DatabaseTokenCache(engine)
    key = token_key("wecom", "corp", "s")
    # when
    calls, got = _race(one, key)
    # then
    assert len(calls) == 1 and set(got) == {"tok1"}
    assert two.get(key, lambda: ("never", 7200)) == "tok1"
    # and when one process finds it stale, the other picks up the refreshed one without fetching
    fresh = one.refresh(key, "tok1", lambda: ("tok2", 7200))
    assert fresh == "tok2"
    assert two.refresh(key, "tok1", lambda: ("tok3", 7200)) == "tok2"


def test_given_the_redis_cache_when_many_threads_need_a_token_then_one_fetch(redis_url):
    from redis import Redis

    one, two = RedisTokenCache(Redis.from_url(redis_url)), RedisTokenCache(Redis.from_url(redis_url))
    key = token_key("wecom", "corp", "s")
    calls, got = _race(one, key)
    assert len(calls) == 1 and set(got) == {"tok1"}
    assert two.get(key, lambda: ("never", 7200)) == "tok1"
    # a stale token seen by many threads is refreshed once
    calls, got = _race(two, key, stale="tok1", prefix="new")
    assert len(calls) == 1 and len(set(got)) == 1 and got[0] != "tok1"
