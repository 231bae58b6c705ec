"""Sandbox round trips per second through Siyu's client stack versus raw httpx, in one run.

The stack adds: the shared token cache, the limiter, the retry bookkeeping, metrics and wechatpy's
`requests` session. Both sides call `externalcontact/get_follow_user_list` on the same in-thread
sandbox (uvicorn on a free port), sequentially, so the ratio is the stack's overhead per call.
"""
from __future__ import annotations

import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CALLS = int(os.environ.get("BENCH_CALLS", "2000"))


def main() -> None:
    tmp = tempfile.mkdtemp(prefix="siyu-bench-")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.update(SIYU_DATABASE_URL=f"sqlite:///{tmp}/siyu.db", SIYU_VAR_DIR=f"{tmp}/var",
                      SIYU_PUBLIC_URL=f"http://127.0.0.1:{port}/", SIYU_WECHAT_RATE_LIMITS="1000000/1")
    for name in list(os.environ):
        if name.startswith(("SIYU_WECOM_", "SIYU_REDIS_URL")):
            del os.environ[name]

    import httpx
    import uvicorn
    from fastapi import FastAPI

    from bot.clients import wecom_client
    from bot.sandbox.app import create_sandbox_app
    from bot.sandbox.state import get_state
    from config.database import engine_for
    from siyu.models import metadata

    metadata.create_all(engine_for(os.environ["SIYU_DATABASE_URL"]))
    state = get_state()
    state.set_rate_limits("100000000/1")
    state.add_staff("zhangsan")
    app = FastAPI()
    app.mount("/sandbox", create_sandbox_app())

    class Server(uvicorn.Server):
        def install_signal_handlers(self) -> None:
            pass

    server = Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.01)

    client = wecom_client()
    client.list_follow_users()  # token fetched, connections warm
    token = client.access_token()
    url = f"http://127.0.0.1:{port}/sandbox/wecom/cgi-bin/externalcontact/get_follow_user_list"

    with httpx.Client() as raw:
        raw.get(url, params={"access_token": token})
        t = time.perf_counter()
        for _ in range(CALLS):
            assert raw.get(url, params={"access_token": token}).json()["errcode"] == 0
        raw_rate = CALLS / (time.perf_counter() - t)

    t = time.perf_counter()
    for _ in range(CALLS):
        client.list_follow_users()
    stack_rate = CALLS / (time.perf_counter() - t)

    print(f"sandbox round trips, {CALLS} sequential calls each")
    print(f"  raw httpx:          {raw_rate:8.0f} calls/s")
    print(f"  Siyu client stack:  {stack_rate:8.0f} calls/s")
    print(f"  ratio stack/raw:    {stack_rate / raw_rate:8.2f}")
    server.should_exit = True


if __name__ == "__main__":
    main()
