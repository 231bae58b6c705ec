"""Mini-program server APIs Siyu uses."""
from __future__ import annotations

from bot.official_account import WeChatAppClient

# Characters Tencent allows per keyword kind of a subscribe (and new-style template) message; longer is 47003.
SUBSCRIBE_VALUE_LIMITS = {"thing": 20, "phrase": 5, "name": 10, "character_string": 32, "number": 32, "letter": 32,
                          "symbol": 5, "car_number": 8, "amount": 32, "phone_number": 17, "time": 64, "date": 64}


class MPClient(WeChatAppClient):
    """One mini-program: the SDK is on the mini-program's appid."""

    def code2session(self, js_code: str) -> dict:
        """sns/jscode2session: `openid`, `session_key` and, when bound, `unionid` for a wx.login code."""
        return self.sdk.wxa.code_to_session(js_code)

    def get_user_phone_number(self, code: str) -> dict:
        """wxa/business/getuserphonenumber: the phone behind a getPhoneNumber code (single use)."""
        return self.sdk.post("wxa/business/getuserphonenumber", data={"code": code},
                             api_base_url=self.creds.api_base)

    def send_subscribe(self, openid: str, template_id: str, data: dict, page: str | None = None,
                       miniprogram_state: str | None = None) -> dict:
        """cgi-bin/message/subscribe/send: a subscription message the user granted."""
        body: dict = {"touser": openid, "template_id": template_id, "data": data}
        if page:
            body["page"] = page
        if miniprogram_state:
            body["miniprogram_state"] = miniprogram_state
        return self.sdk.post("message/subscribe/send", data=body)

    def msg_sec_check(self, openid: str, content: str, scene: int = 2) -> dict:
        """wxa/msg_sec_check (v2): `result.suggest` is pass, review or risky."""
        body = {"version": 2, "openid": openid, "scene": scene, "content": content}
        return self.sdk.post("wxa/msg_sec_check", data=body, api_base_url=self.creds.api_base)
