"""Webhook intake and processing throughput: every row of issue 13's table, each beside its same-run baseline.

For the embedded default (SQLite, in-process jobs) and for PostgreSQL + Redis (`siyu worker` processes):

- acknowledged events/s and p50/p99 of /webhooks/wecom next to a bare FastAPI endpoint on the same server,
  driven from a separate process (PostgreSQL + Redis: with the workers stopped, so the figure is the intake's own);
- events processed end to end per second, next to the acknowledgement rate;
- a burst of `--burst` (10,000) events: acknowledged while the workers run, and the time until the last is
  processed (given up after `--burst-timeout` seconds, with the projected time printed instead), with the CPU each
  process spent meanwhile: the server, the workers, the sandbox, PostgreSQL, Redis and the senders.

The sandbox standing in for Tencent runs in a process of its own, and the senders standing in for WeCom in another.

Embedded mode then measures acknowledgements (p50/p95/p99/max) of a burst of `--lock-events` callbacks
from `--lock-concurrency` senders twice: with the server's own jobs running (the baseline), and while a long
job holds the main database's write lock for the whole burst (WeCom gives up after 5 s). PostgreSQL + Redis then
processes `--latency-events` events twice with WeCom answering in `--wecom-latency-ms` (50 ms, Tencent across
the internet): by workers re-reading one contact after another, and by workers reading a batch's contacts ahead.
Last, the per-event segment evaluation at 200 segments (the table's last row), by bench/segments.py on a
50,000-member database of its own, beside the same events finding their segments without evaluating them.

    python bench/webhooks.py [--events 1000] [--burst 10000] [--concurrency 16] [--workers 2] [--lock-events 128]
                             [--lock-concurrency 32] [--burst-timeout 60]
                             [--latency-events 400] [--wecom-latency-ms 50]
                             [--pg postgresql+psycopg://postgres@127.0.0.1:5432/siyu_bench] [--redis redis://127.0.0.1:6379/14]
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import secrets
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STAFF = "bench"
# The server under test: Siyu's app and a bare endpoint beside it.
SERVER = """
from fastapi import Response
from config.database import get_engine
from siyu.models import metadata
from siyu.server import create_server

metadata.create_all(get_engine())
app = create_server()

@app.post("/bench/bare")
def bare():
    return Response(status_code=200)
"""
# Tencent's stand-in, in a process of its own as Tencent is on machines of its own (SIYU_PUBLIC_URL points the
# clients at it): the sandbox knowing every customer the events name, so the handlers do their real work (fetch,
# bind, relate, tag, welcome). It is not what is measured, but it runs on the same two cores: the CPU each process
# spent during the burst is printed. Its state stays in this one process's memory (a fresh `reset_state()` is not
# the shared one), instead of being pickled whole around every API call as `siyu sandbox` shares it with the
# `siyu sandbox` commands: with the bench's 12,000 customers that is a 2.3 MB pickle, 34 ms to dump and 92 ms to
# load, on every call the handlers make.
SANDBOX = """
import os
from fastapi import Response
from bot.sandbox.serve import standalone_app
from bot.sandbox.state import reset_state

app = standalone_app()
state = reset_state()
state.set_rate_limits("100000000/1")
state.add_staff({staff!r})
for i in range(int(os.environ["BENCH_EVENTS"])):
    state.add_external_contact({staff!r}, external_userid=f"wmBENCH{{i:06d}}", name=f"客户{{i}}",
                               unionid=f"uBENCH{{i:06d}}")

@app.post("/bench/wecom-latency/{{ms}}")
def wecom_latency(ms: int):
    state.latency = ms / 1000
    return Response(status_code=200)
