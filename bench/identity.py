"""Identity resolve and bind latency over 100k members, on SQLite and PostgreSQL.

Prints p50/p99 per operation next to a baseline measured in the same run on the same database:
one raw indexed SELECT (for resolve) and one raw two-row INSERT transaction (for bind).
Usage: python bench/identity.py [--members 100000] [--ops 2000] [--pg URL]
"""
from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert, text  # noqa: E402

from config.database import make_engine, session_scope  # noqa: E402
from config.types import utcnow  # noqa: E402
from membership.identity import IdentityIn, bind, resolve  # noqa: E402
from membership.models import Identity, Member  # noqa: E402
from siyu.models import metadata  # noqa: E402
from bench._pgdb import ensure_database  # noqa: E402

CORP, OA = "wwbench", "wxbench"


def populate(engine, members: int) -> None:
    """`members` members, each with a WeCom contact and a unionid; every third also follows the OA."""
    metadata.drop_all(engine)
    metadata.create_all(engine)
    now = utcnow()
    batch = 10_000
    with engine.begin() as conn:
        for start in range(1, members + 1, batch):
            ids = range(start, min(start + batch, members + 1))
            conn.execute(insert(Member), [{"id": i, "name": f"m{i}", "created_at": now, "updated_at": now}
                                          for i in ids])
            rows = []
            for i in ids:
                row = {"member_id": i, "verified": False, "created_at": now}
                rows.append({**row, "type": "wecom_external", "scope": CORP, "value": f"wm{i}"})
                rows.append({**row, "type": "unionid", "scope": "", "value": f"u{i}"})
                if i % 3 == 0:
                    rows.append({**row, "type": "oa_openid", "scope": OA, "value": f"o{i}"})
            conn.execute(insert(Identity), rows)
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT setval(pg_get_serial_sequence('members','id'), :n)"), {"n": members})
            conn.execute(text("SELECT setval(pg_get_serial_sequence('identities','id'), "
                              "(SELECT max(id) FROM identities))"))
            conn.execute(text("ANALYZE"))


def timed(fn, ops: int) -> list[float]:
    out = []
    for i in range(ops):
        t = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - t) * 1000)
    return out


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def run(label: str, url: str, members: int, ops: int) -> None:
    engine = make_engine(url)
    t = time.perf_counter()
    populate(engine, members)
    print(f"[{label}] populated {members:,} members in {time.perf_counter() - t:.1f}s")
    rnd = random.Random(7)

    def raw_select(_):
        with engine.connect() as conn:
            conn.execute(text("SELECT member_id FROM identities WHERE type=:t AND scope=:s AND value=:v"),
                         {"t": "wecom_external", "s": CORP, "v": f"wm{rnd.randint(1, members)}"}).scalar()

    def do_resolve(_):
        with session_scope(engine) as s:
            resolve(s, IdentityIn("wecom_external", f"wm{rnd.randint(1, members)}", CORP))

    counter = iter(range(10**9))

    def raw_insert(_):
        n = next(counter)
        with engine.begin() as conn:
            mid = conn.execute(insert(Member).values(name=None, created_at=utcnow(), updated_at=utcnow())
                               .returning(Member.id)).scalar()
            conn.execute(insert(Identity).values(member_id=mid, type="mp_openid", scope="raw", value=f"raw{n}",
                                                 verified=False, created_at=utcnow()))

    def do_bind(i):
        # half new people, half existing members met on a new channel (joined by unionid)
        with session_scope(engine) as s:
            if i % 2:
                bind(s, [IdentityIn("oa_openid", f"new-o{i}", OA),
                         IdentityIn("unionid", f"u{rnd.randint(1, members)}")])
            else:
                bind(s, [IdentityIn("wecom_external", f"new-wm{i}", CORP), IdentityIn("unionid", f"new-u{i}")])

    results = {}
    for name, fn in (("baseline raw SELECT", raw_select), ("resolve", do_resolve),
                     ("baseline raw INSERT txn", raw_insert), ("bind", do_bind)):
        timed(fn, min(ops, 200))  # warm-up
        results[name] = timed(fn, ops)
    for name, xs in results.items():
        print(f"[{label}] {name:<24} p50 {pct(xs, .5):7.3f} ms   p99 {pct(xs, .99):7.3f} ms   "
              f"{len(xs) / (sum(xs) / 1000):8.0f} ops/s")
    resolve_ratio = pct(results["resolve"], .5) / pct(results["baseline raw SELECT"], .5)
    bind_ratio = pct(results["bind"], .5) / pct(results["baseline raw INSERT txn"], .5)
    print(f"[{label}] resolve/baseline p50 ratio {resolve_ratio:.2f}x; bind/baseline p50 ratio {bind_ratio:.2f}x")
    engine.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--members", type=int, default=100_000)
    ap.add_argument("--ops", type=int, default=2_000)
    ap.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/siyu_bench")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run("sqlite", f"sqlite:///{tmp}/bench.db", args.members, args.ops)
    try:
        ensure_database(args.pg)
    except Exception as exc:  # noqa: BLE001 - the bench reports what it could not measure
        print(f"[postgresql] not measured: {exc.__class__.__name__}: {str(exc).splitlines()[0]}")
        return
    run("postgresql", args.pg, args.members, args.ops)


if __name__ == "__main__":
    main()
