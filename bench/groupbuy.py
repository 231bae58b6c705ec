"""Group-buy on PostgreSQL under 50 concurrent clients: seat reservations/s and Pay notifications/s, each next to
a baseline measured in the same run.

- reservations: `campaigns.groupbuy.seats.join_group` / `open_group` (seat UPDATE, stock UPDATE, order row,
  timeline event, hold job queued), one transaction each, versus the bare conditional seat UPDATE alone.
- notifications: signed Pay v3 notifications POSTed to a served Siyu's /webhooks/wechatpay (signature, timestamp,
  AES-256-GCM, order lookup, inbox insert, answer), then the stored events applied (order paid, group counters,
  timeline): handled/s counts both, versus bare signature verification of the same notifications.

Each line ends with the ratio of Siyu's rate to its baseline's.

Usage: python bench/groupbuy.py [--url postgresql+psycopg://…/siyu_groupbuy_bench] [--seats N] [--notes N]
"""
from __future__ import annotations

import argparse
import os
import random
import secrets
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CLIENTS = 50


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f}/s ({n:,} in {seconds:.2f} s)"


def parallel(fn, items) -> float:
    began = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(fn, items))
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("SIYU_BENCH_GROUPBUY_URL",
                                                        "postgresql+psycopg://postgres@127.0.0.1:5432/siyu_groupbuy_bench"))
    parser.add_argument("--seats", type=int, default=4000)
    parser.add_argument("--notes", type=int, default=1500)
    args = parser.parse_args()
    from bench._pgdb import ensure_database

    ensure_database(args.url, fresh=True)
    tmp = tempfile.mkdtemp(prefix="siyu-bench-")
    from bot.sandbox.serve import free_port

    port = free_port()
    os.environ.update(SIYU_DATABASE_URL=args.url, SIYU_VAR_DIR=f"{tmp}/var", SIYU_PUBLIC_URL=f"http://127.0.0.1:{port}/")
    for name in list(os.environ):
        if name.startswith(("SIYU_PAY_", "SIYU_MP_", "SIYU_REDIS_URL")):
            del os.environ[name]

    from sqlalchemy import text

    import config.database
    import webhooks.inbox
    from config.database import make_engine, session_scope
    from config.queue import recording
    from config.types import utcnow
    from siyu import wiring
    from siyu.models import metadata

    # One connection per client (the default pool, 30, would make clients queue for connections, not for rows).
    engine = make_engine(args.url, pool_size=CLIENTS + 10, max_overflow=10)
    config.database.engine_for = webhooks.inbox.engine_for = lambda url, busy_timeout=30.0: engine
    wiring.install()
    metadata.create_all(engine)
    with recording() as jobs:
        reservations(args, engine, session_scope, utcnow, text)
        notifications(args, port, session_scope, jobs)


def _members(n: int, session_scope) -> list[int]:
    from bot.credentials import mp_credentials
    from config.settings import get_settings
    from membership.models import Identity, Member

    appid = mp_credentials(get_settings()).app_id
    with session_scope() as s:
        members = [Member(name=f"顾客{i}") for i in range(n)]
        s.add_all(members)
        s.flush()
        s.add_all(Identity(member_id=m.id, type="mp_openid", scope=appid, value=f"oB{m.id:08d}") for m in members)
        return [m.id for m in members]


def _offer(session_scope, utcnow, stock: int) -> int:
    from campaigns.groupbuy.models import Offer

    now = utcnow()
    with session_scope() as s:
        offer = Offer(name="bench", price_fen=100, original_price_fen=200, group_size=5, time_limit_minutes=60,
                      stock=stock, stock_taken=0, starts_at=now - timedelta(minutes=1), ends_at=now + timedelta(days=1),
                      stores=[])
        s.add(offer)
        s.flush()
        return offer.id


