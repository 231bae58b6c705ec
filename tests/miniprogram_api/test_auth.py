"""Mini-program session tokens: signed with the secret key, with an expiry; anything else is 401."""
from __future__ import annotations

import time

from fastapi.testclient import TestClient

from miniprogram_api.auth import issue_token, member_of
from tests.conftest import ADMIN_TOKEN


def test_a_token_names_its_member_until_it_expires_and_a_changed_one_names_nobody(settings):
    token = issue_token(42)
    assert member_of(token) == 42
    member, expiry, sig = token.split(".")
    assert member_of(f"43.{expiry}.{sig}") is None  # another member under the same signature
    assert member_of(f"42.{int(expiry) + 1}.{sig}") is None  # a longer life
    assert member_of(token, now=time.time() + 8 * 24 * 3600) is None  # expired
    assert member_of("") is None and member_of("a.b.c") is None


def test_the_groupbuy_api_refuses_an_admin_token_a_forged_one_and_none_with_401(settings):
    from siyu.app import create_app

    with TestClient(create_app()) as client:
        for headers in ({}, {"Authorization": f"Bearer {ADMIN_TOKEN}"}, {"Authorization": "Bearer 1.9999999999.x"}):
            answer = client.get("/mp/v1/groupbuy/offers/1", headers=headers)
            assert answer.status_code == 401 and "session token" in answer.json()["detail"]
        # and a session token is no admin token
        admin = client.get("/api/v1/groupbuy/offers/1", headers={"Authorization": f"Bearer {issue_token(1)}"})
        assert admin.status_code == 401
