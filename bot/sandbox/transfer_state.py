"""The sandbox's 在职继承 and 离职继承: handovers of customers between staff, kept and limited as WeCom does.

A handover starts when `transfer_customer` (or `resigned/transfer_customer`) answers errcode 0 for a customer;
WeCom takes the customer over automatically 24 hours later unless the customer refuses first (or the takeover
staff member has reached their customer limit). Tests drive the customer's side with `refuse_transfer`,
`accept_transfer` and `takeover_full`, and the clock with `advance` (a due takeover completes at the next
`transfer_result` or `settle_transfers`). Each outcome queues the callbacks WeCom sends, as plaintext XML, in
`transfer_callbacks` (`take_transfer_callbacks` hands them to a test to deliver).

Self-contained: it touches the corp's staff, contacts and follows through the WeComState attributes only.
"""
from __future__ import annotations

from bot.sandbox import events

TAKEOVER_AFTER = 24 * 3600  # "0表示开始分配流程,待24小时后自动接替"
LIMIT_WINDOW = 90 * 86400  # "90个自然日内,在职成员的每位客户仅可被转接2次"
LIMIT_PER_WINDOW = 2
MAX_CUSTOMERS = 100  # external_userid per call: "每次最多分配100个客户"
RESULT_PAGE = 1000  # transfer_result: "每个分页返回的数据不会超过1000条"

# transfer_result status: 1-接替完毕 2-等待接替 3-客户拒绝 4-接替成员客户达到上限
DONE, WAITING, REFUSED, TAKEOVER_FULL = 1, 2, 3, 4

# customer[].errcode, from WeCom's global error codes
INVALID_EXTERNAL_USERID = 40096  # 不合法的外部联系人userid
TOO_FREQUENT = 40128  # 客户转接过于频繁
IN_TRANSFER = 40129  # 当前客户正在转接中
NOT_FOLLOWED_BY_HANDOVER = 40131  # handover_userid 并不是外部联系人的跟进人

ADD_WAY_ASSIGNED = 202  # follow_info.add_way: 管理员/负责人分配