def reservations(args, engine, session_scope, utcnow, text) -> None:
    from campaigns.groupbuy import seats
    from config.errors import Conflict

    members = _members(args.seats, session_scope)
    offer_id = _offer(session_scope, utcnow, args.seats)
    open_groups: list[int] = []
    lock = threading.Lock()

    def reserve(member_id: int) -> None:
        # Join one of the ten newest groups with room, as consumers shown an offer's open groups do, or open one
        # when fewer than ten have room. Every reservation also takes the offer's stock: that row is shared by all.
        rnd = random.Random(member_id)
        while True:
            with lock:
                group_id = rnd.choice(open_groups[-10:]) if len(open_groups) >= 10 else None
            try:
                with session_scope() as s:
                    if group_id is None:
                        seat = seats.open_group(s, offer_id=offer_id, member_id=member_id)
                    else:
                        seats.join_group(s, group_id=group_id, member_id=member_id)
                if group_id is None:
                    with lock:  # visible to the others once committed
                        open_groups.append(seat.group_id)
                return
            except Conflict:
                with lock:
                    if group_id in open_groups:
                        open_groups.remove(group_id)

    log(f"reserving {len(members):,} seats")
    took = parallel(reserve, members)
    with engine.connect() as conn:
        seats_taken = conn.execute(text("SELECT sum(seats), max(seats) FROM groupbuy_groups")).one()
    assert seats_taken[0] == args.seats and seats_taken[1] <= 5, seats_taken

    # Baseline: the bare conditional seat UPDATE, one transaction each, on groups of the same shape.
    with engine.begin() as conn:
        conn.execute(text("UPDATE groupbuy_groups SET seats = 0, status = 'open'"))
        ids = [r[0] for r in conn.execute(text("SELECT id FROM groupbuy_groups ORDER BY id"))]
    bare = text("UPDATE groupbuy_groups SET seats = seats + 1 WHERE id = :g AND seats < size AND status = 'open' "
                "AND expires_at > now() RETURNING seats")

    def bare_reserve(i: int) -> None:
        with engine.begin() as conn:
            conn.execute(bare, {"g": ids[i // 5]}).first()  # 50 clients over ~10 groups at a time, as above

    log("baseline: bare seat UPDATEs")
    base = parallel(bare_reserve, range(len(ids) * 5))
    ours, bare_rate = args.seats / took, len(ids) * 5 / base
    print(f"seat reservations, {CLIENTS} clients: {rate(args.seats, took)}; "
          f"baseline bare conditional UPDATE: {rate(len(ids) * 5, base)}; "
          f"ratio {ours / bare_rate:.2f} (a reservation costs {bare_rate / ours:.1f} bare UPDATEs)")


def notifications(args, port, session_scope, jobs) -> None:
    import httpx

    from bot.credentials import mp_credentials, sandbox_file, sandbox_pay_credentials
    from bot.pay_keys import PayKeys
    from bot.sandbox.callbacks import pay_notification
    from bot.sandbox.serve import serve_in_background
    from campaigns.groupbuy import seats
    from config.settings import get_settings
    from config.types import utcnow
    from webhooks.inbox import process_inbox

    settings = get_settings()
    creds = sandbox_pay_credentials(settings)
    appid = mp_credentials(settings).app_id
    members = _members(args.notes, session_scope)
    offer_id = _offer(session_scope, utcnow, args.notes)
    with session_scope() as s:  # one group per order: every payment lands, none fills a group
        orders = [seats.open_group(s, offer_id=offer_id, member_id=m) for m in members]
    key_path = str(sandbox_file(settings, "pay_platform_key.pem"))
    notes = []
    for o in orders:
        resource = {"mchid": creds.mch_id, "appid": appid, "out_trade_no": o.out_trade_no, "trade_state": "SUCCESS",
                    "transaction_id": "4200" + secrets.token_hex(12), "amount": {"total": o.amount_fen}}
        notes.append(pay_notification(creds, key_path, resource))
    from siyu.app import create_app

    served = serve_in_background(create_app(), port=port)
    jobs.clear()
    local = threading.local()

    def post(note) -> None:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=served.url, timeout=60)
        answer = local.client.post("/webhooks/wechatpay", content=note[1], headers=note[0])
        assert answer.status_code == 200, answer.text

    log(f"posting {len(notes):,} notifications")
    took = parallel(post, notes)
    inbox_ids = [job.args[0] for job in jobs if job.func is process_inbox]
    assert len(inbox_ids) == len(notes), (len(inbox_ids), len(notes))
    applied = parallel(process_inbox, inbox_ids)
    served.stop()
    keys = PayKeys(creds)

    def bare_verify(note) -> None:
        keys.verify(note[0], note[1])

    base = parallel(bare_verify, notes)
    handled, bare_rate = len(notes) / (took + applied), len(notes) / base
    print(f"notifications, {CLIENTS} clients: handled {rate(len(notes), took + applied)} (received and stored "
          f"{rate(len(notes), took)}, then applied {rate(len(inbox_ids), applied)}); baseline bare signature "
          f"verification: {rate(len(notes), base)}; ratio {handled / bare_rate:.3f} "
          f"(handling one costs {bare_rate / handled:.1f} bare verifications)")


if __name__ == "__main__":
    main()
