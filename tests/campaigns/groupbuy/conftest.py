"""Fixtures of group-buy: Siyu served over real HTTP (with its sandbox), consumers, offers, and a queue whose
delayed jobs wait for the test to say their time has come."""
from __future__ import annotations

import json
import threading
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, update

from bot import pay_crypto as pc
from bot.credentials import mp_credentials, sandbox_file, sandbox_pay_credentials
from config.database import session_scope
from config.queue import in_process_runner, using
from config.settings import get_settings
from config.types import utcnow
from campaigns.groupbuy.models import Group, Order
from membership.identity import IdentityIn, bind
from miniprogram_api.auth import issue_token
from tests.conftest import ADMIN_TOKEN

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


class Clocked:
    """A queue backend: jobs due now run in the in-process runner; delayed ones wait until `run_delayed()`."""

    def __init__(self) -> None:
        self.delayed: list = []
        self._lock = threading.Lock()

    def dispatch(self, job) -> None:
        if job.at is None and job.in_ is None:
            in_process_runner().dispatch(job)
            return
        with self._lock:
            self.delayed.append(job)

    def run_delayed(self, name: str | None = None) -> int:
        """Run the delayed jobs (of the function `name`), as if their time had come; how many ran."""
        with self._lock:
            due = [j for j in self.delayed if name is None or j.func.__name__ == name]
            self.delayed = [j for j in self.delayed if j not in due]
        for job in due:
            job.func(*job.args)
        return len(due)


@pytest.fixture
def clock():
    """The queue of the test: delayed jobs (hold releases, deadlines, refund checks) run when the test says."""
    with using(Clocked()) as backend:
        yield backend
        in_process_runner().drain(60)


@pytest.fixture
def siyu(settings, clock, monkeypatch):
    """Siyu (its sandbox mounted at /sandbox) served on a free port; SIYU_PUBLIC_URL points at it, so prepay
    calls reach the sandbox and the sandbox's notifications reach /webhooks/wechatpay. Yields its base URL."""
    from bot.clients import reset_clients
    from bot.sandbox.serve import free_port, serve_in_background
    from bot.sandbox.state import reset_state
    from siyu.app import create_app

    port = free_port()
    monkeypatch.setenv("SIYU_PUBLIC_URL", f"http://127.0.0.1:{port}/")
    monkeypatch.setenv("SIYU_WECHAT_BACKOFF_BASE", "0.001")
    get_settings.cache_clear()
    reset_clients()
    reset_state()
    served = serve_in_background(create_app(), port=port)
    yield served.url
    in_process_runner().drain(60)
    served.stop()
    reset_clients()


@pytest.fixture
def http(siyu):
    """An HTTP client of the served Siyu."""
    with httpx.Client(base_url=siyu, timeout=30) as client:
        yield client


def consumer(n: int, name: str | None = None) -> tuple[int, dict]:
    """A mini-program user (member with an MP openid) and the headers of their session."""
    appid = mp_credentials(get_settings()).app_id
    with session_scope() as s:
        member = bind(s, [IdentityIn("mp_openid", f"oMP{n:06d}", scope=appid)], name=name or f"顾客{n}").member
    return member.id, {"Authorization": f"Bearer {issue_token(member.id)}"}


def make_offer(http: httpx.Client, **overrides) -> dict:
    """A group-buy offer on sale now (¥99 for groups of 3, unless overridden)."""
    now = utcnow()
    body = {"name": "双人洗牙套餐", "price_fen": 9900, "original_price_fen": 19900, "group_size": 3,
            "time_limit_minutes": 60, "stock": 30, "starts_at": (now - timedelta(minutes=1)).isoformat(),
            "ends_at": (now + timedelta(days=7)).isoformat(), "stores": []} | overrides
    answer = http.post("/api/v1/groupbuy/offers", json=body, headers=ADMIN)
    assert answer.status_code == 201, answer.text
    return answer.json()


def pay(out_trade_no: str) -> httpx.Response:
    """The consumer pays in WeChat: the sandbox marks the order paid and notifies Siyu (signed, over HTTP)."""
    from bot.sandbox.callbacks import notify_paid

    return notify_paid(out_trade_no)


def time_passes(*, holds: bool = False, deadlines: bool = False) -> None:
    """Move every open hold and/or group deadline into the past (what the clock would do)."""
    past = utcnow() - timedelta(seconds=1)
    with session_scope() as s:
        if holds:
            s.execute(update(Order).where(Order.status == "pending").values(hold_until=past))
        if deadlines:
            s.execute(update(Group).where(Group.status == "open").values(expires_at=past))


def refunds_settle(clock: Clocked | None = None, *, notify: bool = True) -> list:
    """Time passes at WeChat Pay until every PROCESSING refund has succeeded. With `notify`, WeChat Pay sends each
    REFUND.SUCCESS notification (what Siyu answered, each); with `clock`, Siyu's delayed refund checks (the refund
    query) run. Then the jobs due are drained."""
    from bot.sandbox.callbacks import settle_refunds
    from bot.sandbox.pay_state import REFUND_SETTLES_AFTER
    from bot.sandbox.state import get_state

    get_state().advance(REFUND_SETTLES_AFTER + 1)
    answers = settle_refunds() if notify else []
    drain()
    if clock is not None:
        clock.run_delayed("refund_job")
        drain()
    return answers


def drain() -> None:
    """Wait for every job due now (inbox events, refunds) to finish."""
    assert in_process_runner().drain(120), "background jobs did not finish"


def order_row(out_trade_no: str) -> Order:
    """The order as stored."""
    with session_scope() as s:
        return s.scalar(select(Order).where(Order.out_trade_no == out_trade_no))


def signed_notification(resource: dict, *, event_type: str = "TRANSACTION.SUCCESS", original_type: str = "transaction",
                        timestamp: int | None = None, key_path: str | None = None, serial: str | None = None,
                        apiv3_key: str | None = None) -> tuple[dict, bytes]:
    """Headers and body of a Pay v3 notification as WeChat Pay sends it (sandbox merchant, by default)."""
    import secrets

    settings = get_settings()
    creds = sandbox_pay_credentials(settings)
    enc = pc.aead_encrypt(apiv3_key or creds.apiv3_key, json.dumps(resource, ensure_ascii=False).encode(),
                          original_type)
    envelope = {"id": secrets.token_hex(18), "create_time": "2026-01-01T10:00:00+08:00",
                "resource_type": "encrypt-resource", "event_type": event_type, "summary": "支付成功",
                "resource": {**enc, "original_type": original_type}}
    body = json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()
    key = pc.load_private_key(key_path or str(sandbox_file(settings, "pay_platform_key.pem")))
    ts, nonce = str(timestamp if timestamp is not None else int(utcnow().timestamp())), secrets.token_hex(16)
    headers = {"Wechatpay-Timestamp": ts, "Wechatpay-Nonce": nonce, "Wechatpay-Serial": serial or creds.public_key_id,
               "Wechatpay-Signature": pc.rsa_sign(key, f"{ts}\n{nonce}\n{body.decode()}\n"),
               "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048", "Content-Type": "application/json"}
    return headers, body
