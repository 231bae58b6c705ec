"""Campaign engine benchmark on PostgreSQL and Redis: prints figures, asserts nothing.

    SIYU_BENCH_MEMBERS=1000000 .venv/bin/python bench/campaigns.py [--url postgresql+psycopg://…/siyu_campaigns]
        [--redis redis://127.0.0.1:6379/0] [--members N]

Builds its own schema (DROP SCHEMA public CASCADE) and, server-side with generate_series, members (default
1,000,000, or SIYU_BENCH_MEMBERS) with a WeCom identity and one active relation each over 200 staff, every
tenth following a second staff member more recently, and a segment holding them all. Then, in one run:

- ledger rows planned/s: `campaigns.ledger.plan` (batches of members: owner by window function, identity,
  holdout, quota reservation, chunk; send rows and ledger rows by INSERT … SELECT … ON CONFLICT DO NOTHING)
  beside the plain INSERT … SELECT of the same rows into a table of the ledger's shape (its unique key,
  indexes and foreign keys) — the baseline ratio;
- grouped sends/s: the launched campaign's run job, queued on RQ in Redis and run by an RQ worker in this
  process, claims every chunk through the contact policy and sends it in add_msg_template calls to a stand-in
  WeCom that answers at once (no network); beside the plain set-based UPDATEs that move the same rows
  planned → claimed → submitted in the baseline table.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import text  # noqa: E402

STAFF = 200
NOON = datetime(2026, 3, 10, 4, 0, tzinfo=timezone.utc)  # 12:00 in Shanghai: outside quiet hours


def log(msg: str) -> None:
    print(msg, flush=True)


class InstantWeCom:
    """add_msg_template answered at once with a fresh msgid."""

    def __init__(self):
        self.calls = 0

    def add_msg_template(self, body):
        self.calls += 1
        return {"errcode": 0, "msgid": f"bench{self.calls:08d}", "fail_list": []}


def build(engine, members: int) -> None:
    from siyu.models import metadata

    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    metadata.create_all(engine)
    fill = [
        "INSERT INTO stores (id, code, name, created_at) VALUES (1, 'S001', '店', now())",
        "INSERT INTO staff (id, userid, name, store_id, role, active, source, created_at) "
        "SELECT i, 'u' || i, 'u' || i, 1, 'staff', true, 'api', now() FROM generate_series(1, :s) i",
        "INSERT INTO members (id, store_id, created_at, updated_at) SELECT i, 1, now(), now() "
        "FROM generate_series(1, :n) i",
        "INSERT INTO identities (member_id, type, scope, value, verified, created_at) "
        "SELECT i, 'wecom_external', 'corp', 'wm' || i, true, now() FROM generate_series(1, :n) i",
        "INSERT INTO relations (staff_id, member_id, status, added_at) "
        "SELECT 1 + i % :s, i, 'active', now() - interval '30 days' FROM generate_series(1, :n) i",
        "INSERT INTO relations (staff_id, member_id, status, added_at) "
        "SELECT 1 + (i + 7) % :s, i, 'active', now() FROM generate_series(10, :n, 10) i",
        "INSERT INTO segments (id, name, definition, depends_on, relative_dates, created_at, updated_at) "
        "VALUES (1, 'all', '{\"channel\": \"wecom\"}', '[]', false, now(), now())",
        "INSERT INTO segment_membership (segment_id, member_id, entered_at) SELECT 1, i, now() "
        "FROM generate_series(1, :n) i",
    ]
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL session_replication_role = replica"))  # no foreign-key checks while filling
        for sql in fill:
            conn.execute(text(sql), {"n": members, "s": STAFF})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def baseline_plan(engine, members: int) -> float:
    """The plain INSERT … SELECT of the same ledger rows (no owner, no quota, no chunks)."""
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE bench_steps (LIKE campaign_steps INCLUDING ALL)"))
        for column, table in (("run_id", "campaign_runs"), ("campaign_id", "campaigns"), ("member_id", "members"),
                              ("send_id", "campaign_sends")):  # the ledger's foreign keys too: the same writes
            conn.execute(text(f"ALTER TABLE bench_steps ADD FOREIGN KEY ({column}) REFERENCES {table} (id)"))
    sql = text("INSERT INTO bench_steps (key, run_id, campaign_id, member_id, step, status, staff_id, store_id, "
               "external_userid, quota_month, updated_at) "
               "SELECT 'run:1:member:' || member_id || '\\:wecom_mass_message', 1, 1, member_id, "
               "'wecom_mass_message', 'planned', 1 + member_id % 200, 1, 'wm' || member_id, '202603', now() "
               "FROM segment_membership WHERE segment_id = 1 ON CONFLICT DO NOTHING")

    def run():
        with engine.begin() as conn:
            conn.execute(sql)
    return timed(run)


def baseline_send(engine) -> float:
    """The plain set-based moves of the same rows: planned → claimed → submitted."""
    def run():
        with engine.begin() as conn:
            conn.execute(text("UPDATE bench_steps SET status = 'claimed', contacted_at = now() "
                              "WHERE status = 'planned'"))
        with engine.begin() as conn:
            conn.execute(text("UPDATE bench_steps SET status = 'submitted', submitted_at = now() "
                              "WHERE status = 'claimed'"))
    return timed(run)


def ratio(mine: float, base: float) -> str:
    return f"{mine / base:.1f}× the baseline's time"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("SIYU_BENCH_DATABASE_URL",
                                                        "postgresql+psycopg://postgres@127.0.0.1:5432/siyu_campaigns"))
    parser.add_argument("--redis", default=os.environ.get("SIYU_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--members", type=int, default=int(os.environ.get("SIYU_BENCH_MEMBERS", "1000000")))
    args = parser.parse_args()
    from bench._pgdb import ensure_database

    ensure_database(args.url)
    os.environ["SIYU_DATABASE_URL"] = args.url
    os.environ["SIYU_REDIS_URL"] = args.redis
    os.environ["SIYU_QUIET_HOURS"] = ""
    os.environ["SIYU_TIMEZONE"] = "Asia/Shanghai"

    from rq import Queue, SimpleWorker

    from bot.clients import override
    from campaigns import clock, ledger
    from campaigns.fanout import enqueue_run
    from campaigns.models import Campaign, CampaignRun, CampaignSend
    from config.database import engine_for, session_scope
    from config.redis import get_redis
    from siyu import wiring

    wiring.install()
    engine = engine_for(args.url)
    log(f"building {args.members:,} members over {STAFF} staff (every tenth following two) …")
    log(f"  built in {timed(lambda: build(engine, args.members)):.1f} s")

    with session_scope() as s:
        campaign = Campaign(name="bench", spec={"action": {"type": "wecom_mass_message", "text": "hi"}},
                            segment_id=1, schedule_kind="manual", action_type="wecom_mass_message", status="running")
        s.add(campaign)
        s.flush()
        run = CampaignRun(campaign_id=campaign.id, key="manual", status="sending", due_at=NOON)
        s.add(run)
        s.flush()
        run_id = run.id

    log("ledger rows planned (PostgreSQL):")
    base = baseline_plan(engine, args.members)
    rows = 0

    def plan():
        nonlocal rows
        rows = ledger.plan(run_id, now=NOON)
    planned = timed(plan)
    log(f"  plain INSERT … SELECT: {args.members / base:,.0f} rows/s ({base:.2f} s)")
    log(f"  ledger.plan: {rows / planned:,.0f} rows/s ({planned:.2f} s), {ratio(planned, base)}")

    log("grouped sends (run job on RQ: claim, policy, add_msg_template to an instant stand-in):")
    base = baseline_send(engine)
    redis = get_redis()
    queue = Queue("default", connection=redis)
    queue.empty()
    wecom = InstantWeCom()

    def fan_out():
        with override(wecom=wecom), clock.using(lambda: NOON):
            enqueue_run(run_id, tag=f"bench{time.time_ns()}")  # not deduplicated against an earlier bench's job
            SimpleWorker([queue], connection=redis).work(burst=True)
    sent = timed(fan_out)
    with session_scope() as s:
        submitted = s.scalar(text("SELECT count(*) FROM campaign_steps WHERE status = 'submitted'"))
        calls = s.query(CampaignSend).filter(CampaignSend.status == "submitted").count()
    log(f"  plain UPDATEs planned → claimed → submitted: {args.members / base:,.0f} rows/s ({base:.2f} s)")
    log(f"  fan-out: {submitted:,} rows in {calls} calls ({wecom.calls} made): {submitted / sent:,.0f} rows/s, "
        f"{calls / sent:,.1f} calls/s ({sent:.2f} s), {ratio(sent, base)}")


if __name__ == "__main__":
    main()
