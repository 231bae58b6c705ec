"""The browser tests' helpers: Siyu served over real HTTP with the sandbox, Debian's chromium through Playwright,
and the sandbox data the screenshots in docs/screenshots/ are made from (`SIYU_SCREENSHOTS=docs/screenshots`)."""
from __future__ import annotations

import os
import shutil
from datetime import datetime, timedelta
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
    seed_commerce(ids, staff)
    return {"ids": ids, "names": names, "manager2": manager2}


def seed_commerce(ids: list[int], staff: dict) -> None:
    """What the overview's commerce sections read: a campaign's ledger, two weeks of group-buy with a failed group
    refunded, and tomorrow's bookings in several states (the rows as the services would have left them)."""
    from campaigns.bookings import catalog
    from campaigns.bookings import service as bookings
    from campaigns.groupbuy.models import Group, Offer, Order, Refund
    from campaigns.models import Campaign, CampaignRun, CampaignStep
    from config.settings import get_settings

    now = utcnow()
    with session_scope() as s:
        campaign = Campaign(name="春季验光回访", spec={"action": {"type": "wecom_mass_message"}},
                            schedule_kind="manual", action_type="wecom_mass_message", status="completed",
                            launched_at=now - timedelta(days=2))
        s.add(campaign)
        s.flush()
        run = CampaignRun(campaign_id=campaign.id, key="manual", due_at=now, status="sent")
        s.add(run)
        s.flush()
        for i, member_id in enumerate(ids):
            owner = staff["wangwu" if i >= 8 else ("zhangsan" if i % 2 else "lisi")]
            sent = i % 6 != 5
            s.add(CampaignStep(key=f"run:{run.id}:member:{member_id}:send", run_id=run.id, campaign_id=campaign.id,
                               member_id=member_id, step="send", staff_id=owner.id, store_id=owner.store_id,
                               status="confirmed" if sent else "skipped", reason=None if sent else "frequency_cap",
                               result=("delivered" if i % 4 else "not_confirmed") if sent else None,
                               submitted_at=now if sent else None, confirmed_at=now if sent else None))
        offer = Offer(name="双人验光团", price_fen=3990, original_price_fen=9900, group_size=2, time_limit_minutes=1440,
                      stock=200, stock_taken=0, starts_at=now - timedelta(days=20), ends_at=now + timedelta(days=20),
                      stores=["S001", "S002"])
        s.add(offer)
        s.flush()
        for n, (a, b, days_ago, fails) in enumerate(((0, 1, 12, False), (2, 3, 9, False), (4, 5, 6, True),
                                                      (8, 9, 4, False), (6, 7, 2, False), (10, 11, 1, False))):
            closed = now - timedelta(days=days_ago)
            group = Group(offer_id=offer.id, leader_member_id=ids[a], size=2, seats=0 if fails else 2,
                          paid=0 if fails else 2, status="failed" if fails else "succeeded", expires_at=closed,
                          closed_at=closed, created_at=closed - timedelta(hours=3))
            s.add(group)
            s.flush()
            for k, member in enumerate((a,) if fails else (a, b)):
                order = Order(out_trade_no=f"GBDEMO{n:02d}{k}", offer_id=offer.id, group_id=group.id,
                              member_id=ids[member], openid=f"oDEMO{member}", amount_fen=3990,
                              status="refunded" if fails else "paid", hold_until=closed, transaction_id=f"T{n}{k}",
                              created_at=closed - timedelta(hours=2), paid_at=closed - timedelta(hours=1),
                              closed_at=closed if fails else None)
                s.add(order)
                s.flush()
                if fails:
                    s.add(Refund(order_id=order.id, out_refund_no=f"R{order.out_trade_no}",
                                 out_trade_no=order.out_trade_no, amount_fen=3990, reason="拼团未成团",
                                 status="succeeded", created_at=closed, settled_at=closed))
        offer.stock_taken = 11
        tz = get_settings().tz
        day = (now.astimezone(tz) + timedelta(days=1)).date()
        for code in ("S001", "S002"):
            catalog.set_schedule(s, store=service.get_store_by_code(s, code), capacity=4, staff_capacity=1,
                                 hours=[catalog.Hours(d, 9 * 60, 21 * 60) for d in range(1, 8)])
        catalog.create_service(s, code="eye", name="验光", duration_minutes=60, price_fen=0, stores=["S001", "S002"])
        moves = ([], ["checked_in"], ["checked_in", "in_service"], ["cancelled"], [], ["checked_in", "in_service",
                                                                                    "ready"], [], ["cancelled"])
        for i, member_id in enumerate(ids):
            store = "S001" if i < 8 else "S002"
            booking, _ = bookings.book(s, member_id=member_id, store=store, service="eye",
                                       start=datetime(day.year, day.month, day.day, 10 + i % 6, tzinfo=tz))
            for to in moves[i % len(moves)]:
                bookings.move(s, booking_id=booking.id, to=to)
