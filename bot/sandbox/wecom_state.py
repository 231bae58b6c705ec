"""The sandbox corp: departments, staff, external contacts and who follows them, tags, 联系我 codes,
welcome codes, mass-message tasks, group chats, app messages."""
from __future__ import annotations

import time
from collections import Counter

WELCOME_CODE_TTL = 20  # seconds, and usable once
STATE_MAX = 30  # characters in a 联系我 code's state
OAUTH_CODE_TTL = 300  # seconds an OAuth code lives (WeCom: 5 minutes), and usable once


class WeComState:
    """Mixed into SandboxState; `self.lock`, `self.now()` and `self.new_id()` come from there."""

    def _init_wecom(self) -> None:
        self.departments: dict[int, dict] = {1: {"id": 1, "name": "总部", "parentid": 0, "order": 1}}
        self.staff: dict[str, dict] = {}
        self.follow_enabled: list[str] = []  # staff with 客户联系 enabled, in order
        self.contacts: dict[str, dict] = {}  # external_userid -> external_contact
        self.follows: dict[str, dict[str, dict]] = {}  # userid -> external_userid -> follow_info
        self.tag_groups: dict[str, dict] = {}
        self.contact_ways: dict[str, dict] = {}
        self.welcome_codes: dict[str, dict] = {}
        self.welcome_sent: list[dict] = []
        self.msg_tasks: dict[str, dict] = {}
        self.mass_received: Counter = Counter()  # (external_userid, "YYYYMM") -> mass messages this month
        self.group_chats: dict[str, dict] = {}
        self.app_messages: list[dict] = []
        self.cards: dict[str, dict] = {}  # response_code -> {task_id, issued_at, used} (wecom_cards.py)
        self.task_cards: dict[str, dict] = {}  # task_id -> the sent card, its clicks and updates
        self.msg_template_delay: float = 0.0  # seconds each add_msg_template takes (tests of interrupted fan-outs)
        self.oauth_codes: dict[str, dict] = {}  # OAuth code -> {userid, expires_at}, removed when used

    # -- seeding ----------------------------------------------------------------------------------
    def add_department(self, name: str, parentid: int = 1, id: int | None = None) -> int:
        """A department (Siyu reads stores from departments under the root); returns its id."""
        with self.lock:
            id = id or max(self.departments) + 1
            self.departments[id] = {"id": id, "name": name, "parentid": parentid, "order": id}
            return id

    def add_staff(self, userid: str, name: str | None = None, department: int | list[int] = 1,
                  follow: bool = True, position: str = "") -> dict:
        """A WeCom member; `follow` enables 客户联系 for them."""
        with self.lock:
            departments = department if isinstance(department, list) else [department]
            user = {"userid": userid, "name": name or userid, "department": departments,
                    "main_department": departments[0], "position": position, "status": 1}
            self.staff[userid] = user
            self.follows.setdefault(userid, {})
            if follow and userid not in self.follow_enabled:
                self.follow_enabled.append(userid)
            return user

    def add_external_contact(self, userid: str, external_userid: str | None = None, unionid: str | None = None,
                             name: str = "客户", state: str | None = None, tags: tuple[str, ...] = (),
                             createtime: int | None = None, remark: str = "", add_way: int = 1) -> str:
        """A customer added by staff `userid` (again, for one who follows others already); their external_userid."""
        with self.lock:
            if userid not in self.staff:
                self.add_staff(userid)
            ext = external_userid or self.new_id("wm", 30)
            if ext not in self.contacts:
                contact = {"external_userid": ext, "name": name, "type": 1, "gender": 0,
                           "avatar": f"https://sandbox.invalid/avatar/{ext}"}
                if unionid:
                    contact["unionid"] = unionid
                self.contacts[ext] = contact
            self.follows[userid][ext] = {
                "userid": userid, "remark": remark, "description": "", "createtime": createtime or int(self.now()),
                "tag_id": list(tags), "remark_corp_name": "", "remark_mobiles": [], "oper_userid": userid,
                "add_way": add_way, **({"state": state} if state else {}),
            }
            return ext

    def issue_oauth_code(self, userid: str) -> str:
        """An OAuth code for staff `userid`, as WeCom's authorize page hands the app (single use, 5 minutes)."""
        with self.lock:
            code = self.new_id("", 32)
            self.oauth_codes[code] = {"userid": userid, "expires_at": self.now() + OAUTH_CODE_TTL}
            return code

    def remove_follow(self, userid: str, external_userid: str) -> None:
        """The relation ends (either side deleted the other)."""
        with self.lock:
            self.follows.get(userid, {}).pop(external_userid, None)

    def add_corp_tag_seed(self, group_name: str, name: str) -> str:
        """A corp tag in `group_name` (created when missing); returns the tag id."""
        with self.lock:
            group = next((g for g in self.tag_groups.values() if g["group_name"] == group_name), None)
            if group is None:
                gid = self.new_id("et", 20)
                group = self.tag_groups[gid] = {"group_id": gid, "group_name": group_name,
                                                "create_time": int(self.now()), "order": 0, "tag": []}
            for tag in group["tag"]:
                if tag["name"] == name:
                    return tag["id"]
            tid = self.new_id("et", 20)
            group["tag"].append({"id": tid, "name": name, "create_time": int(self.now()), "order": 0})
            return tid

    def new_welcome_code(self, userid: str, external_userid: str) -> str:
        """The welcome_code an add event carries: valid 20 s, usable once."""
        with self.lock:
            code = self.new_id("wc", 32)
            self.welcome_codes[code] = {"userid": userid, "external_userid": external_userid,
                                        "issued_at": self.now(), "used": False}
            return code

    def add_group_chat(self, owner: str, name: str = "客户群", external_userids: tuple[str, ...] = (),
                       userids: tuple[str, ...] = ()) -> str:
        """A customer group chat owned by staff `owner`; returns its chat_id."""
        with self.lock:
            chat_id = self.new_id("wr", 30)
            now = int(self.now())
            members = [{"userid": u, "type": 1, "join_time": now, "join_scene": 1} for u in (owner, *userids)]
            for ext in external_userids:
                member = {"userid": ext, "type": 2, "join_time": now, "join_scene": 3,
                          "invitor": {"userid": owner}}
                if self.contacts.get(ext, {}).get("unionid"):
                    member["unionid"] = self.contacts[ext]["unionid"]
                members.append(member)
            self.group_chats[chat_id] = {"chat_id": chat_id, "name": name, "owner": owner, "create_time": now,
                                         "notice": "", "member_list": members,
                                         "admin_list": [], "status": 0}
            return chat_id

    # -- the simulated staff member ------------------------------------------------------------------
    def month_key(self) -> str:
        """The current month in Beijing time (Tencent counts quotas by calendar month there)."""
        return time.strftime("%Y%m", time.gmtime(self.now() + 8 * 3600))

    def confirm_msg_task(self, msgid: str, userid: str) -> list[dict]:
        """Staff `userid` confirms a mass message in WeCom: sent to each customer still a friend and under quota."""
        with self.lock:
            task = self.msg_tasks[msgid]
            sender = task["senders"][userid]
            if sender["status"] != 0:
                return sender["results"]
            now, month = int(self.now()), self.month_key()
            for result in sender["results"]:
                ext = result["external_userid"]
                if ext not in self.follows.get(userid, {}):
                    result["status"] = 2  # no longer a friend
                elif self.mass_received[(ext, month)] >= self.monthly_mass_quota:
                    result["status"] = 3  # already received this month's quota of mass messages
                else:
                    self.mass_received[(ext, month)] += 1
                    result["status"], result["send_time"] = 1, now
            sender["status"], sender["send_time"] = 2, now
            return sender["results"]

    def msg_tasks_of(self, userid: str) -> list[dict]:
        """The mass-message tasks staff `userid` was asked to send, oldest first."""
        with self.lock:
            return [t for t in self.msg_tasks.values() if userid in t["senders"]]

    def mass_quota_left(self, external_userid: str) -> int:
        """Mass messages this customer can still receive this month."""
        return max(0, self.monthly_mass_quota - self.mass_received[(external_userid, self.month_key())])
