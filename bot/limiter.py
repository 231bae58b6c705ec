"""Token buckets per corp (or app) and API, so Siyu stays under Tencent's published frequency limits.

A limit is a list of bands, "calls/seconds": "10000/60,150000/3600" is Tencent's per-corp, per-API
rule. Each band is a bucket of `calls` tokens refilled evenly over `seconds`; a call takes one token
from every band. With Redis the buckets live there (a Lua script), shared by every process;
embedded mode keeps them in the process, which is the only one.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

Band = tuple[float, float]  # (capacity in calls, seconds to refill it)


def parse_bands(spec: str) -> list[Band]:
    """`"10000/60,150000/3600"` → [(10000, 60), (150000, 3600)]."""
    bands = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        calls, _, seconds = part.partition("/")
        bands.append((float(calls), float(seconds or 1)))
    if not bands:
        raise ValueError(f"rate limit {spec!r}: expected 'calls/seconds[,calls/seconds…]'")
    return bands


@dataclass
class TokenBucket:
    """One band: `capacity` tokens, refilled at capacity/period per second."""

    capacity: float
    period: float
    tokens: float | None = None  # full on first use
    stamp: float = 0.0

    def wait_needed(self, now: float) -> float:
        """Seconds until a token is available (0 when one is there now), after refilling to `now`."""
        if self.tokens is None:
            self.tokens, self.stamp = self.capacity, now
        rate = self.capacity / self.period
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * rate)
        self.stamp = now
        # The epsilon absorbs float drift: 0.9999999 tokens would otherwise ask for a 1e-16 s sleep forever.
        return 0.0 if self.tokens >= 1 - 1e-9 else (1 - self.tokens) / rate


@dataclass
class LocalLimiter:
    """In-process buckets keyed by (scope, api); `clock` and `sleep` are injectable for tests."""

    default: list[Band]
    overrides: dict[str, list[Band]] = field(default_factory=dict)
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    _buckets: dict[tuple[str, str], list[TokenBucket]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _take(self, scope: str, api: str) -> float:
        # Takes a token from every band and returns 0, or returns the wait and takes nothing.
        with self._lock:
            buckets = self._buckets.get((scope, api))
            if buckets is None:
                bands = self.overrides.get(api, self.default)
                buckets = self._buckets[(scope, api)] = [TokenBucket(c, p) for c, p in bands]
            now = self.clock()
            wait = max(b.wait_needed(now) for b in buckets)
            if wait <= 0:
                for b in buckets:
                    b.tokens -= 1
            return wait

    def try_acquire(self, scope: str, api: str) -> bool:
        """Take a call if one is allowed now; never waits."""
        return self._take(scope, api) <= 0

    def acquire(self, scope: str, api: str) -> float:
        """Block until a call to `api` under `scope` is allowed; returns the seconds waited."""
        waited = 0.0
        while (wait := self._take(scope, api)) > 0:
            self.sleep(wait)
            waited += wait
        return waited


# KEYS: one per band; ARGV: unused, then capacity and period per band. Returns 0 (taken) or ms to wait.
# The clock is Redis's own: processes on hosts whose clocks disagree still share one bucket correctly.
_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local wait = 0
local state = {}
for i, key in ipairs(KEYS) do
  local cap = tonumber(ARGV[i * 2])
  local period = tonumber(ARGV[i * 2 + 1])
  local rate = cap / period
  local v = redis.call('HMGET', key, 't', 's')
  local tokens = tonumber(v[1]) or cap
  local stamp = tonumber(v[2]) or now
  tokens = math.min(cap, tokens + math.max(0, now - stamp) * rate)
  state[i] = tokens
  if tokens < 1 then wait = math.max(wait, (1 - tokens) / rate) end
end
for i, key in ipairs(KEYS) do
  local tokens = state[i]
  if wait == 0 then tokens = tokens - 1 end
  redis.call('HSET', key, 't', tokens, 's', now)
  redis.call('PEXPIRE', key, math.ceil(tonumber(ARGV[i * 2 + 1]) * 1000) + 1000)
end
return math.ceil(wait * 1000)
"""


@dataclass
class RedisLimiter:
    """Buckets in Redis, shared by every server, worker and CLI process of the deployment."""

    redis: object
    default: list[Band]
    overrides: dict[str, list[Band]] = field(default_factory=dict)
    sleep: Callable[[float], None] = time.sleep
    _script: object = None

    def acquire(self, scope: str, api: str) -> float:
        """Block until a call to `api` under `scope` is allowed; returns the seconds waited."""
        if self._script is None:
            self._script = self.redis.register_script(_LUA)
        bands = self.overrides.get(api, self.default)
        keys = [f"siyu:ratelimit:{scope}:{api}:{int(c)}/{int(p)}" for c, p in bands]
        argv: list[float] = []
        for c, p in bands:
            argv += [c, p]
        waited = 0.0
        while True:
            ms = int(self._script(keys=keys, args=[0, *argv]))
            if ms <= 0:
                return waited
            self.sleep(ms / 1000)
            waited += ms / 1000


# WeCom also limits app messages per receiving staff member: 30 a minute and 1,000 an hour each.
PER_RECIPIENT = "message/send@recipient"
PER_RECIPIENT_BANDS = "30/60,1000/3600"


def limiter_from_settings(settings) -> LocalLimiter | RedisLimiter:
    """The limiter configured by SIYU_WECHAT_RATE_LIMITS / _OVERRIDES, in Redis when one is set."""
    default = parse_bands(settings.wechat_rate_limits)
    overrides = {PER_RECIPIENT: parse_bands(PER_RECIPIENT_BANDS)}
    overrides.update({api: parse_bands(spec) for api, spec in settings.wechat_rate_overrides.items()})
    if settings.redis_url:
        from config.redis import redis_for

        return RedisLimiter(redis_for(settings.redis_url), default, overrides)
    return LocalLimiter(default, overrides)
