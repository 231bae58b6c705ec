"""WeCom web sign-in against the sandbox over HTTP: the authorize page, and auth/getuserinfo's codes and errors."""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from bot.clients import wecom_client
from bot.credentials import wecom_oauth_base
from bot.errors import WeChatAPIError
from config.settings import get_settings


@pytest.fixture
def corp(sandbox):
    sandbox.add_staff("zhangsan", "张三")
    return sandbox


def _code_via_authorize(url: str, userid: str) -> str:
    r = requests.get(url.split("#")[0] + f"&userid={userid}", allow_redirects=False, timeout=5)
    assert r.status_code == 302
    query = parse_qs(urlsplit(r.headers["location"]).query)
    assert query["state"] == ["st4te"]
    return query["code"][0]


def test_the_authorize_page_hands_back_a_code_that_names_the_member_once(corp):
    # given the snsapi_base URL the console sends a browser to
    client = wecom_client()
    url = client.oauth_url(wecom_oauth_base(get_settings()), "http://127.0.0.1:1/console/workbench/oauth", "st4te")
    assert "scope=snsapi_base" in url and url.endswith("#wechat_redirect")
    # when the member passes the page, then the code it hands back names them
    code = _code_via_authorize(url, "zhangsan")
    assert client.user_by_code(code)["userid"] == "zhangsan"
    # and a code used once is 40029 the second time, as WeCom answers
    with pytest.raises(WeChatAPIError) as second:
        client.user_by_code(code)
    assert second.value.errcode == 40029


def test_an_unknown_or_expired_code_is_40029(corp):
    client = wecom_client()
    with pytest.raises(WeChatAPIError) as unknown:
        client.user_by_code("nope")
    assert unknown.value.errcode == 40029
    code = corp.issue_oauth_code("zhangsan")
    corp.oauth_codes[code]["expires_at"] = corp.now() - 1  # five minutes have passed
    with pytest.raises(WeChatAPIError) as expired:
        client.user_by_code(code)
    assert expired.value.errcode == 40029


def test_the_authorize_page_refuses_what_wecom_refuses(corp, sandbox_server):
    base = f"{sandbox_server}sandbox/open/connect/oauth2/authorize"
    good = {"appid": corp.corp_id, "redirect_uri": "http://127.0.0.1:1/cb", "response_type": "code",
            "scope": "snsapi_base", "state": "s"}
    for bad in ({"appid": "wrong"}, {"scope": "snsapi_userinfo"}, {"redirect_uri": "javascript:alert(1)"},
                {"scope": "snsapi_privateinfo"}, {"userid": "nobody"}):
        assert requests.get(base, params={**good, **bad}, timeout=5).status_code == 400, bad
    assert "张三" in requests.get(base, params=good, timeout=5).text