"""


def _payloads(n: int, start: int = 0) -> list[tuple[dict, bytes]]:
    from bot.credentials import wecom_credentials
    from bot.sandbox import events as tencent
    from bot.sandbox.callbacks import wecom_envelope
    from config.settings import get_settings

    get_settings.cache_clear()
    creds = wecom_credentials(get_settings())
    return [wecom_envelope(creds, tencent.add_external_contact(creds.corp_id, STAFF, f"wmBENCH{i:06d}",
                                                               create_time=1700000000 + i))
            for i in range(start, start + n)]


def _drive(base: str, path: str, payloads, concurrency: int, out) -> None:
    import httpx

    latencies = []
    client = httpx.Client(base_url=base, timeout=60, limits=httpx.Limits(max_connections=concurrency))

    def send(item):
        params, body = item
        t = time.perf_counter()
        try:
            code = client.post(path, params=params, content=body, headers={"Content-Type": "text/xml"}).status_code
        except httpx.HTTPError:
            code = None
        latencies.append(time.perf_counter() - t)
        return code

    t0, cpu = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(concurrency) as pool:
        codes = list(pool.map(send, payloads))
    out.put((time.perf_counter() - t0, sorted(latencies), sum(c == 200 for c in codes), time.process_time() - cpu))


_DRIVER_CPU: list[float] = []  # CPU seconds each `_measure`'s sending process spent


def _processes() -> dict[int, tuple[int, str, list[str]]]:
    """pid -> (parent pid, command, the fields of /proc/<pid>/stat after the command); empty without /proc."""
    table = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            head, tail = (entry / "stat").read_text().rsplit(")", 1)
        except OSError:
            continue
        fields = tail.split()
        table[int(entry.name)] = (int(fields[1]), head.split("(", 1)[1], fields)
    return table


def _tree_cpu(roots: list[int], table: dict) -> float:
    """CPU seconds (user + system) spent by `roots`, their live descendants and the children they have reaped."""
    ticks, seen, todo = 0, set(), list(roots)
    children: dict[int, list[int]] = {}
    for pid, (parent, _, _) in table.items():
        children.setdefault(parent, []).append(pid)
    while todo:
        pid = todo.pop()
        if pid in seen or pid not in table:
            continue
        seen.add(pid)
        fields = table[pid][2]
        ticks += int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if pid in roots else 0)
        todo += children.get(pid, [])
    return ticks / os.sysconf("SC_CLK_TCK")


def _roots_named(name: str, table: dict) -> list[int]:
    """The processes called `name` whose parent is not (a server's main process: its workers are its children)."""
    return [pid for pid, (parent, comm, _) in table.items() if comm == name and table.get(parent, (0, ""))[1] != name]


def _cpu_account(procs: dict[str, list[int]], services: bool) -> dict[str, float]:
    """CPU seconds spent so far by each group of processes (with their children, so an RQ worker's scheduler and a
    PostgreSQL backend that exits are counted); with `services`, this machine's PostgreSQL and Redis too."""
    table = _processes()
    if services:
        procs = {**procs, "PostgreSQL": _roots_named("postgres", table), "Redis": _roots_named("redis-server", table)}
    return {name: _tree_cpu(pids, table) for name, pids in procs.items() if pids}


def _measure(base, path, payloads, concurrency, full: bool = False):
    """(ack/s, p50 ms, p99 ms, 200s) of `payloads` POSTed from a separate process.

    With `full`: (p50, p95, p99, max, 200s).
    """
    q = mp.Queue()
    p = mp.Process(target=_drive, args=(base, path, payloads, concurrency, q))
    p.start()
    elapsed, lat, ok, cpu = q.get()
    p.join()
    _DRIVER_CPU.append(cpu)
    pct = lambda f: lat[min(len(lat) - 1, int(f * len(lat)))] * 1000  # noqa: E731
    if full:
        return pct(0.5), pct(0.95), pct(0.99), lat[-1] * 1000, ok
    return len(payloads) / elapsed, pct(0.5), pct(0.99), ok


@contextmanager
def _write_lock_held(path: str):
    """A long job: the SQLite database at `path` write-locked from another connection until the block ends."""
    held, release = threading.Event(), threading.Event()

    def hold():
        conn = sqlite3.connect(path, timeout=60, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        held.set()
        release.wait()
        conn.execute("ROLLBACK")
        conn.close()

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    held.wait(60)
    try:
        yield
    finally:
        release.set()
        holder.join(60)


def _inbox_url(db_url: str, tmp: str) -> str:
    # Embedded mode keeps the inbox in var/inbox.db (older versions: in the main database).
    inbox = Path(tmp) / "var" / "inbox.db"
    return f"sqlite:///{inbox}" if db_url.startswith("sqlite") and inbox.exists() else db_url


def _wait_drained(url: str, timeout: float) -> None:
    deadline = time.perf_counter() + timeout
    while _pending(url) and time.perf_counter() < deadline:
        time.sleep(0.2)


def _under_lock(label: str, base: str, db_url: str, tmp: str, args) -> None:
    """Acknowledgements with the server's jobs running, then while a long job holds the main write lock."""
    n, c = args.lock_events, args.lock_concurrency
    print(f"[{label}] acknowledgement of {n} callbacks from {c} concurrent senders, a long job holding the main "
          f"database's write lock or not")
    first = args.events + args.burst
    # Both with the server's jobs working through whatever the burst left (waiting for them is bounded).
    baseline = _measure(base, "/webhooks/wecom", _payloads(n, first), c, full=True)
    _wait_drained(_inbox_url(db_url, tmp), 10)
    with _write_lock_held(db_url.removeprefix("sqlite:///")):
        locked = _measure(base, "/webhooks/wecom", _payloads(n, first + n), c, full=True)
    for name, (p50, p95, p99, top, ok) in (("jobs running", baseline), ("write lock held", locked)):
        print(f"[{label}]   {name:16s} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms   p99 {p99:7.1f} ms   "
              f"max {top:7.1f} ms   200s {ok}/{n}")


def _row(url: str, sql: str, **params) -> tuple:
    """The first row of one query against the inbox's database, on an engine of its own."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as c:
        row = c.execute(text(sql), params).one()
    engine.dispose()
    return tuple(row)


def _pending(url: str) -> int:
    return _row(url, "SELECT count(*) FROM webhook_inbox WHERE status = 'received'")[0]


def _processing_span(url: str, after_id: int = 0) -> tuple[int, float]:
    """(events done after the first batch was settled, seconds from that moment to the last event's settling),
    of the events stored after inbox row `after_id`."""
    first, last = _row(url, "SELECT min(processed_at), max(processed_at) FROM webhook_inbox "
                            "WHERE status = 'done' AND id > :after", after=after_id)
    n = _row(url, "SELECT count(*) FROM webhook_inbox WHERE status = 'done' AND id > :after "
                  "AND processed_at > :first", first=first, after=after_id)[0]
    return n, max((last - first).total_seconds(), 1e-3)


def _last_id(url: str) -> int:
    return _row(url, "SELECT coalesce(max(id), 0) FROM webhook_inbox")[0]


def _stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.wait(20)


def _wecom_latency(label: str, base: str, sandbox_base: str, inbox_url: str, args, start: int, spawn) -> None:
    """With WeCom answering in `args.wecom_latency_ms` (Tencent across the internet): events queued while the
    workers are stopped, then processed by workers re-reading one contact after another, and by workers whose
    batches read their contacts ahead, `SIYU_WECHAT_READ_AHEAD` at once."""
    import httpx

    httpx.post(f"{sandbox_base}/bench/wecom-latency/{args.wecom_latency_ms}").raise_for_status()
    rates = []
    for at_once in (1, 8):
        after = _last_id(inbox_url)
        _measure(base, "/webhooks/wecom", _payloads(args.latency_events, start), args.concurrency)
        start += args.latency_events
        workers = spawn({"SIYU_WECHAT_READ_AHEAD": str(at_once)})
        _drain(inbox_url, time.perf_counter(), args.drain_timeout)
        _stop(workers)
        n, span = _processing_span(inbox_url, after)
        rates.append(n / span)
        how = "one re-read after another" if at_once == 1 else f"re-reads {at_once} at once"
        print(f"[{label}]   WeCom answering in {args.wecom_latency_ms} ms, {args.workers} workers, {how}: "
              f"{n / span:.0f} events/s ({n} events in {span:.1f}s)")
    print(f"[{label}]   reading ahead ÷ one after another: {rates[1] / rates[0]:.2f}x")
    httpx.post(f"{sandbox_base}/bench/wecom-latency/0").raise_for_status()


def _wait_healthy(base: str, path: str = "/healthz", method: str = "GET") -> None:
    import httpx

    for _ in range(600):
        try:
            httpx.request(method, base + path, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


def _drain(inbox_url: str, t0: float, timeout: float) -> tuple[float, int]:
    """(seconds from `t0` until no event waits, events still waiting): given up `timeout` seconds after `t0`."""
    while (left := _pending(inbox_url)) and time.perf_counter() - t0 < timeout:
        time.sleep(0.2)
    return time.perf_counter() - t0, left


def _wait_idle(redis_url: str, t0: float, timeout: float) -> float:
    """Seconds from `t0` until RQ's queues are empty and no job runs (given up `timeout` seconds from now)."""
    from redis import Redis
    from rq import Queue

    redis, deadline = Redis.from_url(redis_url), time.perf_counter() + timeout
    queues = [Queue(name, connection=redis) for name in ("fast", "default", "low")]
    while time.perf_counter() < deadline and any(q.count or q.started_job_registry.count for q in queues):
        time.sleep(0.2)
    return time.perf_counter() - t0


def _burst(label: str, base: str, inbox_url: str, args, start: int, who: str, procs: dict[str, list[int]]) -> None:
    """`args.burst` callbacks as fast as `args.concurrency` senders go, the workers running; then until processed."""
    payloads = _payloads(args.burst, start)
    services = bool(procs["the workers"])  # PostgreSQL + Redis; embedded, the server does it all in SQLite
    before = _cpu_account(procs, services)
    t0 = time.perf_counter()
    rate, p50, p99, ok = _measure(base, "/webhooks/wecom", payloads, args.concurrency)
    acked = time.perf_counter() - t0
    elapsed, left = _drain(inbox_url, t0, args.burst_timeout)
    done = args.burst - left
    # the segment re-checks the last batches queued run after the last event is settled: their CPU is the burst's too
    idle = _wait_idle(os.environ["SIYU_REDIS_URL"], t0, 30) if services else elapsed
    after = _cpu_account(procs, services)
    spent = {name: after[name] - before[name] for name in after} | {"the senders (WeCom's stand-in)": _DRIVER_CPU[-1]}
    print(f"[{label}]   CPU during the burst and its jobs, {sum(spent.values()):.1f}s in {max(idle, elapsed):.1f}s "
          f"({sum(spent.values()) / max(idle, elapsed):.2f} of {os.cpu_count()} cores): " + ", ".join(
              f"{name} {cpu:.1f}s ({cpu * 1000 / max(done, 1):.2f} ms an event)" for name, cpu in spent.items()))
    head = f"[{label}]   burst of {args.burst} drained by {who}:"
    if left:
        projected = args.burst / max(done, 1) * elapsed
        print(f"{head} NOT drained, {left} left after {elapsed:.0f}s ({done / elapsed:.0f} events/s: "
              f"~{projected:.0f}s projected; target ≤ 30s) — acknowledged in {acked:.1f}s ({rate:.0f} ack/s, "
              f"p99 {p99:.0f} ms, 200s {ok})")
    else:
        print(f"{head} {elapsed:.1f}s (target ≤ 30s) — acknowledged in {acked:.1f}s ({rate:.0f} ack/s, "
              f"p99 {p99:.0f} ms, 200s {ok}), processed {args.burst / elapsed:.0f} events/s")


def run(label: str, db_url: str, redis_url: str | None, args) -> None:
    from bot.sandbox.serve import free_port

    tmp = tempfile.mkdtemp(prefix="siyu-bench-")
    port, sandbox_port = free_port(), free_port()
    customers = args.events + args.burst + (2 * args.latency_events if redis_url else 2 * args.lock_events)
    env = {"SIYU_VAR_DIR": f"{tmp}/var", "SIYU_ADMIN_TOKEN": secrets.token_urlsafe(24), "SIYU_LOG_LEVEL": "WARNING",
           "SIYU_DATABASE_URL": db_url, "SIYU_PUBLIC_URL": f"http://127.0.0.1:{sandbox_port}/",
           "SIYU_WECHAT_RATE_LIMITS": "100000000/1", "BENCH_EVENTS": str(customers)}
    if redis_url:
        env["SIYU_REDIS_URL"] = redis_url
    os.environ.update(env)
    os.environ.pop("SIYU_REDIS_URL", None) if not redis_url else None
    full_env = {**os.environ, "PYTHONPATH": str(ROOT)}
    (Path(tmp) / "benchapp.py").write_text(SERVER)
    (Path(tmp) / "sandboxapp.py").write_text(SANDBOX.format(staff=STAFF))
    # The server's own log (its job threads still working when it is stopped, say) goes to a file beside it.
    server_log = open(Path(tmp) / "server.log", "wb")  # noqa: SIM115 - closed with the server below
    sandbox, server = (subprocess.Popen([sys.executable, "-m", "uvicorn", f"{app}:app", "--port", str(p),
                                         "--log-level", "warning", "--no-access-log"], cwd=tmp, env=full_env,
                                        stderr=server_log) for app, p in (("sandboxapp", sandbox_port),
                                                                          ("benchapp", port)))
    workers: list[subprocess.Popen] = []
    base, sandbox_base = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{sandbox_port}"
    target = (0.6, None) if redis_url else (0.4, 300)
    try:
        _wait_healthy(base)
        _wait_healthy(sandbox_base, "/bench/wecom-latency/0", "POST")
        payloads = _payloads(args.events)
        print(f"[{label}] {args.events} encrypted add_external_contact events, {args.concurrency} concurrent "
              f"senders in another process, 1 uvicorn worker")
        bare = _measure(base, "/bench/bare", payloads, args.concurrency)
        hook = _measure(base, "/webhooks/wecom", payloads, args.concurrency)
        for name, (rate, p50, p99, ok) in (("bare FastAPI", bare), ("/webhooks/wecom", hook)):
            print(f"[{label}]   {name:16s} {rate:7.0f} ack/s   p50 {p50:7.1f} ms   p99 {p99:7.1f} ms   200s {ok}")
        p99_target = f", p99 {hook[2]:.0f} ms (target ≤ {target[1]} ms)" if target[1] else ""
        print(f"[{label}]   ack rate ÷ bare FastAPI: {hook[0] / bare[0]:.2f}x (target ≥ {target[0]}x){p99_target}; "
              f"p50 {hook[1] / bare[1]:.1f}x")
        inbox_url = _inbox_url(db_url, tmp)
        t0, queued = time.perf_counter(), _pending(inbox_url)
        siyu = str(Path(sys.executable).with_name("siyu"))

        def spawn(extra: dict) -> list[subprocess.Popen]:
            return [subprocess.Popen([siyu, "worker"], cwd=tmp, env={**full_env, **extra}, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL) for _ in range(args.workers)]

        if redis_url:
            workers = spawn({})
        # embedded: the server's own job threads have been working since the first event arrived
        elapsed, left = _drain(inbox_url, t0, args.drain_timeout)
        done = queued - left
        who = f"{args.workers} `siyu worker` processes" if redis_url else "the server's in-process runner"
        rate = done / elapsed
        print(f"[{label}]   end to end, {who}: {rate:.0f} events/s processed = {rate / hook[0]:.2f}x the ack rate "
              f"(target ≥ 0.5x; {done} still queued after the acknowledgements, drained in {elapsed:.1f}s"
              f"{', worker start-up included' if redis_url else ''}; {left} left)")
        if redis_url:  # the workers' start-up (imports, jieba's dictionary: ~2 s of CPU each) is not throughput
            n, span = _processing_span(inbox_url)
            print(f"[{label}]   the same from the first event processed to the last: {n / span:.0f} events/s = "
                  f"{n / span / hook[0]:.2f}x the ack rate ({n} events in {span:.1f}s)")
        if args.burst:
            procs = {"the server": [server.pid], "the workers": [w.pid for w in workers],
                     "the sandbox (Tencent's stand-in)": [sandbox.pid]}
            _burst(label, base, inbox_url, args, args.events, who, procs)
        if redis_url and args.latency_events:
            _stop(workers)
            workers = []
            _wecom_latency(label, base, sandbox_base, inbox_url, args, args.events + args.burst, spawn)
        if not redis_url and args.lock_events:
            _under_lock(label, base, db_url, tmp, args)
    finally:
        _stop([server, sandbox, *workers])
        server_log.close()


def hostile() -> None:
    """How long the intake spends on hostile bodies (issue 8: 2M nested elements cost 9 s and 1 GB before)."""
    from webhooks.crypto import BadPayload, extract_encrypt, parse_body

    nested = b"<xml><Encrypt>QUFBQQ==</Encrypt>" + b"<a>" * 2_000_000
    for name, work in (("extract Encrypt from a 2M-nested unsigned envelope", lambda: extract_encrypt(nested)),
                       ("parse a signed 2M-nested XML plaintext", lambda: parse_body(nested)),
                       ("parse a signed 1M-nested JSON plaintext", lambda: parse_body(b'{"a":' * 1_000_000))):
        t0 = time.perf_counter()
        try:
            work()
        except BadPayload:
            pass
        print(f"[hostile] {name}: {(time.perf_counter() - t0) * 1000:.1f} ms")
    print("[hostile] (over SIYU_MAX_BODY_BYTES, 1 MiB by default, such bodies are refused 413 before they are read)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=1000)
    ap.add_argument("--burst", type=int, default=10000, help="events of the burst (0: skip)")
    ap.add_argument("--burst-timeout", type=float, default=60, help="seconds the burst may take")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--drain-timeout", type=float, default=60)
    ap.add_argument("--lock-events", type=int, default=128,
                    help="embedded: callbacks per burst of the lock test (0: skip)")
    ap.add_argument("--lock-concurrency", type=int, default=32)
    ap.add_argument("--latency-events", type=int, default=400,
                    help="postgresql: events of each run with WeCom answering slowly (0: skip)")
    ap.add_argument("--wecom-latency-ms", type=int, default=50, help="how slowly WeCom answers in those runs")
    ap.add_argument("--only", choices=("embedded", "postgresql"), help="measure one mode only")
    ap.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/siyu_bench")
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    args = ap.parse_args()
    if args.only is None:
        hostile()
    if args.only in (None, "embedded"):
        with tempfile.TemporaryDirectory() as tmp:
            run("embedded", f"sqlite:///{tmp}/bench.db", None, args)
    if args.only == "embedded":
        return
    try:
        from redis import Redis

        from bench._pgdb import ensure_database

        Redis.from_url(args.redis).flushdb()
        ensure_database(args.pg, fresh=True)
    except Exception as exc:  # noqa: BLE001 - the bench says what it could not measure
        print(f"[postgresql+redis] not measured: {type(exc).__name__}: {str(exc).splitlines()[0]}")
        return
    run("postgresql+redis", args.pg, args.redis, args)
    segment_evaluation(args.pg)


def segment_evaluation(pg_url: str) -> None:
    """bench/segments.py's per-event figure, on a small database of its own next to the webhooks bench's."""
    url = pg_url.rsplit("/", 1)[0] + "/siyu_bench_segments"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "segments.py"), "--members", "50000", "--only",
                           "per-event", "--url", url], capture_output=True, text=True, timeout=600)
    lines = done.stdout.splitlines()
    if "per-event:" in lines:
        shown = lines[lines.index("per-event:") + 1:]
    else:  # it failed: say how
        shown = lines[-5:] + done.stderr.splitlines()[-3:]
    for line in shown:
        print(f"[segments] {line.strip()}")


if __name__ == "__main__":
    main()
