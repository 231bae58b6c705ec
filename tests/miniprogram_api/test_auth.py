"""Session tokens: only a live token Siyu signed for a mini-program login opens /mp/v1; nothing else does."""
from __future__ import annotations

from datetime import timedelta

import pytest

from config.database import session_scope
from config.types import utcnow
from miniprogram_api.auth import issue_token
from miniprogram_api.exceptions import Unauthorized
from tests.campaigns.bookings.helpers import ADMIN, login


def _me(client, token: str):
    return client.get("/mp/v1/me", headers={"Authorization": f"Bearer {token}"})


def test_a_fresh_login_token_opens_the_card_and_no_token_is_401(client, sandbox):
    auth, member_id, _ = login(client, sandbox)
    assert client.get("/mp/v1/me", headers=auth).json()["member_id"] == member_id
    assert client.get("/mp/v1/me").status_code == 401
    assert client.get("/mp/v1/bookings").status_code == 401


def test_a_forged_or_tampered_token_is_401(client, sandbox):
    auth, member_id, _ = login(client, sandbox)
    token = auth["Authorization"].split()[1]
    prefix, sid, mid, exp, sig = token.split(".")
    # when someone changes the member id, the expiry, or the signature, or signs with another key
    tampered = [f"{prefix}.{sid}.{int(mid) + 1}.{exp}.{sig}", f"{prefix}.{sid}.{mid}.{int(exp) + 3600}.{sig}",
                f"{prefix}.{sid}.{mid}.{exp}.{sig[:-2]}AA", "mp1.1.1.9999999999.bm90LWEtc2lnbmF0dXJl", "garbage",
                token + "x" * 300]
    # then each is 401
    for bad in tampered:
        assert _me(client, bad).status_code == 401, bad


def test_a_token_signed_with_another_deployments_key_is_401(client, sandbox, monkeypatch):
    from config.settings import get_settings

    _, member_id, _ = login(client, sandbox)
    monkeypatch.setenv("SIYU_SECRET_KEY", "another-deployment-secret-key-0123456789")
    get_settings.cache_clear()
    foreign = issue_token(member_id)
    monkeypatch.setenv("SIYU_SECRET_KEY", "this-deployment-secret-key-0123456789abc")
    get_settings.cache_clear()
    assert _me(client, foreign).status_code == 401
    assert _me(client, issue_token(member_id)).status_code == 200


def test_an_expired_token_is_401(client, sandbox):
    _, member_id, _ = login(client, sandbox)
    with session_scope() as s:
        stale = issue_token(member_id, session=s, ttl=timedelta(days=7), now=utcnow() - timedelta(days=8))
    assert _me(client, stale).status_code == 401


def test_an_old_token_replayed_after_a_new_login_is_401(client, sandbox):
    # given a consumer logged in twice (WeChat ends the first session_key; Siyu ends the first token)
    first, member_id, openid = login(client, sandbox)
    second, again, _ = login(client, sandbox, openid)
    assert again == member_id
    # then the first token is refused and the second works
    assert client.get("/mp/v1/me", headers=first).status_code == 401
    assert client.get("/mp/v1/me", headers=second).status_code == 200


def test_an_admin_token_is_no_session_token_and_a_session_token_no_admin_token(client, sandbox):
    auth, _, _ = login(client, sandbox)
    assert client.get("/mp/v1/me", headers=ADMIN).status_code == 401
    assert client.get("/api/v1/stores", headers=auth).status_code == 401
    r = client.post("/api/v1/tokens", json={"name": "m", "role": "marketer"}, headers=ADMIN)
    assert _me(client, r.json()["token"]).status_code == 401


def test_a_reused_or_unknown_login_code_is_401_and_binds_nothing(client, sandbox):
    openid = sandbox.add_mp_user()
    code = sandbox.new_login_code(openid)
    assert client.post("/mp/v1/session", json={"code": code}).status_code == 200
    r = client.post("/mp/v1/session", json={"code": code})
    assert r.status_code == 401 and "40163" in r.json()["detail"]
    r = client.post("/mp/v1/session", json={"code": "never-issued"})
    assert r.status_code == 401 and "40029" in r.json()["detail"]
    assert client.post("/mp/v1/session", json={"code": ""}).status_code == 422


def test_the_session_lifetime_is_SIYU_MP_SESSION_TTL_HOURS(client, sandbox, monkeypatch):
    from sqlalchemy import select

    from config.settings import get_settings
    from miniprogram_api.auth import verify
    from miniprogram_api.models import MPSession

    # given a deployment whose sessions live 2 hours
    monkeypatch.setenv("SIYU_MP_SESSION_TTL_HOURS", "2")
    get_settings.cache_clear()
    # when a consumer logs in
    auth, member_id, _ = login(client, sandbox)
    token = auth["Authorization"].removeprefix("Bearer ")
    # then the session ends 2 hours after the login, not 7 days
    with session_scope() as s:
        row = s.scalar(select(MPSession).where(MPSession.member_id == member_id))
        assert row.expires_at - row.created_at == timedelta(hours=2)
        assert verify(s, token, now=row.created_at + timedelta(minutes=119)) == member_id
        with pytest.raises(Unauthorized, match="expired"):
            verify(s, token, now=row.created_at + timedelta(hours=2))
