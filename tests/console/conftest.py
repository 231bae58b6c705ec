"""Fixtures of the console tests: an app client, signing in with a token, and a small store with members."""
from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from config.database import session_scope
from membership import service, tokens
from membership.identity import IdentityIn, bind
from membership.models import Role
from membership.tags import ensure_tag, tag_member
from tests.conftest import ADMIN_TOKEN

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token of the first form on a page."""
    found = CSRF.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def sign_in(client: TestClient, token: str = ADMIN_TOKEN, next: str = "/console/"):
    """Sign in through the form, as a browser does; returns the answer of the POST (not followed)."""
    page = client.get("/console/login")
    return client.post("/console/login", data={"token": token, "csrf": csrf_of(page.text), "next": next},
                       follow_redirects=False)


@pytest.fixture
def app(settings):
    from siyu.app import create_app

    return create_app()


@pytest.fixture
def client(app):
    """A browser-like client of the app (cookies kept, redirects not followed unless asked)."""
    with TestClient(app, base_url="http://testserver") as c:
        yield c


@pytest.fixture
def shop(settings):
    """Two stores, a manager token and a staff member for S1, members in both stores."""
    with session_scope() as s:
        s1 = service.create_store(s, code="S1", name="一号店")
        s2 = service.create_store(s, code="S2", name="二号店")
        s.flush()
        zhang = service.upsert_staff(s, userid="zhangsan", name="张三", store_id=s1.id)
        li = service.upsert_staff(s, userid="lisi", name="李四", store_id=s2.id)
        vip = ensure_tag(s, "VIP")
        ids = {}
        for key, name, store, staff, phone in (("a", "王小明", s1, zhang, "13800138001"),
                                                ("b", "赵小红", s1, zhang, "13800138002"),
                                                ("c", "钱多多", s2, li, "13800138003")):
            member = bind(s, [IdentityIn("phone", phone, verified=True)], name=name, store_id=store.id).member
            service.add_relation(s, staff=staff, member_id=member.id)
            ids[key] = member.id
        tag_member(s, ids["a"], vip)
        _, manager = tokens.create_token(s, name="店长", role=Role.store_manager, store="S1")
        _, marketer = tokens.create_token(s, name="运营", role=Role.marketer)
        _, staff_token = tokens.create_token(s, name="张三", role=Role.staff, staff="zhangsan")
    return {"ids": ids, "manager": manager, "marketer": marketer, "staff": staff_token}
