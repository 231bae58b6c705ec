"""One process applying stored add_external_contact events on PostgreSQL, in batches as a `siyu worker` job does:
without a savepoint per event (Siyu's way) beside the baseline of the same batches applied with one savepoint an
event (the way a batch goes once one of its events fails), alternating, on fresh events each run.

The WeCom stand-in is the sandbox served in this process (each handler re-reads its contact, 8 at once); no
acknowledgement is measured (bench/webhooks.py does), only the processing: events/s and statements per event.

    python bench/inbox_batches.py [--events 600] [--rounds 2] [--pg postgresql+psycopg://postgres@127.0.0.1:5432/siyu_bench_inbox]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STAFF = "bench"


def _setup(pg: str, customers: int):
    from fastapi import FastAPI

    from bench._pgdb import ensure_database

    ensure_database(pg, fresh=True)
    os.environ.update({"SIYU_DATABASE_URL": pg, "SIYU_VAR_DIR": tempfile.mkdtemp(prefix="siyu-bench-"),
                       "SIYU_LOG_LEVEL": "WARNING", "SIYU_WECHAT_RATE_LIMITS": "100000000/1"})
    os.environ.pop("SIYU_REDIS_URL", None)
    from bot.sandbox.app import create_sandbox_app
    from bot.sandbox.serve import serve_in_background

    app = FastAPI()
    app.mount("/sandbox", create_sandbox_app())
    served = serve_in_background(app)
    os.environ["SIYU_PUBLIC_URL"] = served.url
    from config.settings import get_settings

    get_settings.cache_clear()
    import siyu.wiring
    from bot.sandbox.state import reset_state
    from config.database import get_engine
    from siyu.models import metadata

    siyu.wiring.install()
    metadata.create_all(get_engine())
    state = reset_state()
    state.set_rate_limits("100000000/1")
    state.add_staff(STAFF)
    for i in range(customers):
        state.add_external_contact(STAFF, external_userid=f"wmBENCH{i:06d}", name=f"客户{i}",
                                   unionid=f"uBENCH{i:06d}")
    return served


def _store(start: int, n: int) -> list[int]:
    from bot.credentials import wecom_credentials
    from bot.sandbox import events as tencent
    from config.settings import get_settings
    from webhooks.crypto import parse_body
    from webhooks.inbox import inbox_scope, store

    corp = wecom_credentials(get_settings()).corp_id
    ids = []
    for i in range(start, start + n):
        plaintext = tencent.add_external_contact(corp, STAFF, f"wmBENCH{i:06d}", create_time=1700000000 + i)
        data, _ = parse_body(plaintext)
        with inbox_scope() as s:
            ids.append(store(s, "wecom", plaintext, data).inbox_id)
    return ids


def _apply(ids: list[int], careful: bool) -> tuple[float, float]:
    """(events/s, statements per event) of jobs applying `ids` in batches, `careful`: a savepoint an event."""
    from sqlalchemy import event

    import webhooks.inbox as inbox
    from config.database import get_engine

    statements = [0]

    def count(*_args) -> None:
        statements[0] += 1

    plain = inbox._apply_in
    if careful:
        inbox._apply_in = lambda own, wait, shares: inbox._apply_batch(own, wait, shares, careful=True)
    event.listen(get_engine(), "before_cursor_execute", count)
    try:
        t0 = time.perf_counter()
        for inbox_id in ids:  # what RQ would run; the jobs of events a batch took along find them done
            inbox.process_inbox(inbox_id)
        elapsed = time.perf_counter() - t0
    finally:
        event.remove(get_engine(), "before_cursor_execute", count)
        inbox._apply_in = plain
    return len(ids) / elapsed, statements[0] / len(ids)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=600, help="events of each run")
    ap.add_argument("--rounds", type=int, default=2, help="runs of each way, alternating")
    ap.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/siyu_bench_inbox")
    args = ap.parse_args()
    try:
        served = _setup(args.pg, args.events * 2 * args.rounds)
    except Exception as exc:  # noqa: BLE001 - the bench says what it could not measure
        print(f"[inbox batches] not measured: {type(exc).__name__}: {str(exc).splitlines()[0]}")
        return
    from config.queue import Recording, using

    figures: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    start = 0
    with using(Recording()):  # the jobs the handlers queue are kept, not run
        for _ in range(args.rounds):
            for careful in (True, False):
                ids = _store(start, args.events)
                start += args.events
                figures[careful].append(_apply(ids, careful))
    served.stop()
    label = {True: "a savepoint an event (baseline)", False: "no savepoint until one fails"}
    for careful in (True, False):
        rates = [r for r, _ in figures[careful]]
        per_event = statistics.median(s for _, s in figures[careful])
        print(f"[inbox batches] {label[careful]:32s} {', '.join(f'{r:.0f}' for r in rates)} events/s; "
              f"{per_event:.1f} statements an event")
    ratio = statistics.median(r for r, _ in figures[False]) / statistics.median(r for r, _ in figures[True])
    print(f"[inbox batches] {args.events} add_external_contact events a run, one process, batches of up to 40: "
          f"{ratio:.2f}x the baseline's events/s")


if __name__ == "__main__":
    main()
