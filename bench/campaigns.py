"""Campaign engine benchmark on PostgreSQL: prints figures, asserts nothing.

    .venv/bin/python bench/campaigns.py [--url postgresql+psycopg://…/siyu_bench] [--members 1000000]

Builds its own schema (DROP SCHEMA public CASCADE), generates members with a WeCom identity, one active
relation each over 200 staff and a segment holding them all (server-side, generate_series). Then prints:
ledger rows planned per second by `campaigns.ledger.plan` (the INSERT … SELECT with owner, identity and
chunk, ON CONFLICT DO NOTHING, plus the send rows and their links) beside the plain `INSERT … SELECT` of the
same member ids into a bare table (the baseline ratio), in the same run; and grouped sends per second: ledger
rows claimed through the contact policy and quota reservations and submitted in add_msg_template chunks, to a
stand-in WeCom client that answers at once (no network). Redis plays no part in these two paths (jobs only
carry run ids), so none is needed.
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
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO stores (id, code, name, created_at) VALUES (1, 'S001', '店', now())"))
        conn.execute(text("INSERT INTO staff (id, userid, name, store_id, role, active, source, created_at) "
                          "SELECT i, 'u' || i, 'u' || i, 1, 'staff', true, 'api', now() "
                          "FROM generate_series(1, :n) i"), {"n": STAFF})
        conn.execute(text("INSERT INTO members (id, store_id, created_at, updated_at) "
                          "SELECT i, 1, now(), now() FROM generate_series(1, :n) i"), {"n": members})
        conn.execute(text("INSERT INTO identities (member_id, type, scope, value, verified, created_at) "
                          "SELECT i, 'wecom_external', 'corp', 'wm' || i, true, now() FROM generate_series(1, :n) i"),
                     {"n": members})
        conn.execute(text("INSERT INTO relations (staff_id, member_id, status, added_at) "
                          "SELECT 1 + i % :s, i, 'active', now() FROM generate_series(1, :n) i"),
                     {"n": members, "s": STAFF})
        conn.execute(text("INSERT INTO segments (id, name, definition, depends_on, relative_dates, created_at, "
                          "updated_at) VALUES (1, 'all', '{\"channel\": \"wecom\"}', '[]', false, now(), now())"))
        conn.execute(text("INSERT INTO segment_membership (segment_id, member_id, entered_at) "
                          "SELECT 1, i, now() FROM generate_series(1, :n) i"), {"n": members})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("SIYU_BENCH_DATABASE_URL",
                                                        "postgresql+psycopg://postgres@127.0.0.1:5432/siyu_campaigns"))
    parser.add_argument("--members", type=int, default=1_000_000)
    args = parser.parse_args()
    from bench._pgdb import ensure_database

    ensure_database(args.url)
    os.environ["SIYU_DATABASE_URL"] = args.url
    os.environ["SIYU_QUIET_HOURS"] = ""
    os.environ["SIYU_TIMEZONE"] = "Asia/Shanghai"
    os.environ.pop("SIYU_REDIS_URL", None)

    from bot.clients import override
    from campaigns import clock, fanout, ledger
    from campaigns.models import Campaign, CampaignRun
    from config.database import engine_for, session_scope
    from siyu import wiring

    wiring.install()
    engine = engine_for(args.url)
    log(f"building {args.members:,} members over {STAFF} staff …")
    started = time.perf_counter()
    build(engine, args.members)
    log(f"  built in {time.perf_counter() - started:.1f} s")

    with session_scope() as s:
        s.execute(text("CREATE TABLE bench_baseline (run_id int, member_id bigint, key text UNIQUE)"))
        campaign = Campaign(name="bench", spec={"action": {"type": "wecom_mass_message", "text": "hi"}},
                            segment_id=1, schedule_kind="manual", action_type="wecom_mass_message", status="running")
        s.add(campaign)
        s.flush()
        run = CampaignRun(campaign_id=campaign.id, key="manual", status="sending", due_at=NOON)
        s.add(run)
        s.flush()
        campaign_id, run_id = campaign.id, run.id

    log("ledger planning (PostgreSQL):")
    started = time.perf_counter()
    with session_scope() as s:
        s.execute(text("INSERT INTO bench_baseline SELECT 1, member_id, 'run:1:member:' || member_id "
                       "FROM segment_membership WHERE segment_id = 1 ON CONFLICT DO NOTHING"))
    baseline = time.perf_counter() - started
    started = time.perf_counter()
    with session_scope() as s:
        rows = ledger.plan(s, run_id=run_id, campaign_id=campaign_id, segment_id=1, step="wecom_mass_message",
                           now=NOON)
    planned = time.perf_counter() - started
    log(f"  plain INSERT … SELECT: {args.members / baseline:,.0f} rows/s ({baseline:.2f} s)")
    log(f"  ledger.plan: {rows / planned:,.0f} rows/s ({planned:.2f} s), {planned / baseline:.1f}× the baseline")

    log("grouped sends (claim, policy, quota reservation, add_msg_template to an instant stand-in):")
    wecom = InstantWeCom()
    started = time.perf_counter()
    with override(wecom=wecom), clock.using(lambda: NOON):
        fanout.fan_out(run_id)
    sent = time.perf_counter() - started
    log(f"  {rows:,} rows in {wecom.calls} calls: {rows / sent:,.0f} rows/s, {wecom.calls / sent:,.1f} calls/s "
        f"({sent:.2f} s)")


if __name__ == "__main__":
    main()
