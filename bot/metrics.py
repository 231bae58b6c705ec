"""Prometheus counters of Tencent API calls (summed over every process at /metrics)."""
from __future__ import annotations

from config.metrics import Counter, Histogram

API_CALLS = Counter(
    "siyu_wechat_api_calls",
    "Tencent API calls by channel, API and errcode (0 = success, 'http' = no JSON answer)",
    ["channel", "api", "errcode"],
)
API_SECONDS = Histogram(
    "siyu_wechat_api_seconds",
    "Round-trip time of Tencent API calls",
    ["channel", "api"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
LIMITER_WAITS = Counter(
    "siyu_wechat_limiter_waits",
    "Calls the local rate limiter held back before sending",
    ["channel", "api"],
)
TOKEN_FETCHES = Counter(
    "siyu_wechat_token_fetches",
    "Access tokens fetched from Tencent (after the shared cache missed or was stale)",
    ["channel"],
)
