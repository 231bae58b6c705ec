"""Official-account and mini-program clients against the sandbox."""
from __future__ import annotations

import pytest

from bot.clients import mp_client, oa_client
from bot.errors import PermanentAPIError


def test_oa_user_info_qrcode_and_template_send_with_client_msg_id(sandbox):
    openid = sandbox.add_oa_follower(unionid="u-1")
    oa = oa_client()
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


def test_mp_login_and_phone_codes_are_single_use(sandbox):
    mp = mp_client()
    code = sandbox.new_login_code(unionid="u-2")
    session = mp.code2session(code)
    assert session["openid"] and session["unionid"] == "u-2" and session["session_key"]
    with pytest.raises(PermanentAPIError) as exc:
        mp.code2session(code)
    assert exc.value.errcode == 40029
    phone = sandbox.new_phone_code("13912345678")
    assert mp.get_user_phone_number(phone)["phone_info"]["purePhoneNumber"] == "13912345678"
    with pytest.raises(PermanentAPIError):
        mp.get_user_phone_number(phone)


def test_mp_subscribe_send_needs_a_grant_and_msg_sec_check(sandbox):
    mp = mp_client()
    openid = sandbox.add_mp_user()
    with pytest.raises(PermanentAPIError) as exc:
        mp.send_subscribe(openid, "TPL", {"thing1": {"value": "x"}})
    assert exc.value.errcode == 43101
    sandbox.grant_subscribe(openid, "TPL")
    assert mp.send_subscribe(openid, "TPL", {"thing1": {"value": "x"}}, page="pages/index")["errcode"] == 0
    assert mp.msg_sec_check(openid, "你好")["result"]["suggest"] == "pass"
    assert mp.msg_sec_check(openid, "代开发票")["result"]["suggest"] == "risky"
