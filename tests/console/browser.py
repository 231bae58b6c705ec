"""The browser tests' helpers: Siyu served over real HTTP with the sandbox, Debian's chromium through Playwright,
and the sandbox data the screenshots in docs/screenshots/ are made from (`SIYU_SCREENSHOTS=docs/screenshots`)."""
from __future__ import annotations

import os
import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from config.database import session_scope
from config.types import utcnow
from membership import service, tokens
from membership.identity import IdentityIn, bind
from membership.models import Role
from membership.tags import ensure_tag, tag_member
from membership.timeline import record_event

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 375, "height": 740}


def require_chromium() -> None:
    """Skip without chromium and Playwright, but fail when CI says every service must be there."""
    missing = [what for what, ok in (("chromium", Path(CHROMIUM).exists()),
                                     ("playwright", shutil.which("playwright") or _has_playwright())) if not ok]
    if missing:
        if os.environ.get("SIYU_REQUIRE_SERVICES") == "1":
            pytest.fail(f"browser tests need {', '.join(missing)} (SIYU_REQUIRE_SERVICES=1); "
                        "apt-get install -y chromium, pip install playwright")
        pytest.skip(f"browser tests need {', '.join(missing)}")


def _has_playwright() -> bool:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return True


def screenshot(page, tmp_path: Path, name: str) -> Path:
    """Save a screenshot under the test's temporary directory, and into SIYU_SCREENSHOTS when that is set."""
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    target = os.environ.get("SIYU_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / f"{name}.png")
    return path


def seed_demo(sandbox) -> dict:
    """A small chain as the sandbox would have filled it: two stores, staff, customers over two weeks, tags."""
    now = utcnow()
    with session_scope() as s:
        s1 = service.create_store(s, code="S001", name="静安店", city="上海")
        s2 = service.create_store(s, code="S002", name="徐汇店", city="上海")
        s.flush()
        staff = {u: service.upsert_staff(s, userid=u, name=n, store_id=st.id)
                 for u, n, st in (("zhangsan", "张三", s1), ("lisi", "李四", s1), ("wangwu", "王五", s2))}
        for u, st in staff.items():
            sandbox.add_staff(u, st.name)
        vip, new = ensure_tag(s, "VIP", "会员等级"), ensure_tag(s, "新客", "来源")
        names = ["王小明", "赵小红", "钱多多", "孙丽", "周杰", "吴芳", "郑浩", "冯雪", "陈晨", "褚楠", "卫东", "蒋琳"]
        ids = []
        for i, name in enumerate(names):
            store, userid = (s1, "zhangsan" if i % 2 else "lisi") if i < 8 else (s2, "wangwu")
            idents = [IdentityIn("phone", f"1380013{i:04d}", verified=True),
                      IdentityIn("wecom_external", f"wmSANDBOX{i:04d}", "wwsandbox00000001")]
            if i % 3 == 0:
                idents.append(IdentityIn("mp_openid", f"oMP{i:04d}", "wxsandboxmp000001"))
            member = bind(s, idents, name=name, store_id=store.id).member
            sandbox.add_external_contact(userid, external_userid=f"wmSANDBOX{i:04d}", name=name)
            service.add_relation(s, staff=staff[userid], member_id=member.id, state="store-qr",
                                 added_at=now - timedelta(days=13 - i))
            if i % 4 == 0:
                tag_member(s, member.id, vip)
            tag_member(s, member.id, new)
            record_event(s, member.id, "message.received", {"channel": "wecom", "text": "你好，想预约验光"},
                         at=now - timedelta(days=12 - i, hours=2))
            ids.append(member.id)
        for i in (3, 9):
            service.end_relation(s, staff=staff["wangwu" if i >= 8 else "zhangsan"], member_id=ids[i],
                                 status=service.RelationStatus.lost, at=now - timedelta(days=1))
        _, manager2 = tokens.create_token(s, name="徐汇店长", role=Role.store_manager, store="S002")
    return {"ids": ids, "names": names, "manager2": manager2}
