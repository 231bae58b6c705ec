"""Fixtures of the intake tests: an app client, a recorded queue, a fake WeCom, and encrypted deliveries."""
from __future__ import annotations

import secrets
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient

from config.queue import in_process_runner, using
from config.settings import get_settings
from tests.conftest import ADMIN_TOKEN

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def fixture_text(source: str, name: str) -> str:
    """The text of one fixture payload."""
    return (FIXTURES / source / name).read_text()


@pytest.fixture
def client(settings):
    """A Siyu app on the test settings."""
    from siyu.app import create_app

    with TestClient(create_app()) as c:
        yield c


class Enqueued(list):
    """A queue backend (config.queue.using) that runs nothing: each job as (func name, args, queue)."""

    def dispatch(self, job) -> None:
        self.append((job.func.__name__, job.args, job.queue))


@pytest.fixture
def enqueued():
    """Every job the test enqueues (once its transaction commits), recorded, not run: [(func name, args, queue)]."""
    with using(Enqueued()) as calls:
        yield calls


def store_all(plaintexts: list[str], source: str = "wecom") -> list[int]:
    """Store payloads as the intake would, queueing nothing by themselves (use with `enqueued`); their inbox ids."""
    from webhooks.crypto import parse_body
    from webhooks.inbox import inbox_scope, store

    ids = []
    for text in plaintexts:
        data, _ = parse_body(text)
        with inbox_scope() as s:
            ids.append(store(s, source, text, data).inbox_id)
    return ids


def handle(source: str, plaintext: str):
    """Store a payload as the intake would and run its job once (use with `enqueued`); the inbox row after."""
    from webhooks.inbox import inbox_scope, process_inbox
    from webhooks.models import InboxEvent

    [inbox_id] = store_all([plaintext], source)
    process_inbox(inbox_id)
    with inbox_scope() as s:
        return s.get(InboxEvent, inbox_id)


@pytest.fixture
def drain(settings):
    """Wait for the in-process runner to finish every queued job (and its retries)."""
    def wait(timeout: float = 30.0) -> None:
        assert in_process_runner().drain(timeout), "background jobs did not finish"

    yield wait
    in_process_runner().drain(30)


def wecom_post(client: TestClient, creds, plaintext: str, nonce: str | None = None, path: str = "/webhooks/wecom"):
    """POST `plaintext` as WeCom would: encrypted with the corp's key and signed."""
    from webhooks.crypto import encrypt_reply, parse_xml

    nonce = nonce or secrets.token_hex(6)
    timestamp = str(int(time.time()))
    envelope = parse_xml(encrypt_reply("wecom", creds.token, creds.aes_key, creds.corp_id, plaintext, nonce,
                                       timestamp))
    body = (f"<xml><ToUserName><![CDATA[{creds.corp_id}]]></ToUserName>"
            f"<Encrypt><![CDATA[{envelope['Encrypt']}]]></Encrypt><AgentID><![CDATA[]]></AgentID></xml>")
    query = urlencode({"msg_signature": envelope["MsgSignature"], "timestamp": timestamp, "nonce": nonce})
    return client.post(f"{path}?{query}", content=body)


PLAIN_APPS = {"SIYU_OA_APP_ID": "wxplainoa", "SIYU_OA_APP_SECRET": "oa-secret", "SIYU_OA_TOKEN": "oa-token",
              "SIYU_MP_APP_ID": "wxplainmp", "SIYU_MP_APP_SECRET": "mp-secret", "SIYU_MP_TOKEN": "mp-token"}


def configure_plain_apps(monkeypatch) -> None:
    """Configure an official account and a mini-program without EncodingAESKey (plain mode only)."""
    for name, value in PLAIN_APPS.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()


@pytest.fixture
def plain_apps(settings, monkeypatch):
    """The official account and the mini-program configured for plain mode (no key); the sandbox stays for WeCom."""
    configure_plain_apps(monkeypatch)


def wecom_creds():
    """The effective WeCom credentials of the test settings."""
    from bot.credentials import wecom_credentials

    return wecom_credentials(get_settings())


def inbox_rows():
    """Every inbox row, oldest first."""
    from sqlalchemy import select

    from webhooks.inbox import inbox_scope
    from webhooks.models import InboxEvent

    with inbox_scope() as s:
        return list(s.scalars(select(InboxEvent).order_by(InboxEvent.id)))


