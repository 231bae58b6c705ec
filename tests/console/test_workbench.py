"""The workbench's WeCom sign-in through the console: state bound to the browser, codes once, staff only."""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from fastapi.testclient import TestClient



@pytest.fixture
def wb(shop, sandbox):
    from siyu.app import create_app

    sandbox.add_staff("zhangsan", "张三")
    sandbox.add_staff("outsider", "外人")
    with TestClient(create_app()) as client:
        yield client, sandbox


def _authorize(client, userid):
    start = client.get("/console/workbench", follow_redirects=False)
    assert start.status_code == 303 and start.headers["location"] == "/console/workbench/signin"
    go = client.get("/console/workbench/signin", follow_redirects=False)
    url = go.headers["location"].split("#")[0]
    assert "access_token" not in url and "token" not in parse_qs(urlsplit(url).query)
    back = requests.get(url + f"&userid={userid}", allow_redirects=False, timeout=5).headers["location"]
    return urlsplit(back)


def test_staff_sign_in_through_wecom_and_a_code_works_once(wb, shop):
    client, _ = wb
    back = _authorize(client, "zhangsan")
    r = client.get(f"/console/workbench/oauth?{back.query}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/console/workbench"
    page = client.get("/console/workbench")
    assert "王小明" in page.text and "钱多多" not in page.text  # their own customers only
    # the same redirect again is refused: its state was used up with the sign-in
    assert client.get(f"/console/workbench/oauth?{back.query}").status_code == 403
    # and a code WeCom does not know (used, expired) is refused with WeCom's reason
    state = parse_qs(urlsplit(client.get("/console/workbench/signin", follow_redirects=False)
                              .headers["location"]).query)["state"][0]
    bad = client.get("/console/workbench/oauth", params={"code": "used-or-expired", "state": state})
    assert bad.status_code == 403 and "40029" in bad.text


def test_a_state_from_another_browser_or_a_non_synced_member_is_refused(wb):
    client, _ = wb
    back = _authorize(client, "outsider")
    with TestClient(client.app) as other:  # a browser that never asked to sign in
        assert other.get(f"/console/workbench/oauth?{back.query}").status_code == 403
    r = client.get(f"/console/workbench/oauth?{back.query}")
    assert r.status_code == 403 and "尚未同步" in r.text
