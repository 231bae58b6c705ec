"""Official-account server APIs Siyu uses."""
from __future__ import annotations

from bot.credentials import WeChatAppCredentials


class WeChatAppClient:
    """One WeChat app (official account or mini-program): `sdk` is a pinned `wechatpy.WeChatClient`."""

    def __init__(self, creds: WeChatAppCredentials, sdk):
        self.creds = creds
        self.sdk = sdk

    def access_token(self) -> str:
        """The app's shared access token."""
        return self.sdk.access_token

    def get_api_domain_ip(self) -> dict:
        """cgi-bin/get_api_domain_ip: the API's addresses; the cheapest call that proves token and API answer now."""
        return self.sdk.get("get_api_domain_ip")


class OAClient(WeChatAppClient):
    """One official account."""

    def get_user_info(self, openid: str, lang: str = "zh_CN") -> dict:
        """cgi-bin/user/info: a follower (subscribe, unionid, subscribe_scene…)."""
        return self.sdk.user.get(openid, lang=lang)

    def create_qrcode(self, scene_str: str, expire_seconds: int | None = None) -> dict:
        """cgi-bin/qrcode/create: a string-scene QR code, temporary when `expire_seconds` is given."""
        if expire_seconds:
            body = {"expire_seconds": expire_seconds, "action_name": "QR_STR_SCENE",
                    "action_info": {"scene": {"scene_str": scene_str}}}
        else:
            body = {"action_name": "QR_LIMIT_STR_SCENE", "action_info": {"scene": {"scene_str": scene_str}}}
        return self.sdk.qrcode.create(body)

    def send_template(self, openid: str, template_id: str, data: dict, url: str | None = None,
                      miniprogram: dict | None = None, client_msg_id: str | None = None) -> dict:
        """cgi-bin/message/template/send; `client_msg_id` makes Tencent drop a repeated send."""
        body: dict = {"touser": openid, "template_id": template_id, "data": data}
        if url:
            body["url"] = url
        if miniprogram:
            body["miniprogram"] = miniprogram
        if client_msg_id:
            body["client_msg_id"] = client_msg_id
        return self.sdk.post("message/template/send", data=body)

    def send_subscribe_bizsend(self, openid: str, template_id: str, data: dict, page: str | None = None,
                               miniprogram: dict | None = None) -> dict:
        """cgi-bin/message/subscribe/bizsend: a one-time subscription message to a follower."""
        body: dict = {"touser": openid, "template_id": template_id, "data": data}
        if page:
            body["page"] = page
        if miniprogram:
            body["miniprogram"] = miniprogram
        return self.sdk.post("message/subscribe/bizsend", data=body)
