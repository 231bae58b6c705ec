"""bot/sandbox/store.py: one sandbox state for every process, in Redis or var/sandbox.db, with no lost update."""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from bot.sandbox import store
from bot.sandbox.state import SandboxState, get_state, reset_state

REPO = Path(__file__).resolve().parents[2]

# A second process: share the state, add `n` staff one call at a time, report what it saw.
WORKER = """
import sys
from bot.sandbox import store
from config.settings import get_settings
store.share(get_settings())
name, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    with store.shared() as state:
        state.add_staff(f"{name}-{i}")
with store.shared() as state:
    print(",".join(sorted(state.staff)))
"""


@pytest.fixture(params=["sqlite", "redis"])
def backend(request, tmp_path, monkeypatch):
    """The environment of a sharing process: var/ in tmp_path, and SIYU_REDIS_URL for the Redis backend."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIYU_")}
    env["SIYU_VAR_DIR"] = str(tmp_path / "var")
    if request.param == "redis":
        env["SIYU_REDIS_URL"] = request.getfixturevalue("redis_url")  # flushed
    reset_state()
    yield env
    monkeypatch.setattr(store, "_sharing", None)
    reset_state()


def _share_here(env: dict, monkeypatch) -> None:
    from config.settings import Settings

    store.share(Settings(var_dir=Path(env["SIYU_VAR_DIR"]), redis_url=env.get("SIYU_REDIS_URL")))


def _other_process(env: dict, name: str, n: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WORKER, name, str(n)], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_what_one_process_changes_another_sees_and_changes_further(backend, monkeypatch):
    # given this process sharing the sandbox, with staff added through it
    _share_here(backend, monkeypatch)
    with store.shared() as state:
        state.add_staff("here")
    # when another process adds one staff member
    other = _other_process(backend, "there", 1)
    out, err = other.communicate(timeout=120)
    # then it saw this process's staff member, and this process sees its own
    assert other.returncode == 0, err
    assert out.strip() == "here,there-0"
    with store.shared() as state:
        assert sorted(state.staff) == ["here", "there-0"]
        assert state is get_state()  # updated in place: handlers holding the object see the current corp


def test_concurrent_processes_lose_no_update(backend, monkeypatch):
    # given four processes and this one's threads, each adding staff one locked call at a time
    _share_here(backend, monkeypatch)
    others = [_other_process(backend, f"p{k}", 15) for k in range(4)]

    def here(k: int) -> None:
        for i in range(15):
            with store.shared() as state:
                state.add_staff(f"t{k}-{i}")

    threads = [threading.Thread(target=here, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    results = [p.communicate(timeout=300) for p in others]
    assert [p.returncode for p in others] == [0] * 4, [err for _, err in results]
    # then every one of the 90 additions is in the shared state: none overwrote another's
    with store.shared() as state:
        expected = ({f"p{k}-{i}" for k in range(4) for i in range(15)}
                    | {f"t{k}-{i}" for k in range(2) for i in range(15)})
        assert set(state.staff) == expected


def test_reset_clears_every_process_view(backend, monkeypatch):
    # given a shared sandbox with a staff member another process added
    _share_here(backend, monkeypatch)
    other = _other_process(backend, "there", 1)
    assert other.communicate(timeout=120) and other.returncode == 0
    # when it is cleared
    store.clear()
    # then this process and a new one see an empty corp
    with store.shared() as state:
        assert state.staff == {}
    again = _other_process(backend, "later", 1)
    out, _ = again.communicate(timeout=120)
    assert out.strip() == "later-0"


def test_a_state_pickles_without_its_lock_and_buckets_and_gets_fresh_ones():
    # given a state whose limiter has been used
    state = SandboxState()
    state.add_staff("a")
    assert state.gate("corp", "user/list") is None and state._limiter is not None
    # when it goes through pickle (what the store saves)
    copy = pickle.loads(pickle.dumps(state))
    # then the data came along, and the copy has a lock of its own and no buckets
    assert copy.staff == state.staff and copy.calls == state.calls
    assert copy.lock is not state.lock and copy._limiter is None
    with copy.lock:
        copy.add_staff("b")


def test_without_share_and_after_reset_state_the_state_stays_in_memory(tmp_path, monkeypatch):
    from config.settings import Settings

    # given a process that shared its state, then started over with reset_state (what tests do)
    monkeypatch.setattr(store, "_sharing", None)
    assert not store.is_shared()
    store.share(Settings(var_dir=tmp_path / "var"))
    assert store.is_shared()
    reset_state()
    try:
        # when the new state changes
        with store.shared() as state:
            state.add_staff("memory-only")
        # then nothing was written to var/sandbox.db
        import sqlite3

        rows = sqlite3.connect(tmp_path / "var" / "sandbox.db").execute("SELECT count(*) FROM sandbox_state")
        assert not store.is_shared() and rows.fetchone() == (0,)
        assert (tmp_path / "var" / "sandbox.db").stat().st_mode & 0o077 == 0
    finally:
        monkeypatch.setattr(store, "_sharing", None)
        reset_state()
