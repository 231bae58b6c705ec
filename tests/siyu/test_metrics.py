"""/metrics answers for the whole deployment: counters of every uvicorn worker and every RQ worker add up."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from bot.sandbox.serve import free_port
from config import metrics
from tests.conftest import ADMIN_TOKEN

REPO = Path(__file__).resolve().parents[2]
CHILD = """
import sys
from pathlib import Path

from config import metrics

metrics.enable(Path(sys.argv[1]))
from webhooks.metrics import PROCESSED

PROCESSED.labels("h9-child", "done").inc(int(sys.argv[2]))
"""


def _samples(text: str, name: str, **labels) -> float:
    """The sum of the samples `name` whose labels include `labels`."""
    return sum(s.value for family in text_string_to_metric_families(text) for s in family.samples
               if s.name == name and labels.items() <= s.labels.items())


def test_counters_incremented_in_other_processes_add_up_at_metrics(settings, tmp_path, monkeypatch):
    # given two processes of one deployment (one var/), neither told where to keep metrics, that count 2 and 3
    var = tmp_path / "var"
    env = {k: v for k, v in os.environ.items() if k != metrics.ENV}
    for n in (2, 3):
        subprocess.run([sys.executable, "-c", CHILD, str(var), str(n)], env=env, cwd=REPO, check=True, timeout=60)
    # then Siyu chose one private directory for the deployment
    where = metrics.default_dir(var)
    assert where.is_dir() and where.stat().st_mode & 0o777 == 0o700
    # when a server of that deployment is scraped
    from siyu.app import create_app

    monkeypatch.setenv(metrics.ENV, str(where))
    with TestClient(create_app()) as client:
        text = client.get("/metrics").text
    # then it answers the sum of both processes
    assert _samples(text, "siyu_webhook_processed_total", source="h9-child", outcome="done") == 5


def test_serve_start_removes_the_files_of_this_hosts_dead_processes_only(tmp_path):
    # given files of a process that is gone, of this one, and of another host sharing the directory
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    names = [f"counter_{metrics.HOST}-{gone.pid}.db", f"histogram_{gone.pid}.db",
             f"counter_{metrics.process_id()}.db", "counter_otherhost-1.db"]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    # when the directory is cleaned, then only the dead local process's files go
    assert sorted(metrics.clean_dead(tmp_path)) == sorted(names[:2])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[2:])


def test_a_metrics_directory_that_cannot_be_used_stops_the_command_in_one_line(settings, tmp_path, monkeypatch):
    from siyu.cli import app

    # given PROMETHEUS_MULTIPROC_DIR naming a file
    (tmp_path / "file").write_text("")
    monkeypatch.setenv(metrics.ENV, str(tmp_path / "file"))
    # when the server is started, then it refuses in one line naming the variable, before serving anything
    result = CliRunner().invoke(app, ["serve"])
    assert result.exit_code == 2
    assert result.stderr.strip().startswith(f"configuration error: {metrics.ENV}: ") and result.stdout == ""


def _wait(predicate, timeout: float = 90.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    return False


def test_a_scrape_of_serve_with_two_workers_adds_up_both_and_the_rq_workers(redis_url, tmp_path):
    from bot.credentials import wecom_credentials
    from config.settings import load_settings
    from tests.webhooks.conftest import wecom_post

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIYU_", metrics.ENV))}
    env.update(SIYU_REDIS_URL=redis_url, SIYU_DATABASE_URL=f"sqlite:///{tmp_path}/siyu.db",
               SIYU_VAR_DIR=str(tmp_path / "var"), SIYU_ADMIN_TOKEN=ADMIN_TOKEN, SIYU_PUBLIC_URL=base + "/")
    siyu = str(Path(sys.executable).with_name("siyu"))
    subprocess.run([siyu, "db", "upgrade"], env=env, cwd=tmp_path, check=True, capture_output=True, timeout=120)
    log = tmp_path / "serve.log"
    server = subprocess.Popen([siyu, "serve", "--port", str(port), "--workers", "2"], env=env, cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=log.open("w"), start_new_session=True)
    try:
        # given a Redis-mode server with two uvicorn workers, both up
        assert _wait(lambda: log.read_text().count("Application startup complete") == 2), log.read_text()
        # and twelve refused callbacks, each on a connection of its own (either worker may take each)
        for _ in range(12):
            bad = httpx.post(f"{base}/webhooks/wecom", params={"msg_signature": "0" * 40, "timestamp": "1",
                                                                "nonce": "n"},
                             content=b"<xml><Encrypt><![CDATA[abc]]></Encrypt></xml>")
            assert bad.status_code == 403
        # and one well-signed event no handler knows, stored by the server for an RQ worker
        creds = wecom_credentials(load_settings(var_dir=tmp_path / "var", redis_url=redis_url, public_url=base))
        probe = (f"<xml><ToUserName><![CDATA[{creds.corp_id}]]></ToUserName><FromUserName><![CDATA[sys]]>"
                 f"</FromUserName><CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
                 "<Event><![CDATA[h9_metrics_probe]]></Event></xml>")
        # and one a handler re-reads WeCom for (a customer the sandbox does not know: the read is refused, and counted)
        edit = (f"<xml><ToUserName><![CDATA[{creds.corp_id}]]></ToUserName><FromUserName><![CDATA[sys]]>"
                f"</FromUserName><CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
                "<Event><![CDATA[change_external_contact]]></Event>"
                "<ChangeType><![CDATA[edit_external_contact]]></ChangeType><UserID><![CDATA[nobody]]></UserID>"
                "<ExternalUserID><![CDATA[wmUnknownProbe]]></ExternalUserID></xml>")
        with httpx.Client(base_url=base) as http:
            assert wecom_post(http, creds, probe).status_code == 200
            assert wecom_post(http, creds, edit).status_code == 200
        # when `siyu worker` works the queue (the edit's handler calling the sandbox's WeCom API) and exits
        done = subprocess.run([siyu, "worker", "--burst"], env=env, cwd=tmp_path, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        # then every scrape, whichever uvicorn worker answers it, counts the refusals of both, the event the RQ
        # worker found no handler for, and the RQ worker's Tencent API calls
        for _ in range(6):
            text = httpx.get(f"{base}/metrics").text
            assert _samples(text, "siyu_webhook_rejected_total", source="wecom") == 12
            assert _samples(text, "siyu_webhook_received_total", source="wecom", outcome="stored") == 2
            assert _samples(text, "siyu_webhook_unhandled_total", source="wecom") == 1
            assert _samples(text, "siyu_wechat_api_calls_total", channel="wecom") >= 1
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(10)