class TransferState:
    """Mixed into SandboxState; `self.lock`, `self.now()`, `self.corp_id` and the WeComState maps come from there."""

    def _init_transfers(self) -> None:
        self.handovers: list[dict] = []  # every handover begun, oldest first
        self.resigned_staff: dict[str, dict] = {}  # userid -> the member who left (gone from user/list)
        self.transfer_callbacks: list[str] = []  # plaintext events WeCom would POST, in the order it would

    # -- seeding and the simulated people -----------------------------------------------------------------
    def resign_staff(self, userid: str) -> None:
        """The member leaves the corp: gone from the directory, their customers waiting for 离职继承."""
        with self.lock:
            user = self.staff.pop(userid)
            self.resigned_staff[userid] = {**user, "status": 5}
            if userid in self.follow_enabled:
                self.follow_enabled.remove(userid)

    def add_past_handover(self, handover: str, takeover: str, external_userid: str, days_ago: float,
                          status: int = DONE, resigned: bool = False) -> dict:
        """A handover of this customer that happened `days_ago` (it counts towards the 90-day limit)."""
        with self.lock:
            started = self.now() - days_ago * 86400
            record = {"handover": handover, "takeover": takeover, "external_userid": external_userid,
                      "resigned": resigned, "started_at": started, "status": status,
                      "takeover_time": int(started + TAKEOVER_AFTER) if status == DONE else 0}
            self.handovers.append(record)
            return record

    def refuse_transfer(self, external_userid: str) -> dict:
        """The customer refuses the pending handover: they stay with the handover staff member."""
        return self._end_pending(external_userid, REFUSED, "customer_refused")

    def takeover_full(self, external_userid: str) -> dict:
        """The pending handover fails because the takeover staff member has reached their customer limit."""
        return self._end_pending(external_userid, TAKEOVER_FULL, "customer_limit_exceed")

    def accept_transfer(self, external_userid: str) -> dict:
        """The pending handover completes now (as it does by itself once 24 hours have passed)."""
        with self.lock:
            record = self._pending(external_userid)
            self._complete(record)
            return record

    def settle_transfers(self) -> int:
        """Complete every pending handover whose 24 hours are up; how many completed."""
        with self.lock:
            due = [r for r in self.handovers if r["status"] == WAITING and r["takeover_time"] <= self.now()]
            for record in due:
                self._complete(record)
            return len(due)

    def take_transfer_callbacks(self) -> list[str]:
        """The callbacks queued so far (plaintext XML, oldest first), emptying the queue."""
        with self.lock:
            out, self.transfer_callbacks = self.transfer_callbacks, []
            return out

    # -- the rules (called by the routes under the lock) -------------------------------------------------------
    def knows_user(self, userid: str) -> bool:
        """A member of the corp, serving or resigned."""
        return userid in self.staff or userid in self.resigned_staff

    def begin_handover(self, handover: str, takeover: str, external_userid: str, resigned: bool) -> int:
        """Start handing one customer over; the customer's errcode (0: started, taken over in 24 hours)."""
        if external_userid not in self.contacts:
            return INVALID_EXTERNAL_USERID
        if external_userid not in self.follows.get(handover, {}):
            return NOT_FOLLOWED_BY_HANDOVER
        if any(r["external_userid"] == external_userid and r["status"] == WAITING for r in self.handovers):
            return IN_TRANSFER
        if not resigned and self.recent_handovers(external_userid) >= LIMIT_PER_WINDOW:
            return TOO_FREQUENT
        now = self.now()
        self.handovers.append({"handover": handover, "takeover": takeover, "external_userid": external_userid,
                               "resigned": resigned, "started_at": now, "status": WAITING,
                               "takeover_time": int(now + TAKEOVER_AFTER)})
        return 0

    def recent_handovers(self, external_userid: str) -> int:
        """在职继承 handovers of this customer in the last 90 days that completed or are pending."""
        since = self.now() - LIMIT_WINDOW
        return sum(1 for r in self.handovers if r["external_userid"] == external_userid and not r["resigned"]
                   and r["started_at"] >= since and r["status"] in (DONE, WAITING))

    def handover_results(self, handover: str, takeover: str, resigned: bool) -> list[dict]:
        """transfer_result's `customer` list: the latest handover of each customer between the two."""
        self.settle_transfers()
        latest: dict[str, dict] = {}
        for r in self.handovers:
            if r["handover"] == handover and r["takeover"] == takeover and r["resigned"] == resigned:
                latest[r["external_userid"]] = r
        return [{"external_userid": ext, "status": r["status"], "takeover_time": r["takeover_time"]}
                for ext, r in latest.items()]

    # -- outcomes -----------------------------------------------------------------------------------------
    def _pending(self, external_userid: str) -> dict:
        record = next((r for r in reversed(self.handovers)
                       if r["external_userid"] == external_userid and r["status"] == WAITING), None)
        if record is None:
            raise KeyError(f"no pending handover of {external_userid}")
        return record

    def _end_pending(self, external_userid: str, status: int, reason: str) -> dict:
        with self.lock:
            record = self._pending(external_userid)
            record["status"], record["takeover_time"] = status, 0
            # UserID is the takeover staff member ("接替失败回调是转接人的userid").
            self.transfer_callbacks.append(events.transfer_fail(
                self.corp_id, record["takeover"], external_userid, reason, create_time=int(self.now())))
            return record

    def _complete(self, record: dict) -> None:
        handover, takeover, ext = record["handover"], record["takeover"], record["external_userid"]
        now = int(self.now())
        info = self.follows.get(handover, {}).pop(ext, None) or {"remark": "", "description": "", "tag_id": []}
        takeover_follows = self.follows.setdefault(takeover, {})
        already_friends = ext in takeover_follows
        if not already_friends:
            takeover_follows[ext] = {**info, "userid": takeover, "oper_userid": takeover, "createtime": now,
                                     "add_way": ADD_WAY_ASSIGNED}
        record["status"], record["takeover_time"] = DONE, now
        self.transfer_callbacks.append(events.del_external_contact(
            self.corp_id, handover, ext, source="DELETE_BY_TRANSFER", create_time=now))
        # "如果接替成员在转接前已成为客户好友,则不会触发添加企业客户事件"
        if not already_friends:
            self.transfer_callbacks.append(events.add_external_contact(self.corp_id, takeover, ext, create_time=now))
