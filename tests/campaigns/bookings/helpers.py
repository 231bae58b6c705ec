"""A small booking world over the HTTP APIs: two stores, staff, two services, a schedule; consumers logging in."""
from __future__ import annotations

from datetime import date, datetime, timedelta

from config.settings import get_settings
from config.types import utcnow
from tests.conftest import ADMIN_TOKEN

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
HOURS = [{"weekday": d, "open": "10:00", "close": "12:00"} for d in range(1, 8)]


def tomorrow() -> date:
    """Tomorrow in business time (every slot of it is in the future)."""
    return (utcnow().astimezone(get_settings().tz) + timedelta(days=1)).date()


def at(day: date, clock: str) -> datetime:
    """An aware business-time instant."""
    h, m = (int(x) for x in clock.split(":"))
    return datetime(day.year, day.month, day.day, h, m, tzinfo=get_settings().tz)


def build_world(client) -> dict:
    """Stores S1, S2; staff zhang, wang (S1) and li (S2); eye-test and watch-repair in S1; S1 open 10–12, 3 a slot."""
    for code in ("S1", "S2"):
        assert client.post("/api/v1/stores", json={"code": code, "name": f"店{code}"}, headers=ADMIN).status_code == 201
    for userid, store in (("zhang", "S1"), ("wang", "S1"), ("li", "S2")):
        r = client.post("/api/v1/staff", json={"userid": userid, "name": userid, "store": store}, headers=ADMIN)
        assert r.status_code == 201, r.text
    r = client.post("/api/v1/services", headers=ADMIN, json={
        "code": "eye-test", "name": "验光", "duration_minutes": 30, "price_fen": 0, "stores": ["S1"],
        "reminder_template_id": "TPL-REMIND", "remind_minutes_before": 120})
    assert r.status_code == 201, r.text
    r = client.post("/api/v1/services", headers=ADMIN, json={
        "code": "watch-repair", "name": "手表维修", "duration_minutes": 60, "price_fen": 5000, "stores": ["S1"],
        "kind": "repair", "progress_template_id": "TPL-PROGRESS"})
    assert r.status_code == 201, r.text
    r = client.post("/api/v1/stores/S1/schedule", json={"hours": HOURS, "capacity": 3}, headers=ADMIN)
    assert r.status_code == 200, r.text
    tokens = {}
    for name, body in {"manager1": {"name": "mgr1", "role": "store_manager", "store": "S1"},
                       "manager2": {"name": "mgr2", "role": "store_manager", "store": "S2"},
                       "zhang": {"name": "z", "role": "staff", "staff": "zhang"},
                       "li": {"name": "l", "role": "staff", "staff": "li"},
                       "marketer": {"name": "m", "role": "marketer"}}.items():
        r = client.post("/api/v1/tokens", json=body, headers=ADMIN)
        assert r.status_code == 201, r.text
        tokens[name] = {"Authorization": f"Bearer {r.json()['token']}"}
    return tokens


def login(client, sandbox, openid: str | None = None, unionid: str | None = None) -> tuple[dict, int, str]:
    """A consumer logs in through the sandbox mini-program: (auth headers, member id, openid)."""
    openid = sandbox.add_mp_user(openid, unionid)
    r = client.post("/mp/v1/session", json={"code": sandbox.new_login_code(openid)})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}, r.json()["member_id"], openid
