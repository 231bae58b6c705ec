"""`siyu serve` in embedded mode, as `make run` starts it: migrates, prints a token, serves the API."""
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bot.sandbox.serve import free_port


def test_serve_prints_an_admin_token_that_creates_and_reads_a_store(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIYU_")}
    env.update(SIYU_VAR_DIR=str(tmp_path / "var"), SIYU_DATABASE_URL=f"sqlite:///{tmp_path}/var/siyu.db")
    siyu = Path(sys.executable).with_name("siyu")
    log = tmp_path / "stderr.log"
    proc = subprocess.Popen([str(siyu), "serve", "--port", str(port)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=log.open("w"), text=True)
    try:
        token = None
        deadline = time.monotonic() + 60
        while token is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, "siyu serve exited before printing a token"
            if line.startswith("admin token: "):
                token = line.split(": ", 1)[1].strip()
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if httpx.get(f"{base}/healthz").json() == {"status": "ok"}:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        assert httpx.get(f"{base}/docs").status_code == 200
        auth = {"Authorization": f"Bearer {token}"}
        created = httpx.post(f"{base}/api/v1/stores", json={"code": "S001", "name": "静安店"}, headers=auth)
        assert created.status_code == 201
        assert [s["code"] for s in httpx.get(f"{base}/api/v1/stores", headers=auth).json()] == ["S001"]
        assert httpx.get(f"{base}/api/v1/stores").status_code == 401
        # and a webhook's signature and a phone looked up go through the access log
        signed = {"msg_signature": "5d8a5dbc0e1f2a3b4c5d6e7f8091a2b3c4d5e6f7", "timestamp": "1700000000",
                  "nonce": "n1", "echostr": "abc"}
        assert httpx.get(f"{base}/webhooks/wecom", params=signed).status_code in (400, 403)
        assert httpx.get(f"{base}/api/v1/members", params={"phone": "13800138000"}, headers=auth).status_code == 200
    finally:
        proc.terminate()
        out = proc.communicate(timeout=20)[0]
    rest = log.read_text()
    # then stdout held the token alone: the log, access lines included, went to stderr
    assert out == "", out
    # and the log has the requests, not the webhook's query (it would let anyone post any body) nor the phone
    assert '"GET /webhooks/wecom HTTP/1.1" 403' in rest and "/api/v1/members?phone=138****8000" in rest, rest
    assert "5d8a5dbc" not in rest and "13800138000" not in rest
    # and var/ (database, admin token, sandbox keys) is private to Siyu's user
    var = tmp_path / "var"
    loose = [str(p) for p in [var, *var.rglob("*")] if p.stat().st_mode & 0o077]
    assert (var / "siyu.db").exists() and loose == []
