"""Webhook intake benchmark: acknowledged events/s and p50/p99 acknowledgement latency of /webhooks/wecom
next to a bare FastAPI endpoint on the same server, driven from a separate process; then, when
SIYU_BENCH_DATABASE_URL (PostgreSQL) and SIYU_BENCH_REDIS_URL are set, end-to-end processed events/s
with RQ workers.

    .venv/bin/python bench/webhooks.py [--events 2000] [--concurrency 16] [--workers 4]
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SERVER = """
import sys; sys.path.insert(0, {root!r})
from fastapi import Response
from siyu.models import metadata
from config.database import get_engine
from siyu.app import create_app
metadata.create_all(get_engine())
app = create_app()
@app.post("/bench/bare")
def bare():
    return Response(status_code=200)
"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _payloads(n: int, env: dict) -> list[tuple[str, str]]:
    os.environ.update(env)
    from config.settings import get_settings
    get_settings.cache_clear()
    from bot.credentials import wecom_credentials
    from tests.webhooks.sandbox_helpers import change_external_contact
    from webhooks.crypto import encrypt_reply, parse_xml

    creds = wecom_credentials(get_settings())
    out = []
    for i in range(n):
        plain = change_external_contact("add_external_contact", "bench", f"wmBENCH{i:06d}", creds.corp_id,
                                        create_time=1700000000 + i)
        env_ = parse_xml(encrypt_reply("wecom", creds.token, creds.aes_key, creds.corp_id, plain, str(i), "1700000000"))
        body = f"<xml><Encrypt><![CDATA[{env_['Encrypt']}]]></Encrypt></xml>"
        out.append((f"msg_signature={env_['MsgSignature']}&timestamp=1700000000&nonce={i}", body))
    return out


def _drive(base: str, path: str, payloads, concurrency: int, queue) -> None:
    import httpx

    lat = []

    client = httpx.Client(base_url=base, timeout=30, limits=httpx.Limits(max_connections=concurrency))

    def send(item):
        query, body = item
        t0 = time.perf_counter()
        r = client.post(f"{path}?{query}", content=body)
        lat.append(time.perf_counter() - t0)
        return r.status_code

    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        codes = list(pool.map(send, payloads))
    elapsed = time.perf_counter() - t0
    queue.put((elapsed, sorted(lat), sum(c == 200 for c in codes)))


def _measure(base, path, payloads, concurrency):
    q = mp.Queue()
    p = mp.Process(target=_drive, args=(base, path, payloads, concurrency, q))
    p.start()
    elapsed, lat, ok = q.get()
    p.join()
    pct = lambda f: lat[min(len(lat) - 1, int(f * len(lat)))] * 1000
    return len(payloads) / elapsed, pct(0.5), pct(0.99), ok


def _processed(env, n) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(env["SIYU_DATABASE_URL"])
    with engine.connect() as c:
        return c.execute(text("SELECT count(*) FROM webhook_inbox WHERE status <> 'received'")).scalar()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--workers", type=int, default=4)
    args = ap.parse_args()
    pg, redis = os.environ.get("SIYU_BENCH_DATABASE_URL"), os.environ.get("SIYU_BENCH_REDIS_URL")
    tmp = tempfile.mkdtemp(prefix="siyu-bench-")
    env = {"SIYU_VAR_DIR": f"{tmp}/var", "SIYU_ADMIN_TOKEN": "bench", "SIYU_LOG_LEVEL": "WARNING",
           "SIYU_DATABASE_URL": pg or f"sqlite:///{tmp}/bench.db"}
    if redis:
        env["SIYU_REDIS_URL"] = redis
    if pg:  # start from an empty schema
        from sqlalchemy import create_engine, text
        with create_engine(pg).begin() as c:
            c.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    port = _port()
    env["SIYU_PUBLIC_URL"] = f"http://127.0.0.1:{port}/"  # the sandbox is mounted on the benchmarked server
    full_env = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
    (Path(tmp) / "benchapp.py").write_text(SERVER.format(root=str(ROOT)))
    server = subprocess.Popen([sys.executable, "-m", "uvicorn", "benchapp:app", "--port", str(port),
                               "--log-level", "warning", "--no-access-log"], cwd=tmp, env=full_env)
    base = f"http://127.0.0.1:{port}"
    try:
        import httpx
        for _ in range(100):
            try:
                httpx.get(base + "/healthz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        payloads = _payloads(args.events, env)
        mode = "PostgreSQL + Redis (RQ)" if pg and redis else "embedded (SQLite, in-process jobs)"
        print(f"webhook intake, {args.events} encrypted add_external_contact events, "
              f"{args.concurrency} concurrent senders, 1 uvicorn worker, {mode}")
        bare = _measure(base, "/bench/bare", payloads, args.concurrency)
        workers = []
        t_start = time.perf_counter()
        if pg and redis:
            workers = [subprocess.Popen([sys.executable, "-m", "rq.cli", "worker", "fast", "default", "low",
                                         "--url", redis], cwd=ROOT, env=full_env, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL) for _ in range(args.workers)]
        hook = _measure(base, "/webhooks/wecom", payloads, args.concurrency)
        for name, (rate, p50, p99, ok) in (("bare FastAPI", bare), ("/webhooks/wecom", hook)):
            print(f"  {name:16s} {rate:8.0f} ack/s   p50 {p50:6.1f} ms   p99 {p99:6.1f} ms   200s {ok}")
        print(f"  ratio webhook/bare: {hook[0] / bare[0]:.2f} of the throughput, "
              f"p50 x{hook[1] / bare[1]:.1f}")
        if workers:
            while _processed(env, args.events) < args.events and time.perf_counter() - t_start < 120:
                time.sleep(0.5)
            done = _processed(env, args.events)
            print(f"  end to end with {len(workers)} RQ workers: {done / (time.perf_counter() - t_start):.0f} "
                  f"events/s processed ({done} of {args.events}; the sandbox does not know these customers, "
                  f"so each handler reads the contact, finds it gone and ends done)")
    finally:
        for w in [server, *locals().get("workers", [])]:
            w.terminate()
            w.wait(10)


if __name__ == "__main__":
    main()
