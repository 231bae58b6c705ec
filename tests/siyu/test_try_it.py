"""README's "Try it", step by step in fresh processes: `siyu serve` on a port of its own, then the block's commands
in bash, as a newcomer types them; and `siyu serve --workers 2` serving one sandbox from both workers."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bot import credentials as C
from bot.sandbox.serve import free_port

REPO = Path(__file__).resolve().parents[2]
SIYU = Path(sys.executable).with_name("siyu")


def _env(tmp_path: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIYU_")}
    env.update(SIYU_VAR_DIR=str(tmp_path / "var"), SIYU_DATABASE_URL=f"sqlite:///{tmp_path}/var/siyu.db", **extra)
    return env


def _serve(tmp_path: Path, env: dict, *args: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([str(SIYU), "serve", "--port", str(port), *args], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=(tmp_path / "serve.log").open("w"))
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, (tmp_path / "serve.log").read_text()
        try:
            if httpx.get(f"{base}/healthz").status_code == 200:
                return proc, base
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError("siyu serve did not answer /healthz")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def _try_it_block() -> str:
    section = (REPO / "README.md").read_text().split("\n## Try it\n", 1)[1].split("\n## ", 1)[0]
    return section.split("```sh\n", 1)[1].split("```", 1)[0]


def test_the_readme_try_it_makes_the_scanning_customer_a_member_with_the_codes_tag(tmp_path):
    # given `make run`'s server (`siyu serve`, embedded mode) on a free port, SIYU_PUBLIC_URL unset: its sandbox's
    # URL must follow --port, or the channel code it creates in WeCom (its own sandbox) could not be made
    env = _env(tmp_path)
    proc, base = _serve(tmp_path, env)
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parent.parent)  # `source .venv/bin/activate` works
    try:
        # when the README's commands run in a second shell (that shell names the port it is not 8000 on)
        script = _try_it_block().replace("127.0.0.1:8000", base.removeprefix("http://"))
        assert "siyu sandbox seed" in script and "siyu sandbox send add-contact" in script
        done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=tmp_path, capture_output=True,
                              text=True, timeout=600, env={**env, "SIYU_PUBLIC_URL": base + "/"})
        assert done.returncode == 0, done.stdout + done.stderr + (tmp_path / "serve.log").read_text()
        # then the last answer is the new customer: one member, in the code's store, with the code's tag
        [member] = json.loads(done.stdout.strip().splitlines()[-1])["items"]
        code = json.loads((tmp_path / "code.json").read_text())
        added = json.loads((tmp_path / "added.json").read_text())
        assert code["tags"] == ["新客"] and added["handled"] == "done" and added["staff"] == "staff000"
        assert "新客" in member["tags"] and member["store"] == "wecom-100"
        assert [(r["staff"], r["state"], r["status"]) for r in member["relations"]] == [
            ("staff000", code["state"], "active")]
        # and the seeded chain is in Siyu: 10 customers and the new one
        assert "synced: stores_created=2 staff_created=4" in done.stdout and "members_created=10" in done.stdout

        # when the chain is seeded a second time
        again = subprocess.run([str(SIYU), "sandbox", "seed"], cwd=tmp_path, capture_output=True, text=True,
                               timeout=300, env={**env, "SIYU_PUBLIC_URL": base + "/"})
        # then nothing is added, in the sandbox or in Siyu
        assert again.returncode == 0, again.stderr
        assert again.stdout.splitlines()[-1] == "synced: contacts_seen=11 group_chats_seen=1 group_members_seen=4"
    finally:
        _stop(proc)


def _sandbox_answer(client: httpx.Client, base: str) -> tuple[int, list[str], str]:
    """(pid, userids, the token it issued) from one worker: one client, one kept-alive connection."""
    pid = client.get(f"{base}/sandbox/healthz").json()["pid"]
    wecom = f"{base}/sandbox/wecom/cgi-bin/"
    token = client.get(wecom + "gettoken", params={"corpid": C.SANDBOX_CORP_ID,
                                                   "corpsecret": C.SANDBOX_CONTACT_SECRET}).json()["access_token"]
    users = client.get(wecom + "user/list", params={"access_token": token, "department_id": 1,
                                                     "fetch_child": 1}).json()["userlist"]
    return pid, sorted(u["userid"] for u in users), token


def test_two_serve_workers_and_the_cli_share_one_sandbox_in_redis(tmp_path, redis_url):
    # given `siyu serve --workers 2` (Redis mode) and a sandbox seeded by `siyu sandbox seed` in another process
    env = _env(tmp_path, SIYU_REDIS_URL=redis_url, SIYU_ADMIN_TOKEN="t" * 32)
    subprocess.run([str(SIYU), "db", "upgrade"], cwd=tmp_path, env=env, check=True, capture_output=True, timeout=300)
    proc, base = _serve(tmp_path, env, "--workers", "2")
    try:
        seeded = subprocess.run([str(SIYU), "sandbox", "seed", "--no-sync", "--staff", "3"], cwd=tmp_path,
                                env=env, capture_output=True, text=True, timeout=300)
        assert seeded.returncode == 0, seeded.stderr
        # when fresh connections reach the server until both workers have answered
        seen: dict[int, tuple[list[str], str]] = {}
        deadline = time.monotonic() + 180  # on a loaded machine uvicorn may restart a worker slow to start
        while len(seen) < 2 and time.monotonic() < deadline:
            try:
                with httpx.Client(timeout=10) as client:
                    pid, userids, token = _sandbox_answer(client, base)
            except httpx.TransportError:
                time.sleep(0.2)
                continue
            seen[pid] = (userids, token)
        assert len(seen) == 2, "the kernel sent every connection to one worker"
        # then each worker lists the staff the CLI seeded
        assert [users for users, _ in seen.values()] == [["staff000", "staff001", "staff002"]] * 2
        # and both answered with the same token (WeCom answers one token until it expires): one state, not two
        assert len({token for _, token in seen.values()}) == 1
    finally:
        _stop(proc)
