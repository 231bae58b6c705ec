"""WeCom server APIs Siyu uses, as plain methods returning WeCom's JSON dicts.

The 客户联系 APIs go out with the contact secret's token, staff messages with the agent's.
Endpoints wechatpy 1.8.18 lacks go through the SDK's generic `get`/`post`.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from urllib.parse import urlencode

from bot.credentials import WeComCredentials
from bot.errors import PermanentAPIError
from bot.limiter import PER_RECIPIENT

BATCH_USERIDS = 100  # batch/get_by_user: at most 100 userids per call
BATCH_LIMIT = 100  # ... and at most 100 items per page


class WeComClient:
    """One corp's WeCom API: `contact` is the SDK on the contact secret, `agent` on the app secret."""

    def __init__(self, creds: WeComCredentials, contact, agent=None, limiter=None):
        self.creds = creds
        self.contact = contact
        self.agent = agent  # None when no app secret is configured: app messages cannot be sent
        self.limiter = limiter  # for the per-recipient band of app messages (the SDKs limit per API)

    # -- tokens -----------------------------------------------------------------------------
    def access_token(self) -> str:
        """The contact secret's shared access token (fetched when missing)."""
        return self.contact.access_token

    # -- external contacts --------------------------------------------------------------------
    def get_external_contact(self, external_userid: str, cursor: str | None = None) -> dict:
        """externalcontact/get: the customer and the staff who follow them (paged past 500 follow users)."""
        params = {"external_userid": external_userid}
        if cursor:
            params["cursor"] = cursor
        return self.contact.get("externalcontact/get", params=params)

    def batch_get_by_user(self, userids: list[str], cursor: str | None = None, limit: int = BATCH_LIMIT) -> dict:
        """externalcontact/batch/get_by_user: one page of the customers of up to 100 staff."""
        body = {"userid_list": list(userids), "cursor": cursor or "", "limit": limit}
        return self.contact.post("externalcontact/batch/get_by_user", data=body)

    def iter_contacts_by_user(self, userids: Iterable[str]) -> Iterator[dict]:
        """Every `{external_contact, follow_info}` of these staff, 100 userids a call, following cursors."""
        userids = list(userids)
        for start in range(0, len(userids), BATCH_USERIDS):
            chunk = userids[start:start + BATCH_USERIDS]
            cursor = ""
            while True:
                page = self.batch_get_by_user(chunk, cursor=cursor)
                yield from page.get("external_contact_list", [])
                cursor = page.get("next_cursor") or ""
                if not cursor:
                    break

    def list_follow_users(self) -> list[str]:
        """Userids of the staff allowed to have customers (客户联系 enabled)."""
        return self.contact.external_contact.get_follow_user_list().get("follow_user", [])

    # -- corp tags ------------------------------------------------------------------------------
    def list_corp_tags(self, tag_ids: Iterable[str] | None = None, group_ids: Iterable[str] | None = None) -> dict:
        """externalcontact/get_corp_tag_list: tag groups with their tags."""
        body = {}
        if tag_ids:
            body["tag_id"] = list(tag_ids)
        if group_ids:
            body["group_id"] = list(group_ids)
        return self.contact.post("externalcontact/get_corp_tag_list", data=body)

    def add_corp_tag(self, tags: list[dict | str], group_id: str | None = None, group_name: str | None = None,
                     order: int | None = None) -> dict:
        """externalcontact/add_corp_tag: add tags (`{"name","order"?}` or names) to a group, new or existing."""
        body: dict = {"tag": [t if isinstance(t, dict) else {"name": t} for t in tags]}
        for key, value in (("group_id", group_id), ("group_name", group_name), ("order", order)):
            if value is not None:
                body[key] = value
        return self.contact.post("externalcontact/add_corp_tag", data=body)

    def edit_corp_tag(self, id: str, name: str | None = None, order: int | None = None) -> dict:
        """externalcontact/edit_corp_tag: rename or reorder a tag or a group."""
        body: dict = {"id": id}
        if name is not None:
            body["name"] = name
        if order is not None:
            body["order"] = order
        return self.contact.post("externalcontact/edit_corp_tag", data=body)

    def del_corp_tag(self, tag_ids: Iterable[str] = (), group_ids: Iterable[str] = ()) -> dict:
        """externalcontact/del_corp_tag: delete tags and/or whole groups."""
        return self.contact.external_contact.del_corp_tag(tag_id=list(tag_ids) or None,
                                                          group_id=list(group_ids) or None)

    def mark_tag(self, userid: str, external_userid: str, add_tag: Iterable[str] = (),
                 remove_tag: Iterable[str] = ()) -> dict:
        """externalcontact/mark_tag: tag or untag a customer as seen by one staff member."""
        body = {"userid": userid, "external_userid": external_userid,
                "add_tag": list(add_tag), "remove_tag": list(remove_tag)}
        return self.contact.post("externalcontact/mark_tag", data=body)

    # -- 联系我 ----------------------------------------------------------------------------------
    def add_contact_way(self, **body) -> dict:
        """externalcontact/add_contact_way: a 联系我 code; answers `config_id` and `qr_code`."""
        return self.contact.post("externalcontact/add_contact_way", data=body)

    def get_contact_way(self, config_id: str) -> dict:
        """externalcontact/get_contact_way."""
        return self.contact.external_contact.get_contact_way(config_id)

    def del_contact_way(self, config_id: str) -> dict:
        """externalcontact/del_contact_way."""
        return self.contact.external_contact.del_contact_way(config_id)

    def send_welcome_msg(self, welcome_code: str, text: str | None = None, attachments: Iterable[dict] = ()) -> dict:
        """externalcontact/send_welcome_msg: the welcome message, within 20 s of the add event, once."""
        body: dict = {"welcome_code": welcome_code}
        if text:
            body["text"] = {"content": text}
        if attachments:
            body["attachments"] = list(attachments)
        return self.contact.post("externalcontact/send_welcome_msg", data=body)

    # -- mass messages -----------------------------------------------------------------------------
    def add_msg_template(self, body: dict) -> dict:
        """externalcontact/add_msg_template: a mass-message task the sender confirms; answers `msgid`."""
        return self.contact.post("externalcontact/add_msg_template", data=body)

    def get_groupmsg_list_v2(self, chat_type: str = "single", start_time: int = 0, end_time: int = 0,
                             creator: str | None = None, filter_type: int = 2, limit: int = 100,
                             cursor: str | None = None) -> dict:
        """externalcontact/get_groupmsg_list_v2: mass messages created in a time range."""
        body: dict = {"chat_type": chat_type, "start_time": start_time, "end_time": end_time,
                      "filter_type": filter_type, "limit": limit, "cursor": cursor or ""}
        if creator:
            body["creator"] = creator
        return self.contact.post("externalcontact/get_groupmsg_list_v2", data=body)

    def get_groupmsg_task(self, msgid: str, limit: int = 1000, cursor: str | None = None) -> dict:
        """externalcontact/get_groupmsg_task: which senders confirmed a mass message."""
        body = {"msgid": msgid, "limit": limit, "cursor": cursor or ""}
        return self.contact.post("externalcontact/get_groupmsg_task", data=body)

    def get_groupmsg_send_result(self, msgid: str, userid: str, limit: int = 1000, cursor: str | None = None) -> dict:
        """externalcontact/get_groupmsg_send_result: per-customer outcome of one sender's mass message."""
        body = {"msgid": msgid, "userid": userid, "limit": limit, "cursor": cursor or ""}
        return self.contact.post("externalcontact/get_groupmsg_send_result", data=body)

    def remind_groupmsg_send(self, msgid: str) -> dict:
        """externalcontact/remind_groupmsg_send: nudge the senders who have not confirmed yet."""
        return self.contact.post("externalcontact/remind_groupmsg_send", data={"msgid": msgid})

    # -- group chats ---------------------------------------------------------------------------------
    def list_group_chats(self, status_filter: int = 0, owner_userids: Iterable[str] = (),
                         cursor: str | None = None, limit: int = 1000) -> dict:
        """externalcontact/groupchat/list: one page of customer group chats."""
        body: dict = {"status_filter": status_filter, "cursor": cursor or "", "limit": limit}
        if owner_userids:
            body["owner_filter"] = {"userid_list": list(owner_userids)}
        return self.contact.post("externalcontact/groupchat/list", data=body)

    def iter_group_chats(self, owner_userids: Iterable[str] = ()) -> Iterator[dict]:
        """Every `{chat_id, status}`, following cursors."""
        cursor = ""
        while True:
            page = self.list_group_chats(owner_userids=owner_userids, cursor=cursor)
            yield from page.get("group_chat_list", [])
            cursor = page.get("next_cursor") or ""
            if not cursor:
                return

    def get_group_chat(self, chat_id: str, need_name: int = 1) -> dict:
        """externalcontact/groupchat/get: a group chat with its members."""
        return self.contact.post("externalcontact/groupchat/get", data={"chat_id": chat_id, "need_name": need_name})

    # -- succession --------------------------------------------------------------------------------------
    def transfer_customer(self, handover_userid: str, takeover_userid: str, external_userids: list[str],
                          transfer_success_msg: str | None = None) -> dict:
        """externalcontact/transfer_customer: move customers of a serving staff member (≤ 100 a call)."""
        body: dict = {"handover_userid": handover_userid, "takeover_userid": takeover_userid,
                      "external_userid": list(external_userids)}
        if transfer_success_msg:
            body["transfer_success_msg"] = transfer_success_msg
        return self.contact.post("externalcontact/transfer_customer", data=body)

    def resigned_transfer_customer(self, handover_userid: str, takeover_userid: str,
                                   external_userids: list[str]) -> dict:
        """externalcontact/resigned/transfer_customer: move customers of a staff member who left."""
        body = {"handover_userid": handover_userid, "takeover_userid": takeover_userid,
                "external_userid": list(external_userids)}
        return self.contact.post("externalcontact/resigned/transfer_customer", data=body)

    def transfer_result(self, handover_userid: str, takeover_userid: str, cursor: str | None = None,
                        resigned: bool = False) -> dict:
        """externalcontact/transfer_result (or resigned/…): one page of takeover states between two staff."""
        api = "externalcontact/resigned/transfer_result" if resigned else "externalcontact/transfer_result"
        body = {"handover_userid": handover_userid, "takeover_userid": takeover_userid, "cursor": cursor or ""}
        return self.contact.post(api, data=body)

    def iter_transfer_results(self, handover_userid: str, takeover_userid: str,
                              resigned: bool = False) -> Iterator[dict]:
        """Every `{external_userid, status, takeover_time}` between two staff, following cursors."""
        cursor = ""
        while True:
            page = self.transfer_result(handover_userid, takeover_userid, cursor=cursor, resigned=resigned)
            yield from page.get("customer") or []
            cursor = page.get("next_cursor") or ""
            if not cursor:
                return

    # -- staff --------------------------------------------------------------------------------------------
    def list_departments(self, department_id: int | None = None) -> dict:
        """department/list: departments (Siyu reads stores from them)."""
        params = {"id": department_id} if department_id is not None else {}
        return self.agent.get("department/list", params=params)

    def list_users(self, department_id: int = 1, fetch_child: bool = True) -> dict:
        """user/list: staff of a department and, by default, its sub-departments."""
        params = {"department_id": department_id, "fetch_child": 1 if fetch_child else 0}
        return self.agent.get("user/list", params=params)

    def send_message(self, body: dict) -> dict:
        """message/send as the agent (text, markdown, template_card…); `agentid` is filled in.

        Waits, when needed, for WeCom's per-recipient limit (30 a minute, 1,000 an hour per staff member).
        """
        sdk = self._agent_sdk("message/send")
        if self.limiter is not None:
            for userid in filter(None, str(body.get("touser", "")).split("|")):
                if userid != "@all":
                    self.limiter.acquire(f"{self.creds.corp_id}:{userid}", PER_RECIPIENT)
        return sdk.post("message/send", data={"agentid": int(self.creds.agent_id), **body})

    def get_agent(self) -> dict:
        """agent/get on the agent's own token: the app's name and visible range (a round trip on that secret)."""
        api = "agent/get"
        return self._agent_sdk(api).get(api, params={"agentid": self.creds.agent_id})

    def update_template_card(self, body: dict) -> dict:
        """message/update_template_card: change a sent card (e.g. after a button click)."""
        api = "message/update_template_card"
        return self._agent_sdk(api).post(api, data={"agentid": int(self.creds.agent_id), **body})

    def oauth_url(self, oauth_base: str, redirect_uri: str, state: str) -> str:
        """The snsapi_base authorize URL that brings a staff member back to `redirect_uri` with a code."""
        query = urlencode({"appid": self.creds.corp_id, "redirect_uri": redirect_uri, "response_type": "code",
                           "scope": "snsapi_base", "state": state, "agentid": self.creds.agent_id or ""})
        return f"{oauth_base}connect/oauth2/authorize?{query}#wechat_redirect"

    def user_by_code(self, code: str) -> dict:
        """auth/getuserinfo on the app's token: who signed in (`userid`, or `openid` for a non-member)."""
        api = "auth/getuserinfo"
        return self._agent_sdk(api).get(api, params={"code": code})

    def _agent_sdk(self, api: str):
        # WeCom refuses app messages on the 客户联系 secret's token: say so here, not with a puzzling errcode.
        if self.agent is None or not self.creds.agent_id:
            raise PermanentAPIError(None, "no app configured: set SIYU_WECOM_AGENT_ID and SIYU_WECOM_AGENT_SECRET", api)
        return self.agent
