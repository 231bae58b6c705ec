"""The sandbox official account and mini-program: followers, QR codes, sent messages, login and phone codes."""
from __future__ import annotations

from collections import Counter

CODE_TTL = 300  # seconds: wx.login and getPhoneNumber codes live five minutes, and are single use
RISKY_WORDS = ("赌博", "代开发票", "违禁")


# Pages of the sandbox mini-program: what Siyu's messages and invites open.
MP_PAGES = ("pages/index/index", "pages/booking/detail", "pages/booking/service", "pages/groupbuy/offer")


class WeChatState:
    """Mixed into SandboxState."""

    def _init_wechat(self) -> None:
        self.oa_followers: dict[str, dict] = {}
        self.oa_qrcodes: dict[str, dict] = {}  # ticket -> {scene_str, expire_at}
        self.oa_template_sends: list[dict] = []
        self.oa_client_msg_ids: dict[tuple[str, str], int] = {}  # (openid, client_msg_id) -> msgid (repeats dropped)
        self.oa_bizsends: list[dict] = []
        self.oa_templates: dict[str, tuple[str, ...]] = {}  # template_id -> its keywords (empty: any)
        self.oa_blocked: set[str] = set()  # followers who refuse the account's template messages
        self.oa_template_results: list[tuple[str, int, str]] = []  # (openid, msgid, Status) not yet pushed
        self.mp_pages: set[str] = set(MP_PAGES)  # pages of the published mini-program (41030 for others)
        self.mp_users: dict[str, dict] = {}  # openid -> {openid, unionid, session_key}
        self.mp_login_codes: dict[str, dict] = {}
        self.mp_phone_codes: dict[str, dict] = {}
        self.mp_subscribe_sends: list[dict] = []
        self.mp_grants: Counter = Counter()  # (openid, template_id) -> one-time grants accepted and not used
        self.custom_sends: list[dict] = []  # customer-service messages, each with the "app" that sent it

    def add_oa_follower(self, openid: str | None = None, unionid: str | None = None, nickname: str = "粉丝",
                        scene: str = "ADD_SCENE_QR_CODE", qr_scene_str: str = "") -> str:
        """A follower of the sandbox official account; returns the openid."""
        with self.lock:
            openid = openid or self.new_id("o", 27)
            self.oa_followers[openid] = {
                "subscribe": 1, "openid": openid, "language": "zh_CN", "subscribe_time": int(self.now()),
                "remark": "", "groupid": 0, "tagid_list": [], "subscribe_scene": scene, "qr_scene": 0,
                "qr_scene_str": qr_scene_str, "nickname": nickname,
                **({"unionid": unionid} if unionid else {}),
            }
            return openid

    def unfollow_oa(self, openid: str) -> None:
        """The follower unsubscribes."""
        with self.lock:
            if openid in self.oa_followers:
                self.oa_followers[openid] = {"subscribe": 0, "openid": openid}

    def add_mp_user(self, openid: str | None = None, unionid: str | None = None) -> str:
        """A mini-program user; returns the openid."""
        with self.lock:
            openid = openid or self.new_id("o", 27)
            self.mp_users.setdefault(openid, {"openid": openid, "session_key": self.new_id("", 22) + "==",
                                              **({"unionid": unionid} if unionid else {})})
            return openid

    def new_login_code(self, openid: str | None = None, unionid: str | None = None) -> str:
        """A wx.login code for a (new or given) mini-program user: single use, five minutes."""
        with self.lock:
            openid = self.add_mp_user(openid, unionid)
            code = self.new_id("", 32)
            self.mp_login_codes[code] = {"openid": openid, "issued_at": self.now(), "used": False}
            return code

    def new_phone_code(self, phone: str = "13800138000", country_code: str = "86") -> str:
        """A getPhoneNumber code for `phone`: single use, five minutes."""
        with self.lock:
            code = self.new_id("", 32)
            self.mp_phone_codes[code] = {"phone": phone, "country_code": country_code,
                                         "issued_at": self.now(), "used": False}
            return code

    def add_oa_template(self, template_id: str, *keywords: str) -> str:
        """A template the official account added from the library; `keywords` are its data keys (none: any)."""
        with self.lock:
            self.oa_templates[template_id] = tuple(keywords)
            return template_id

    def take_template_results(self) -> list[tuple[str, int, str]]:
        """The TEMPLATESENDJOBFINISH events due (openid, msgid, Status), each handed out once."""
        with self.lock:
            due, self.oa_template_results = self.oa_template_results, []
            return due

    def grant_subscribe(self, openid: str, template_id: str) -> None:
        """The user accepts one subscription message of `template_id` (wx.requestSubscribeMessage)."""
        with self.lock:
            self.mp_grants[(openid, template_id)] += 1

    def take_code(self, codes: dict[str, dict], code: str) -> dict | None:
        """The record of a live, unused code, marking it used; None when unknown, used or expired."""
        rec, _ = self.redeem_code(codes, code)
        return rec

    def redeem_code(self, codes: dict[str, dict], code: str) -> tuple[dict | None, str | None]:
        """(record, None) for a live, unused code, marking it used; else (None, "invalid_code" | "code_used")."""
        rec = codes.get(code)
        if rec is not None and rec["used"]:
            return None, "code_used"
        if rec is None or self.now() - rec["issued_at"] > CODE_TTL:
            return None, "invalid_code"
        rec["used"] = True
        return rec, None
