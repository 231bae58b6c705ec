"""The sandbox's state shared between processes: every `siyu serve --workers N` worker, `siyu sandbox` and the
`siyu sandbox seed|send` commands see one corp, one official account, one mini-program and one merchant.

It lives in Redis when SIYU_REDIS_URL is set, else in `var/sandbox.db` (SQLite), never only in a process's memory.
Every sandbox request and every CLI operation runs inside `shared()`: under a cross-process lock it loads the
pickled state when another process saved a newer version, runs, and saves the state when it changed. A process
that never calls `share()` (tests constructing a SandboxState, `reset_state()`) keeps its state in memory.

The state is pickled as a whole, mixins included, so a field added to WeComState, WeChatState, TransferState or
PayState is shared without a change here. Like RQ's jobs, the pickles are trusted: whoever writes Siyu's Redis
or var/ runs Siyu already.
"""
from __future__ import annotations

import contextlib
import os
import pickle
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from bot.sandbox.state import SandboxState, get_state

REDIS_PREFIX = "siyu:sandbox:"
LOCK_SECONDS = 30  # a sandbox call holds the lock for milliseconds; a dead holder frees it after this
NOT_IN_PROCESS = ("lock", "_limiter")  # per process: a lock, and token buckets counted by each process alone


class _Redis:
    """The state under `siyu:sandbox:state`, its version under `…:version`, a Redis lock around both."""

    def __init__(self, url: str):
        from config.redis import redis_for

        self.redis = redis_for(url)

    @contextlib.contextmanager
    def locked(self) -> Iterator[_Redis]:
        lock = self.redis.lock(REDIS_PREFIX + "lock", timeout=LOCK_SECONDS, blocking_timeout=LOCK_SECONDS)
        if not lock.acquire():
            raise TimeoutError("sandbox state: the lock in Redis was not free within 30 s")
        try:
            yield self
        finally:
            with contextlib.suppress(Exception):  # expired meanwhile: another holder has it now
                lock.release()

    def version(self) -> int:
        return int(self.redis.get(REDIS_PREFIX + "version") or 0)

    def load(self) -> bytes | None:
        return self.redis.get(REDIS_PREFIX + "state")

    def save(self, blob: bytes, version: int) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(REDIS_PREFIX + "state", blob)
        pipe.set(REDIS_PREFIX + "version", version)
        pipe.execute()


class _SQLite:
    """One row in var/sandbox.db; `BEGIN IMMEDIATE` is the cross-process lock (SQLite's write lock)."""

    def __init__(self, path: Path):
        from config.files import make_private_dir

        make_private_dir(path.parent)
        os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))  # private before SQLite writes into it
        self.db = sqlite3.connect(path, timeout=LOCK_SECONDS, isolation_level=None, check_same_thread=False)
        self.db.execute("CREATE TABLE IF NOT EXISTS sandbox_state "
                        "(id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL, state BLOB NOT NULL)")

    @contextlib.contextmanager
    def locked(self) -> Iterator[_SQLite]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self
        finally:  # committed even when the call failed: shared() saved what it changed, as memory keeps it
            try:
                self.db.execute("COMMIT")
            except sqlite3.Error:
                self.db.execute("ROLLBACK")
                raise

    def version(self) -> int:
        row = self.db.execute("SELECT version FROM sandbox_state WHERE id = 1").fetchone()
        return row[0] if row else 0

    def load(self) -> bytes | None:
        row = self.db.execute("SELECT state FROM sandbox_state WHERE id = 1").fetchone()
        return row[0] if row else None

    def save(self, blob: bytes, version: int) -> None:
        self.db.execute("INSERT INTO sandbox_state (id, version, state) VALUES (1, ?, ?) "
                        "ON CONFLICT (id) DO UPDATE SET version = excluded.version, state = excluded.state",
                        (version, blob))



class _Sharing:
    """What this process knows of the shared state: its backend, and the version and bytes it last saw."""

    def __init__(self, backend, state: SandboxState):
        self.backend = backend
        self.state = state  # the object shared; another one (a test's reset_state) is in memory only
        self.version = -1  # nothing seen yet: the first call loads whatever is stored
        self.blob: bytes | None = None
        self.local = threading.local()  # depth of shared() on this thread (nested calls reuse the outer lock)


_sharing: _Sharing | None = None


def share(settings) -> None:
    """Share this process's sandbox state from now on: in Redis with SIYU_REDIS_URL, else in var/sandbox.db."""
    global _sharing
    if settings.redis_url:
        backend = _Redis(settings.redis_url)
    else:
        backend = _SQLite(Path(settings.var_dir) / "sandbox.db")
    _sharing = _Sharing(backend, get_state())


def is_shared() -> bool:
    """True when this process's sandbox state is the shared one."""
    return _sharing is not None and _sharing.state is get_state()


def _adopt(state: SandboxState, blob: bytes) -> None:
    # In place: whoever holds the state object (a handler, a demo) keeps seeing the current corp.
    loaded = pickle.loads(blob)
    for name in NOT_IN_PROCESS:
        loaded.__dict__.pop(name, None)
    stale = [k for k in state.__dict__ if k not in loaded.__dict__ and k not in NOT_IN_PROCESS]
    for name in stale:
        del state.__dict__[name]
    if loaded.rate_limits != state.rate_limits:
        state._limiter = None  # another process changed the limits: buckets start full, as set_rate_limits does
    state.__dict__.update(loaded.__dict__)


@contextlib.contextmanager
def shared() -> Iterator[SandboxState]:
    """The sandbox state, current across processes and saved when changed; in memory unless `share()` ran."""
    state = get_state()
    sharing = _sharing
    with state.lock:
        if sharing is None or sharing.state is not state or getattr(sharing.local, "depth", 0):
            yield state
            return
        sharing.local.depth = 1
        try:
            with sharing.backend.locked() as stored:
                version = stored.version()
                if version != sharing.version:
                    blob = stored.load()
                    if blob is not None:
                        _adopt(state, blob)
                    sharing.blob = pickle.dumps(state)  # re-pickled: a set's order may differ from the stored bytes
                try:
                    yield state
                finally:
                    # Saved even when the call failed half-way: in memory its changes would stay too.
                    blob = pickle.dumps(state)
                    if blob != sharing.blob:
                        version += 1
                        stored.save(blob, version)
                        sharing.blob = blob
                    sharing.version = version
        finally:
            sharing.local.depth = 0


def clear() -> None:
    """Start over with an empty sandbox, in every process that shares it (and in this one's memory)."""
    with shared() as state:
        _adopt(state, pickle.dumps(SandboxState()))