class FakeWeCom:
    """A small stand-in for bot.wecom.WeComClient: contacts, chats and tags held in dicts, calls recorded."""

    def __init__(self):
        self.contacts: dict[str, dict] = {}
        self.chats: dict[str, dict] = {}
        self.corp_tags: list[dict] = []
        self.calls: list[tuple] = []

    def add_contact(self, external_userid, userid, *, name="客户", unionid=None, state="", tags=(), remark=""):
        c = self.contacts.setdefault(external_userid, {
            "external_contact": {"external_userid": external_userid, "name": name, "type": 1,
                                 **({"unionid": unionid} if unionid else {})},
            "follow_user": []})
        c["follow_user"] = [f for f in c["follow_user"] if f["userid"] != userid] + [{
            "userid": userid, "remark": remark, "createtime": 1700000000, "state": state, "add_way": 1,
            "tags": [{"group_name": g, "tag_name": n, "tag_id": i, "type": 1} for g, n, i in tags]}]
        return c

    def get_external_contact(self, external_userid, cursor=None):
        from bot.errors import PermanentAPIError

        self.calls.append(("get_external_contact", external_userid))
        if external_userid not in self.contacts:
            raise PermanentAPIError(84061, "not external contact", "externalcontact/get")
        return self.contacts[external_userid]

    def mark_tag(self, userid, external_userid, add_tag=(), remove_tag=()):
        self.calls.append(("mark_tag", userid, external_userid, tuple(add_tag), tuple(remove_tag)))
        for follow in self.contacts.get(external_userid, {}).get("follow_user", []):  # as WeCom shows it after
            if follow["userid"] == userid:
                have = {t["tag_id"] for t in follow["tags"]}
                follow["tags"] = [t for t in follow["tags"] if t["tag_id"] not in remove_tag] + [
                    {"group_name": "", "tag_name": i, "tag_id": i, "type": 1} for i in add_tag if i not in have]
        return {"errcode": 0}

    def send_welcome_msg(self, welcome_code, text=None, attachments=()):
        self.calls.append(("send_welcome_msg", welcome_code, text))
        return {"errcode": 0}

    def send_message(self, body):
        self.calls.append(("send_message", body))
        return {"errcode": 0}

    def get_group_chat(self, chat_id, need_name=1):
        from bot.errors import PermanentAPIError

        self.calls.append(("get_group_chat", chat_id))
        if chat_id not in self.chats:
            raise PermanentAPIError(701008, "chat not found", "externalcontact/groupchat/get")
        return {"group_chat": self.chats[chat_id]}

    def list_corp_tags(self, tag_ids=None, group_ids=None):
        self.calls.append(("list_corp_tags",))
        return {"tag_group": self.corp_tags}

    def add_corp_tag(self, tags, group_id=None, group_name=None, order=None):
        names = [t if isinstance(t, str) else t["name"] for t in tags]
        created = [{"id": f"et{secrets.token_hex(4)}", "name": n} for n in names]
        self.calls.append(("add_corp_tag", tuple(names)))
        return {"tag_group": {"group_name": group_name, "tag": created}}

    def add_contact_way(self, **body):
        self.calls.append(("add_contact_way", body))
        return {"config_id": "cfg" + secrets.token_hex(4), "qr_code": "https://wework.qpic.cn/fake.png"}

    def named(self, name):
        """The recorded calls of one method."""
        return [c for c in self.calls if c[0] == name]


class FakeOA:
    """A small stand-in for bot.official_account.OAClient."""

    def __init__(self):
        self.users: dict[str, dict] = {}
        self.calls: list[tuple] = []

    def get_user_info(self, openid, lang="zh_CN"):
        self.calls.append(("get_user_info", openid))
        return self.users.get(openid, {"subscribe": 1, "openid": openid})

    def create_qrcode(self, scene_str, expire_seconds=None):
        self.calls.append(("create_qrcode", scene_str, expire_seconds))
        return {"ticket": "TICKET-" + scene_str, "url": "http://weixin.qq.com/q/" + scene_str}


@pytest.fixture
def fake_oa(stand_in, settings):
    """A FakeOA answering every official-account call Siyu makes."""
    fake = FakeOA()
    stand_in(oa=fake)
    return fake


@pytest.fixture
def fake_wecom(stand_in, settings):
    """A FakeWeCom answering every WeCom call Siyu makes."""
    fake = FakeWeCom()
    stand_in(wecom=fake)
    return fake
