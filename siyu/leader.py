"""One active scheduler per deployment: whoever holds the lease fires the schedules, the others stand by.

`siyu scheduler` holds `siyu:scheduler:leader` in Redis (`SET NX PX`, value = its owner id) and renews
it every third of the lease with a compare-and-renew script, so only the holder can extend it. A
second scheduler finds the key taken, says it is standing by and polls; when the holder dies
(SIGKILL: nobody renews) the key expires and a standby takes it. A holder that fails to renew (the
lease was lost, Redis is gone) stops firing at once; and every fire also checks, by the local clock,
that the last successful renewal is younger than the lease, so even a heartbeat stuck in a hung call
cannot leave two schedulers firing. In embedded mode a `flock` on a file in var/ plays the lease:
the kernel releases it when the process dies.
"""
from __future__ import annotations

import fcntl
import logging
import os
import secrets
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from redis import Redis

log = logging.getLogger(__name__)

KEY = "siyu:scheduler:leader"
# The local view of the lease ends this share early: Redis starts the TTL when it receives the command
# (after our clock was read), and this covers clock-rate drift between hosts as well.
SAFETY = 0.8

_ACQUIRE = """
if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('get', KEYS[1]) == ARGV[1] then redis.call('pexpire', KEYS[1], ARGV[2]) return 1 end
return 0
"""
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


def owner_id() -> str:
    """host:pid:random, so a restarted process on the same host never mistakes an old lease for its own."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class Lease(Protocol):
    owner: str
    ttl: float

    def acquire(self) -> bool: ...
    def renew(self) -> bool: ...
    def release(self) -> None: ...
    def holder(self) -> str | None: ...


class RedisLease:
    """A lease on one Redis key; `ttl` in seconds."""

    def __init__(self, redis: Redis, ttl: float, owner: str | None = None, key: str = KEY):
        self.redis, self.ttl, self.key = redis, ttl, key
        self.owner = owner or owner_id()
        self._acquire = redis.register_script(_ACQUIRE)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    @classmethod
    def from_url(cls, url: str, ttl: float, **kwargs) -> RedisLease:
        """A lease on its own connection, whose timeouts are shorter than a renewal interval."""
        timeout = max(0.5, ttl / 3)
        return cls(Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout), ttl, **kwargs)

    @property
    def _ms(self) -> int:
        return int(self.ttl * 1000)

    def acquire(self) -> bool:
        """Take the lease when it is free (or already ours); True when held now."""
        return self._acquire(keys=[self.key], args=[self.owner, self._ms]) == 1

    def renew(self) -> bool:
        """Extend the lease if it is still ours; False when someone else holds it or it expired."""
        return self._renew(keys=[self.key], args=[self.owner, self._ms]) == 1

    def release(self) -> None:
        """Give the lease up (only if ours), so a standby takes over without waiting for expiry."""
        self._release(keys=[self.key], args=[self.owner])

    def holder(self) -> str | None:
        """Owner id of whoever holds the lease now."""
        raw = self.redis.get(self.key)
        return raw.decode() if raw else None


class FileLease:
    """An exclusive `flock` on `path` (one machine: embedded mode); the kernel drops it when the process dies."""

    def __init__(self, path: Path, ttl: float = 15.0, owner: str | None = None):
        self.path, self.ttl = Path(path), ttl
        self.owner = owner or owner_id()
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock when nobody holds it; True when held now."""
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, self.owner.encode())
        self._fd = fd
        return True

    def renew(self) -> bool:
        """A held flock needs no renewal; True while this process holds it."""
        return self._fd is not None

    def release(self) -> None:
        """Unlock and close."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def holder(self) -> str | None:
        """Owner id the holder wrote into the file."""
        try:
            return self.path.read_text().strip() or None
        except OSError:
            return None


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass
class Elector:
    """Runs `start` while this process holds `lease` and `stop` as soon as it does not."""

    lease: Lease
    start: Callable[[], None]
    stop: Callable[[], None]
    renew_every: float
    poll_every: float
    say: Callable[[str], None] = _stderr
    clock: Callable[[], float] = time.monotonic
    _valid_until: float = field(default=0.0, init=False)

    def leading(self) -> bool:
        """True while the last successful acquire or renewal is younger than the lease (checked by every fire)."""
        return self.clock() < self._valid_until

    def run(self, done: threading.Event) -> None:
        """Stand by, lead while the lease is ours, stand by again when it is lost; until `done` is set."""
        shown = None
        while not done.is_set():
            if self._claim(self.lease.acquire):
                self.say(f"scheduler: active ({self.lease.owner})")
                shown = None
                self._lead(done)
                continue
            holder = self._holder()
            if holder and holder != shown:
                self.say(f"scheduler: standing by (active: {holder})")
                shown = holder
            done.wait(self.poll_every)

    def _lead(self, done: threading.Event) -> None:
        try:
            self.start()
            while not done.wait(self.renew_every):
                if not self._claim(self.lease.renew):
                    self._valid_until = 0.0
                    self.say("scheduler: lost the lease, stopped firing, standing by")
                    return
        finally:
            self._valid_until = 0.0
            self.stop()
            if done.is_set():
                self._quietly(self.lease.release)

    def _claim(self, op: Callable[[], bool]) -> bool:
        started = self.clock()
        held = bool(self._quietly(op))
        if held:
            self._valid_until = started + self.lease.ttl * SAFETY
        return held

    def _holder(self) -> str | None:
        try:
            return self.lease.holder()
        except Exception as exc:  # noqa: BLE001 - a standby keeps polling through a Redis outage
            return f"unknown: {type(exc).__name__}"

    @staticmethod
    def _quietly(op: Callable):
        try:
            return op()
        except Exception as exc:  # noqa: BLE001 - Redis down: not leading, and keep trying
            log.warning("scheduler lease: %s: %s", type(exc).__name__, exc)
            return None
