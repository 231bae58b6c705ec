"""`siyu demo`: a scripted story against the sandbox, told through Siyu's real HTTP surface.

A store opens a 联系我 code; three customers scan it (one of them already follows the official account,
one delivery is repeated as Tencent retries); a follower asks about glasses; a marketer cuts a segment.
Everything runs in a temporary directory: embedded mode, SQLite, the in-process sandbox.
"""
from __future__ import annotations

import os
import tempfile
import time

import httpx
from rich.console import Console
from rich.table import Table

ADMIN = "demo-admin-token-0123456789abcdef"
console = Console()


def _step(text: str) -> None:
    console.print(f"\n[bold cyan]▸ {text}[/bold cyan]")


def _wait_processed(api: httpx.Client, timeout: float = 30) -> None:
    from config.queue import in_process_runner

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # the inbox emptied, and the jobs it started (welcome messages, segment re-checks) finished too
        if not api.get("/api/v1/inbox", params={"status": "received"}).json()["items"] and in_process_runner().drain(1):
            return
        time.sleep(0.2)
    raise RuntimeError("callbacks were not processed in time")


def run() -> None:
    """Tell the story; raises when any step does not go as Siyu promises."""
    from bot.sandbox.serve import free_port, serve_in_background
    from config.settings import get_settings

    tmp = tempfile.mkdtemp(prefix="siyu-demo-")
    port = free_port()
    for name in [n for n in os.environ if n.startswith("SIYU_")]:
        del os.environ[name]
    os.environ.update(SIYU_DATABASE_URL=f"sqlite:///{tmp}/siyu.db", SIYU_VAR_DIR=f"{tmp}/var",
                      SIYU_ADMIN_TOKEN=ADMIN, SIYU_PUBLIC_URL=f"http://127.0.0.1:{port}/", SIYU_LOG_LEVEL="WARNING")
    get_settings.cache_clear()
    from config.logging import setup_logging

    setup_logging()

    from bot.credentials import oa_credentials, wecom_credentials
    from bot.sandbox import callbacks
    from bot.sandbox import events as tencent
    from bot.sandbox.state import get_state
    from siyu import db
    from siyu.server import create_server

    db.upgrade()
    server = serve_in_background(create_server(), port=port)
    sandbox = get_state()
    wecom, oa = wecom_credentials(get_settings()), oa_credentials(get_settings())
    base = server.url.rstrip("/")
    api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30)
    try:
        console.print(f"[bold]Siyu demo[/bold] — server {base}, sandbox {base}/sandbox, data in {tmp}")

        _step("The chain opens store S001 and its staff member 张三 (zhangsan)")
        sandbox.add_staff("zhangsan", "张三")
        api.post("/api/v1/stores", json={"code": "S001", "name": "静安店", "city": "上海"}).raise_for_status()
        api.post("/api/v1/staff", json={"userid": "zhangsan", "name": "张三", "store": "S001"}).raise_for_status()
        code = api.post("/api/v1/channel-codes", json={
            "name": "静安店前台码", "store": "S001", "staff": ["zhangsan"], "tags": ["新客"],
            "welcome": {"text": "欢迎光临静安店！回复“验光”预约免费验光。"}}).json()
        console.print(f"  联系我 code created in WeCom: config_id={code['config_id']} state={code['state']}")

        _step("李雷 already follows the official account")
        sandbox.add_oa_follower(openid="oLILEI", unionid="uLILEI", nickname="李雷")
        callbacks.send_oa_event(f"{base}/webhooks/official-account", oa, tencent.oa_subscribe("oLILEI", to=oa.app_id),
                                "oLILEI").raise_for_status()

        _step("Three customers scan the code; WeCom delivers one event twice (a retry)")
        customers = (("wmLILEI", "李雷", "uLILEI"), ("wmHANMEI", "韩梅梅", None), ("wmLUCY", "Lucy", None))
        for ext, name, unionid in customers:
            sandbox.add_external_contact("zhangsan", external_userid=ext, unionid=unionid, name=name,
                                         state=code["state"])
            event = tencent.add_external_contact(wecom.corp_id, "zhangsan", ext, state=code["state"],
                                                 welcome_code=sandbox.new_welcome_code("zhangsan", ext))
            for _ in range(2 if ext == "wmHANMEI" else 1):
                r = callbacks.send_wecom_event(f"{base}/webhooks/wecom", wecom, event)
                console.print(f"  {name}: POST /webhooks/wecom → {r.status_code} {r.text!r}")

        _step("李雷 writes to the official account; a keyword auto-reply answers within the 5 s")
        api.post("/api/v1/auto-replies", json={"keywords": ["验光"], "match": "contains",
                                               "reply_text": "周六 10:00–18:00 可免费验光，回复“预约”留位。"}
                 ).raise_for_status()
        question = tencent.oa_text("oLILEI", "我想配一副近视眼镜，周六能验光吗", 9001, to=oa.app_id)
        reply = callbacks.send_oa_event(f"{base}/webhooks/official-account", oa, question, "oLILEI")
        text = callbacks.open_oa_reply(oa, reply.text)
        console.print(f"  answered {reply.status_code} with a passive reply: "
                      f"{'周六 10:00–18:00' in text and '周六 10:00–18:00 可免费验光…' or text!r}")
        _wait_processed(api)

        _step("Siyu's view: one member per person")
        members = api.get("/api/v1/members").json()["items"]
        table = Table("id", "name", "store", "identities", "tags", "relations")
        for m in members:
            table.add_row(str(m["id"]), m["name"] or "", m["store"] or "",
                          ", ".join(f"{i['type']}" for i in m["identities"]), ", ".join(m["tags"]),
                          ", ".join(f"{r['staff']}:{r['status']}" for r in m["relations"]))
        console.print(table)
        lilei = api.get("/api/v1/members", params={"unionid": "uLILEI"}).json()["items"][0]
        timeline = api.get(f"/api/v1/members/{lilei['id']}/timeline").json()["items"]
        console.print("  李雷's timeline: " + " · ".join(reversed([e["type"] for e in timeline])))
        console.print(f"  welcome messages sent through WeCom: {len(sandbox.welcome_sent)} (one per customer)")

        _step("A marketer cuts a segment: new customers who also follow the official account")
        preview = api.post("/api/v1/segments/preview", json={"definition": {
            "all": [{"tag": "新客"}, {"channel": "official_account"}]}}).json()
        console.print(f"  preview: {preview['count']} member(s) {preview['sample']}")

        assert len(members) == 3, "three people, three members"
        assert len(sandbox.welcome_sent) == 3, "one welcome each, the retried delivery changed nothing"
        assert preview["count"] == 1
        console.print("\n[bold green]✓ demo finished: one profile per person, nothing lost, "
                      "nothing doubled[/bold green]")
    finally:
        api.close()
        server.stop()
