"""Segments benchmark on PostgreSQL: prints figures, asserts nothing.

    .venv/bin/python bench/segments.py [--url postgresql+psycopg://…/siyu_seg] [--members 1000000]

Builds its own schema (DROP SCHEMA public CASCADE) and generates members with tags, traits, relations,
identities and ~10 timeline events each, server-side with generate_series, with foreign-key triggers off
and secondary indexes built after the load; the daily counter buckets are derived in one INSERT … SELECT
(the listeners keep them in production); then VACUUM ANALYZE. Then it prints: the full evaluation of a
10-leaf nested definition (target ≤ 1 s) against the one-statement compiler and the naive query over the raw
timeline (the baseline), the
entered/left diff after 1% of members change (target ≤ 2 s), both incremental (only the changed members,
as the listeners know them) and full (every member), and the per-event evaluation rate with 200 active
segments (target ≥ 40,000 events/s per core, beside the same events finding their segments unevaluated), and
the preview of three levels of twenty segment references
(8,821 nodes once inlined, two distinct leaves) next to a flat definition of the same two leaves and to the
same tree evaluated inlined at every occurrence (what previews did before references were shared).
`--members 100000` makes a quick run.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import time
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg  # noqa: E402
from sqlalchemy import func, select, text  # noqa: E402
from sqlalchemy.exc import DBAPIError  # noqa: E402

TODAY = date(2026, 3, 1)
TZ = "Asia/Shanghai"
EYE = {"service": "eye-test"}
LOADED = ("members", "member_tags", "traits", "identities", "relations", "timeline_events", "segment_event_days")
TYPES = ["booking.completed", "groupbuy.paid", "message.received", "oa.scanned", "booking.created", "contact.added"]

NESTED = {"all": [  # 10 leaves, nested three deep
    {"any": [{"tag": "VIP"}, {"tag": "金卡"}, {"trait": "age", "op": "gte", "value": 40}]},
    {"any": [{"event": "booking.completed", "count": {"gte": 1}, "within_days": 180, "where": EYE},
             {"not": {"event": "groupbuy.paid", "within_days": 30}}]},
    {"any": [{"store": "S003"}, {"store": "S007"}, {"channel": "wecom"}]},
    {"not": {"trait": "city", "op": "eq", "value": "北京"}},
    {"any": [{"trait": "birthday", "op": "anniversary_within_days", "value": 120}, {"not": {"tag": "tag9"}}]},
]}


def log(msg: str) -> None:
    print(msg, flush=True)


def timed(label: str, fn):
    started = time.perf_counter()
    result = fn()
    elapsed = time.perf_counter() - started
    log(f"  {label}: {elapsed:.3f} s")
    return result, elapsed


def build(engine, n: int) -> None:
    """Drop and recreate the schema, then fill it."""
    from siyu.models import metadata

    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    metadata.create_all(engine)
    steps = [
        ("stores", """INSERT INTO stores (id, code, name, created_at)
            SELECT g, 'S' || lpad(g::text, 3, '0'), 'store ' || g, now() FROM generate_series(1, 20) g"""),
        ("staff", """INSERT INTO staff (id, userid, name, store_id, role, active, created_at)
            SELECT g, 'staff' || g, 'staff ' || g, 1 + g % 20, 'staff', true, now() FROM generate_series(1, 200) g"""),
        ("tags", """INSERT INTO tags (id, name, group_name, visible_to_member, created_at)
            SELECT g, CASE g WHEN 1 THEN 'VIP' WHEN 2 THEN '金卡' ELSE 'tag' || g END, '', false, now()
            FROM generate_series(1, 50) g"""),
        ("members", f"""INSERT INTO members (id, name, store_id, created_at, updated_at)
            SELECT g, 'm' || g, 1 + (g * 7) % 20, now(), now() FROM generate_series(1, {n}) g"""),
        ("member_tags", f"""INSERT INTO member_tags (member_id, tag_id, source, created_at)
            SELECT DISTINCT g, 1 + (hashint4(g * k) & 2147483647) % 50, 'bench', now()
            FROM generate_series(1, {n}) g, generate_series(1, 2) k ON CONFLICT DO NOTHING"""),
        ("traits", f"""INSERT INTO traits (member_id, key, value, text_value, number_value, time_value, updated_at)
            SELECT g, 'city', NULL::jsonb, (ARRAY['上海','北京','深圳','广州','杭州'])[1 + g % 5], NULL::float8,
                   NULL::timestamptz, now() FROM generate_series(1, {n}) g
            UNION ALL SELECT g, 'age', NULL, NULL, 18 + g % 60, NULL, now() FROM generate_series(1, {n}) g
            UNION ALL SELECT g, 'birthday', NULL, NULL, NULL,
                   timestamptz '1970-01-01' + ((hashint4(g) & 2147483647) % 15000) * interval '1 day', now()
            FROM generate_series(1, {n}) g"""),
        ("identities", f"""INSERT INTO identities (member_id, type, scope, value, verified, created_at)
            SELECT g, 'wecom_external', 'corp', 'wm' || g, false, now() FROM generate_series(1, {n}) g
            WHERE g % 3 <> 0
            UNION ALL SELECT g, 'mp_openid', 'mp', 'o' || g, false, now() FROM generate_series(1, {n}) g
            WHERE g % 2 = 0"""),
        ("relations", f"""INSERT INTO relations (staff_id, member_id, status, added_at)
            SELECT 1 + g % 200, g, CASE WHEN g % 11 = 0 THEN 'lost' ELSE 'active' END, now()
            FROM generate_series(1, {n}) g"""),
        ("timeline_events (~10 per member)", f"""INSERT INTO timeline_events (member_id, type, at, data, recorded_at)
            SELECT g, (ARRAY{TYPES!r})[1 + (hashint4(g * 31 + k) & 2147483647) % 6],
                   timestamptz '{TODAY}T12:00:00+08:00'
                   - ((hashint4(g * 17 + k) & 2147483647) % 365) * interval '1 day',
                   CASE WHEN k % 2 = 0 THEN '{{"service": "eye-test"}}'::jsonb
                        ELSE '{{"service": "frames"}}'::jsonb END, now()
            FROM generate_series(1, {n}) g, generate_series(1, 10) k"""),
        ("daily counters (derived once; listeners keep them in production)",
         f"""INSERT INTO segment_event_days (member_id, type, where_key, day, n)
            SELECT member_id, type, '', (at AT TIME ZONE '{TZ}')::date, count(*) FROM timeline_events
            GROUP BY 1, 2, 4"""),
    ]
    loaded = [metadata.tables[t] for t in LOADED]
    with engine.begin() as conn:
        # Secondary indexes are built once after the load: maintaining them row by row is what made the
        # counter INSERT take minutes (random B-tree inserts with a small shared_buffers).
        for table in loaded:
            for index in table.indexes:
                index.drop(conn)
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL work_mem = '256MB'"))
        conn.execute(text("SET LOCAL synchronous_commit = off"))
        # The generated rows are consistent by construction: skip the per-row foreign-key triggers.
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        for label, sql in steps:
            started = time.perf_counter()
            conn.execute(text(sql))
            log(f"  {label}: {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL maintenance_work_mem = '512MB'"))
        conn.execute(text("SET LOCAL max_parallel_maintenance_workers = 2"))
        for table in loaded:
            for index in table.indexes:
                index.create(conn)
    log(f"  secondary indexes: {time.perf_counter() - started:.1f} s")
    vacuum(engine)


def vacuum(engine) -> None:
    """VACUUM ANALYZE the loaded tables, as autovacuum would soon after a bulk load."""
    started = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        # VACUUM sets the visibility map, without which no scan is index-only; ANALYZE gives the planner sizes.
        conn.execute(text(f"VACUUM ANALYZE {', '.join(LOADED)}"))
    log(f"  vacuum analyze: {time.perf_counter() - started:.1f} s")


def register_eye_filter(session) -> None:
    """Track the eye-test filter (back-fills its buckets from the timeline, as a new definition would)."""
    from segments.counters import ensure_filters
    from segments.language import parse

    started = time.perf_counter()
    ensure_filters(session, [parse({"event": "booking.completed", "where": EYE})])
    log(f"  back-fill of the eye-test filter's buckets: {time.perf_counter() - started:.1f} s")


def evaluation(session, ctx) -> None:
    from segments.idsets import matching_ids
    from segments.language import parse
    from segments.sql import members_query, prepare

    node = parse(NESTED)
    prepare(session)
    one_statement = members_query(node, ctx, {}, "postgresql")
    naive = members_query(node, ctx, {}, "postgresql", raw_timeline=True)
    count = lambda q: session.scalar(select(func.count()).select_from(q.subquery()))  # noqa: E731
    len(matching_ids(session, node, ctx, {}))  # warm the cache once, as a running server would be
    n1, t_sets = timed("10-leaf nested definition, leaf bitmaps combined (target ≤ 1 s)",
                       lambda: len(matching_ids(session, node, ctx, {})))
    n2, t_one = timed("same definition, one statement checking every member against each leaf",
                      lambda: count(one_statement))
    n3, t_naive = timed("same definition, naive query over the raw timeline (baseline)", lambda: count(naive))
    log(f"  members matched: {n1} (one statement: {n2}, naive: {n3}); speed-up over the raw timeline: "
        f"{t_naive / t_sets:.1f}×, over one statement: {t_one / t_sets:.1f}×")


def diff(session, ctx, n: int) -> None:
    from segments.idsets import ids_of, matching_bitmap
    from segments.language import parse
    from segments.materialise import apply_diff, apply_ids
    from segments.models import Segment
    from segments.sql import SqlCompiler, id_filter, prepare

    node = parse(NESTED)
    segment = Segment(name="bench", definition=NESTED, depends_on=[])
    session.add(segment)
    session.flush()
    prepare(session)
    full = lambda: apply_ids(session, segment.id, ids_of(matching_bitmap(session, node, ctx, {})))  # noqa: E731
    (entered, _), _ = timed("initial materialisation (leaf bitmaps, then one INSERT … SELECT)", full)
    session.commit()
    log(f"  segment size: {len(entered)}")
    changed = max(1, n // 100)
    rnd = random.Random(7)
    ids = rnd.sample(range(1, n + 1), changed)
    half = len(ids) // 2
    # 1% of members change: half gain the VIP tag, half lose their wecom identity.
    session.execute(text("INSERT INTO member_tags (member_id, tag_id, source, created_at) "
                         "SELECT unnest(:ids), 1, 'bench', now() ON CONFLICT DO NOTHING"), {"ids": ids[:half]})
    session.execute(text("DELETE FROM identities WHERE type = 'wecom_external' AND member_id = ANY(:ids)"),
                    {"ids": ids[half:]})
    session.commit()
    # Incremental: the changed members are known (the listeners note them), so only they are re-evaluated.
    prepare(session)
    scope = id_filter(ids, "postgresql")
    scoped = SqlCompiler(ctx, {}, "postgresql", scope=scope).condition(node)  # one statement, as refresh_members
    (entered, left), t_inc = timed(
        f"incremental entered/left diff of the {changed} changed members (1%) (target ≤ 2 s)",
        lambda: apply_diff(session, segment.id, scoped, scope))
    log(f"  entered {len(entered)}, left {len(left)}")
    session.rollback()
    # Full: every member re-evaluated once, diffed against the materialised set in the same statement.
    prepare(session)
    (entered, left), t_full = timed(f"full entered/left diff over all {n:,} members after the same change", full)
    log(f"  entered {len(entered)}, left {len(left)}; incremental is {t_full / t_inc:.0f}× faster than full")
    session.rollback()


def per_event(session, ctx) -> None:
    from segments.graph import depends_on, event_change_keys
    from segments.language import parse
    from segments.predicate import compile_predicate, load_states

    rnd = random.Random(11)
    templates = [
        lambda: {"all": [{"tag": rnd.choice(["VIP", "金卡", "tag7"])},
                         {"event": rnd.choice(TYPES), "within_days": rnd.randint(7, 180),
                          "count": {"gte": rnd.randint(1, 3)}}]},
        lambda: {"any": [{"trait": "age", "op": "gte", "value": rnd.randint(18, 70)},
                         {"store": f"S{rnd.randint(1, 20):03d}"}]},
        lambda: {"all": [{"event": "booking.completed", "where": EYE, "count": {"gte": 2}, "within_days": 90},
                         {"not": {"event": "groupbuy.paid", "within_days": rnd.randint(7, 60)}}]},
        lambda: {"all": [{"channel": "wecom"},
                         {"trait": "city", "op": "in", "value": rnd.sample(["上海", "北京", "深圳", "广州"], 2)},
                         {"event": rnd.choice(TYPES), "count": {"lt": rnd.randint(1, 4)}}]},
        lambda: {"any": [{"staff": f"staff{rnd.randint(1, 200)}"},
                         {"trait": "birthday", "op": "anniversary_within_days", "value": 30}]},
    ]
    segments = []
    for _ in range(200):
        node = parse(rnd.choice(templates)())
        segments.append((frozenset(depends_on(node, {})), compile_predicate(node, ctx, {})))
    states = list(load_states(session, rnd.sample(range(1, 50001), 2000)).values())
    events = [(rnd.choice(states), rnd.choice(TYPES)) for _ in range(100_000)]
    index: dict[str, list] = {}
    for deps, pred in segments:
        for key in deps:
            index.setdefault(key, []).append(pred)

    def run(evaluate=True):
        checks = 0
        for state, type_ in events:
            state.forget()  # a real event changes the state: nothing is remembered between events
            seen = set()
            for key in event_change_keys(type_, {}):
                for pred in index.get(key, ()):
                    if id(pred) not in seen:
                        seen.add(id(pred))
                        if evaluate:
                            pred(state)
                        checks += 1
        return checks

    _, t_bare = timed("baseline: the same events finding their affected segments, none evaluated",
                      lambda: run(False))
    checks, t = timed("per-event evaluation of 100,000 events, 200 active segments, one core", run)
    log(f"  {len(events) / t:,.0f} events/s (target ≥ 40,000; the baseline {len(events) / t_bare:,.0f} events/s, "
        f"{t / t_bare:.1f}× its time); {checks / len(events):.1f} affected segments per event")
    rows = rnd.sample(range(1, 50001), 500)
    _, t = timed("member state loads from PostgreSQL (500 members, batched)", lambda: load_states(session, rows))
    log(f"  {500 / t:,.0f} member states/s loaded (the DB-backed re-check job's other cost)")


def references(session, ctx) -> None:
    from segments import service
    from segments.idsets import count_and_sample
    from segments.language import AnyOf, parse
    from segments.models import Segment

    leaf_a, leaf_b = {"tag": "VIP"}, {"event": "booking.completed", "within_days": 180, "where": EYE}
    a, b = Segment(name="a", definition=leaf_a, depends_on=[]), Segment(name="b", definition=leaf_b, depends_on=[])
    session.add_all([a, b])
    session.flush()
    level1 = Segment(name="level 1", definition={"all": [{"segment": a.id}] * 19 + [{"segment": b.id}]}, depends_on=[])
    session.add(level1)
    session.flush()
    level2 = Segment(name="level 2", definition={"any": [{"segment": level1.id}] * 20}, depends_on=[])
    session.add(level2)
    session.flush()
    top = {"any": [{"segment": level2.id}] * 20}
    flat = parse({"all": [leaf_a, leaf_b]})
    (n_flat, _), t_flat = timed("flat definition of the two leaves (baseline)",
                                lambda: count_and_sample(session, flat, ctx, {}))
    (n_refs, _), t_refs = timed(
        "3 levels × 20 references (8,821 nodes inlined), each referenced segment evaluated once",
        lambda: service.preview(session, top, ctx=ctx))
    log(f"  members matched: {n_refs} (flat: {n_flat}); references cost {t_refs / t_flat:.1f}× the flat definition")
    # What previews did before: the same tree with each reference replaced by its definition at every
    # occurrence (built past the parser's limits), one leaf scan per occurrence.
    inlined = parse({"all": [leaf_a] * 19 + [leaf_b]})
    for levels in (2, 3):
        inlined = AnyOf.model_validate({"any": (inlined,) * 20})
        label = (f"{levels} levels × 20 references inlined at every occurrence "
                 f"({20 ** levels:,} leaf scans; before the fix)")
        session.execute(text("SAVEPOINT inlined"))
        try:
            (n_old, _), t_old = timed(label, lambda tree=inlined: count_and_sample(session, tree, ctx, {}))
            log(f"  members matched: {n_old}; {t_old / t_flat:.0f}× the flat definition")
        except (DBAPIError, psycopg.Error) as exc:
            session.execute(text("ROLLBACK TO SAVEPOINT inlined"))
            log(f"  {label}: fails: {str(getattr(exc, 'orig', exc)).splitlines()[0]}")
    session.rollback()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("SIYU_BENCH_DATABASE_URL",
                                                        "postgresql+psycopg://postgres@127.0.0.1:5432/siyu_seg"))
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--skip-build", action="store_true", help="reuse the data of the previous run")
    parser.add_argument("--only", choices=("per-event",), help="measure the per-event evaluation alone")
    args = parser.parse_args()
    from bench._pgdb import ensure_database

    ensure_database(args.url)
    os.environ["SIYU_DATABASE_URL"] = args.url
    os.environ["SIYU_TIMEZONE"] = TZ
    os.environ.pop("SIYU_REDIS_URL", None)
    from config.database import engine_for, session_scope
    from segments.clock import EvalContext

    engine = engine_for(args.url)
    began = time.perf_counter()
    log(f"segments bench: {args.members:,} members on {engine.url.render_as_string(hide_password=True)}")
    if not args.skip_build:
        log("generating:")
        build(engine, args.members)
    ctx = EvalContext(today=TODAY, tz=ZoneInfo(TZ))
    with session_scope(engine) as session:
        register_eye_filter(session)
    if not args.skip_build:
        vacuum(engine)
    if args.only != "per-event":
        log("full evaluation:")
        with session_scope(engine) as session:
            evaluation(session, ctx)
        log("materialised diff:")
        with session_scope(engine) as session:
            diff(session, ctx, args.members)
    log("per-event:")
    with session_scope(engine) as session:
        per_event(session, ctx)
    if args.only == "per-event":
        return
    log("segment references (preview):")
    with session_scope(engine) as session:
        references(session, ctx)
    log(f"whole bench: {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
