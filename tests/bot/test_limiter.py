"""The token-bucket limiter holds bursts to the configured rate."""
from __future__ import annotations

from bot.clients import reset_clients, wecom_client
from bot.limiter import LocalLimiter, RedisLimiter, parse_bands
from config.settings import get_settings


class FakeClock:
    def __init__(self):
        self.t = 0.0
        self.stamps: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


def _max_in_window(stamps: list[float], window: float) -> int:
    best, j = 0, 0
    for i, t in enumerate(stamps):
        while stamps[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


def test_given_a_burst_of_500_then_calls_are_spread_to_the_configured_rate():
    # given: 100 calls per second with a bucket of 100, plus 1000 per minute
    clock = FakeClock()
    limiter = LocalLimiter(parse_bands("100/1,1000/60"), clock=clock, sleep=clock.sleep)
    # when
    for _ in range(500):
        limiter.acquire("corp", "externalcontact/get")
        clock.stamps.append(clock.t)
    # then: by any time t at most bucket + rate·t calls went out, in any window w at most bucket + rate·w,
    # and the burst took the time the rate implies
    assert all(n + 1 <= 100 + 100 * t + 1e-6 for n, t in enumerate(clock.stamps))
    assert _max_in_window(clock.stamps, 1.0) <= 100 + 100 * 1.0 + 1
    assert _max_in_window(clock.stamps, 2.0) <= 100 + 100 * 2.0 + 1
    assert clock.t >= (500 - 100) / 100 - 1e-6
    assert clock.t <= (500 - 100) / 100 + 0.1


def test_buckets_are_per_scope_and_api_and_overridable():
    clock = FakeClock()
    limiter = LocalLimiter(parse_bands("2/1"), {"message/send": parse_bands("1/1")}, clock=clock, sleep=clock.sleep)
    for _ in range(2):
        assert limiter.try_acquire("corpA", "user/list")
    assert not limiter.try_acquire("corpA", "user/list")
    assert limiter.try_acquire("corpB", "user/list")
    assert limiter.try_acquire("corpA", "message/send")
    assert not limiter.try_acquire("corpA", "message/send")


def test_given_redis_when_two_limiters_share_it_then_they_share_the_bucket(redis_url):
    from redis import Redis

    waits = []
    a = RedisLimiter(Redis.from_url(redis_url), parse_bands("5/60"), sleep=waits.append)
    b = RedisLimiter(Redis.from_url(redis_url), parse_bands("5/60"),
                     sleep=lambda s: (_ for _ in ()).throw(TimeoutError(s)))
    for _ in range(5):
        assert a.acquire("corp", "user/list") == 0
    try:
        b.acquire("corp", "user/list")
        raised = False
    except TimeoutError as exc:
        raised = exc.args[0] > 0
    assert raised, "the sixth call, from another process, must wait"


def test_given_the_sandbox_enforces_a_rate_when_the_client_is_configured_below_it_then_500_calls_see_no_45009(
        sandbox, monkeypatch):
    # given: the sandbox refuses more than 60 calls in a burst refilled at 600/s; the client allows 50 at 500/s
    sandbox.set_rate_limits("60/0.1")
    monkeypatch.setenv("SIYU_WECHAT_RATE_LIMITS", "50/0.1")
    get_settings.cache_clear()
    reset_clients()
    sandbox.add_staff("zhangsan")
    client = wecom_client()
    # when
    for _ in range(500):
        client.list_follow_users()
    # then: every call was answered, none refused for frequency, none retried
    assert sandbox.calls["externalcontact/get_follow_user_list"] == 500


def test_app_messages_to_one_staff_member_keep_to_30_a_minute(sandbox):
    from bot.limiter import PER_RECIPIENT_BANDS, PER_RECIPIENT, parse_bands
    from bot.wecom import WeComClient

    # given a client whose limiter runs on a fake clock, and two staff members
    sandbox.add_staff("a")
    sandbox.add_staff("b")
    clock = FakeClock()
    limiter = LocalLimiter(parse_bands("100000/1"), {PER_RECIPIENT: parse_bands(PER_RECIPIENT_BANDS)},
                           clock=clock, sleep=clock.sleep)
    real = wecom_client()
    client = WeComClient(real.creds, real.contact, real.agent, limiter=limiter)
    text = {"msgtype": "text", "text": {"content": "hi"}}
    # when 31 messages go to `a`, then the 31st waits for the minute's band to refill
    for _ in range(30):
        client.send_message({"touser": "a", **text})
    assert clock.t == 0
    client.send_message({"touser": "a", **text})
    assert clock.t >= 60 / 30 - 1e-6
    # and another staff member has a band of their own
    before = clock.t
    client.send_message({"touser": "b", **text})
    assert clock.t == before
    assert len(sandbox.app_messages) == 32
