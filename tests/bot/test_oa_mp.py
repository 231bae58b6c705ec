"""Official-account and mini-program clients against the sandbox."""
from __future__ import annotations

import pytest

from bot.clients import mp_client, oa_client
from bot.errors import PermanentAPIError, RateLimitedError


def test_oa_user_info_qrcode_and_template_send_with_client_msg_id(sandbox):
    openid = sandbox.add_oa_follower(unionid="u-1")
    oa = oa_client()
    sandbox.add_oa_template("TPL")
    assert oa.get_user_info(openid)["unionid"] == "u-1"
    assert oa.create_qrcode("store1", expire_seconds=600)["ticket"]
    first = oa.send_template(openid, "TPL", {"k": {"value": "v"}}, client_msg_id="run1:42")
    again = oa.send_template(openid, "TPL", {"k": {"value": "v"}}, client_msg_id="run1:42")
    assert first["msgid"] == again["msgid"] and len(sandbox.oa_template_sends) == 1
    assert oa.send_subscribe_bizsend(openid, "TPL2", {"thing1": {"value": "x"}})["errcode"] == 0
    sandbox.unfollow_oa(openid)
    with pytest.raises(PermanentAPIError) as exc:
        oa.send_template(openid, "TPL", {})
    assert exc.value.errcode == 43004


def test_template_send_refuses_what_tencent_refuses_and_reports_each_fate(sandbox):
    # given a follower, one who blocks template messages, and one template with two keywords
    oa = oa_client()
    fan, blocking = sandbox.add_oa_follower(), sandbox.add_oa_follower()
    sandbox.oa_blocked.add(blocking)
    sandbox.add_oa_template("TPL", "thing1", "time2")
    good = {"thing1": {"value": "回访"}, "time2": {"value": "2026-03-10 10:00"}}
    # when template/send is called wrongly, then Tencent's documented errcodes answer
    for openid, template, data, mini, errcode in [
            ("oNOBODY", "TPL", good, None, 40003), (fan, "NOPE", good, None, 40037),
            (fan, "TPL", {"thing1": {"value": "字" * 21}}, None, 47003),
            (fan, "TPL", {"other": {"value": "x"}}, None, 47003),
            (fan, "TPL", good, {"appid": "wxSOMEONEELSE", "pagepath": "pages/index/index"}, 40013),
            (fan, "TPL", good, {"appid": sandbox.mp_app_id, "pagepath": "pages/nowhere"}, 41030)]:
        with pytest.raises(PermanentAPIError) as exc:
            oa.send_template(openid, template, data, miniprogram=mini)
        assert exc.value.errcode == errcode, (template, data, mini)
    # and a right call is sent, and its fate is reported once
    page = {"appid": sandbox.mp_app_id, "pagepath": "pages/index/index"}
    first = oa.send_template(fan, "TPL", good, miniprogram=page)
    second = oa.send_template(blocking, "TPL", good)
    assert sandbox.take_template_results() == [(fan, first["msgid"], "success"),
                                               (blocking, second["msgid"], "failed:user block")]
    assert sandbox.take_template_results() == []
    # and the rate limit answers 45009
    sandbox.set_rate_limits("1/60")
    oa.send_template(fan, "TPL", good)
    with pytest.raises(RateLimitedError) as exc:
        oa.send_template(fan, "TPL", good)
    assert exc.value.errcode == 45009


def test_mp_login_and_phone_codes_are_single_use(sandbox):
    mp = mp_client()
    code = sandbox.new_login_code(unionid="u-2")
    session = mp.code2session(code)
    assert session["openid"] and session["unionid"] == "u-2" and session["session_key"]
    with pytest.raises(PermanentAPIError) as exc:
        mp.code2session(code)
    assert exc.value.errcode == 40163  # Tencent: "code been used"
    with pytest.raises(PermanentAPIError) as exc:
        mp.code2session("never-issued")
    assert exc.value.errcode == 40029
    phone = sandbox.new_phone_code("13912345678")
    assert mp.get_user_phone_number(phone)["phone_info"]["purePhoneNumber"] == "13912345678"
    with pytest.raises(PermanentAPIError) as exc:
        mp.get_user_phone_number(phone)
    assert exc.value.errcode == 40029  # Tencent documents one code for unknown, expired and used phone codes


def test_mp_subscribe_send_needs_a_grant_and_msg_sec_check(sandbox):
    mp = mp_client()
    openid = sandbox.add_mp_user()
    with pytest.raises(PermanentAPIError) as exc:
        mp.send_subscribe(openid, "TPL", {"thing1": {"value": "x"}})
    assert exc.value.errcode == 43101
    sandbox.grant_subscribe(openid, "TPL")
    for page, data, errcode in [("pages/nowhere", {"thing1": {"value": "x"}}, 41030),
                                ("pages/index/index", {"thing1": {"value": "x" * 21}}, 47003)]:
        with pytest.raises(PermanentAPIError) as exc:
            mp.send_subscribe(openid, "TPL", data, page=page)
        assert exc.value.errcode == errcode
    assert mp.send_subscribe(openid, "TPL", {"thing1": {"value": "x"}}, page="pages/index/index?a=1")["errcode"] == 0
    with pytest.raises(PermanentAPIError) as exc:  # the grant was good for one message
        mp.send_subscribe(openid, "TPL", {"thing1": {"value": "x"}})
    assert exc.value.errcode == 43101
    assert mp.msg_sec_check(openid, "你好")["result"]["suggest"] == "pass"
    assert mp.msg_sec_check(openid, "代开发票")["result"]["suggest"] == "risky"


def test_jscode2session_refuses_what_tencent_refuses(sandbox, sandbox_server):
    # given the sandbox's jscode2session spoken to directly, as Tencent's is
    import requests

    url = f"{sandbox_server.rstrip('/')}/sandbox/wechat/sns/jscode2session"
    code = sandbox.new_login_code()
    good = {"appid": sandbox.mp_app_id, "secret": sandbox.mp_secret, "js_code": code,
            "grant_type": "authorization_code"}

    def errcode(**changes):
        return requests.get(url, params={**good, **changes}, timeout=10).json().get("errcode")

    # then a wrong appid, secret or grant_type, a missing or unknown code are refused with Tencent's errcodes
    assert errcode(appid="wx-other") == 40013
    assert errcode(secret="wrong") == 40001
    assert errcode(grant_type="client_credential") == 40002
    assert errcode(js_code="") == 41008
    assert errcode(js_code="unknown") == 40029
    # and the code works once, then is 40163
    assert errcode() is None
    assert errcode() == 40163


def test_subscribe_send_refuses_data_tencent_refuses(sandbox):
    mp = mp_client()
    openid = sandbox.add_mp_user()
    sandbox.grant_subscribe(openid, "TPL")
    refused = ({}, {"thing1": {"value": "x" * 21}}, {"phrase1": {"value": "太长的短语啊"}}, {"nope1": {"value": "x"}})
    for data in refused:
        with pytest.raises(PermanentAPIError) as exc:
            mp.send_subscribe(openid, "TPL", data)
        assert exc.value.errcode == 47003
    assert mp.send_subscribe(openid, "TPL", {"thing1": {"value": "x" * 20}})["errcode"] == 0
