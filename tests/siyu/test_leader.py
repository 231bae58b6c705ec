"""One active scheduler: the lease in Redis (and the file lock of embedded mode), and the Elector around it."""
from __future__ import annotations

import threading
import time

from redis import ConnectionError as RedisConnectionError
from redis import Redis

from siyu.leader import KEY, Elector, FileLease, RedisLease


def _wait(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_given_a_held_lease_when_another_claims_then_it_is_refused_until_the_holder_stops_renewing(redis_url):
    redis = Redis.from_url(redis_url)
    a, b = RedisLease(redis, ttl=0.3, owner="host:1:a"), RedisLease(redis, ttl=0.3, owner="host:2:b")
    # given a holds the lease
    assert a.acquire()
    # when b claims it, then b is refused and sees who holds it; a renews (only the holder can)
    assert not b.acquire() and b.holder() == "host:1:a"
    assert a.renew() and not b.renew()
    # when a stops renewing (it was killed), then the lease runs out and b takes it
    assert _wait(lambda: b.acquire(), 5)
    assert b.holder() == "host:2:b"
    # and a can neither renew nor release b's lease any more
    assert not a.renew()
    a.release()
    assert redis.get(KEY) == b"host:2:b"
    b.release()
    assert redis.get(KEY) is None


class _Node:
    """An Elector plus what production wires to it: a scheduler that fires, while started, whenever the guard allows."""

    def __init__(self, name: str, lease, fires: list, lines: list):
        self.name, self.fires, self.running = name, fires, False
        self.elector = Elector(lease, self._start, self._stop, renew_every=lease.ttl / 3, poll_every=lease.ttl / 3,
                               say=lambda line: lines.append((name, line)))
        self.done = threading.Event()
        self.threads = [threading.Thread(target=self.elector.run, args=(self.done,), daemon=True),
                        threading.Thread(target=self._tick, daemon=True)]
        for t in self.threads:
            t.start()

    def _start(self):
        self.running = True

    def _stop(self):
        self.running = False

    def _tick(self):
        while not self.done.wait(0.005):
            if self.running and self.elector.leading():  # what siyu.schedules' guarded jobs check
                self.fires.append(self.name)

    def shut(self):
        self.done.set()
        for t in self.threads:
            t.join(5)


def test_given_two_electors_when_the_leaders_heartbeat_hangs_then_the_other_takes_over_and_they_never_both_fire(
        redis_url):
    redis = Redis.from_url(redis_url)
    fires, lines = [], []
    # given a leads and fires
    a_lease = RedisLease(redis, ttl=0.6, owner="host:1:a")
    a = _Node("a", a_lease, fires, lines)
    assert _wait(lambda: "a" in fires)
    # and b stands by, naming a
    b = _Node("b", RedisLease(redis, ttl=0.6, owner="host:2:b"), fires, lines)
    assert _wait(lambda: ("b", "scheduler: standing by (active: host:1:a)") in lines)
    assert "b" not in fires
    # when a's heartbeat hangs (a frozen process: it neither renews nor gives up)
    unfreeze = threading.Event()
    real_renew = a_lease.renew
    a_lease.renew = lambda: unfreeze.wait() and real_renew()
    # then b takes over once the lease runs out
    assert _wait(lambda: "b" in fires)
    assert ("b", "scheduler: active (host:2:b)") in lines
    # and a stopped firing before b started, though its scheduler was never stopped (its own clock closed the guard)
    assert a.running and not a.elector.leading()
    first_b = fires.index("b")
    assert "a" not in fires[first_b:]
    # when a wakes up, then its renewal fails (b holds the lease): it stops and stands by
    unfreeze.set()
    assert _wait(lambda: ("a", "scheduler: lost the lease, stopped firing, standing by") in lines)
    assert _wait(lambda: ("a", "scheduler: standing by (active: host:2:b)") in lines)
    assert not a.running
    assert "a" not in fires[first_b:]
    b.shut()
    a.shut()
    # and b, stopping, gave the lease up
    assert redis.get(KEY) is None


def test_given_a_leader_when_redis_fails_a_renewal_then_it_stops_firing_at_once(redis_url):
    redis = Redis.from_url(redis_url)
    fires, lines = [], []
    lease = RedisLease(redis, ttl=3.0, owner="host:1:a")
    node = _Node("a", lease, fires, lines)
    assert _wait(lambda: "a" in fires)

    # when Redis stops answering the heartbeat
    def gone():
        raise RedisConnectionError("Redis is gone")

    lease.renew = gone
    lease.acquire = gone
    # then the leader stops its scheduler, long before the 3-second lease would have run out
    assert _wait(lambda: not node.running, 2.5)
    assert not node.elector.leading()
    assert ("a", "scheduler: lost the lease, stopped firing, standing by") in lines
    count = len(fires)
    time.sleep(0.05)
    assert len(fires) == count
    node.shut()


def test_given_the_embedded_file_lock_when_a_second_server_claims_it_then_it_waits_for_the_first(tmp_path):
    path = tmp_path / "var" / "scheduler.lock"
    a, b = FileLease(path, owner="host:1:a"), FileLease(path, owner="host:2:b")
    # given a holds the lock, when b claims it, then b is refused and reads who holds it
    assert a.acquire() and a.renew()
    assert not b.acquire() and b.holder() == "host:1:a"
    # when a lets go (its process exits: the kernel drops the lock), then b takes it
    a.release()
    assert b.acquire() and b.holder() == "host:2:b"
    assert not a.renew()
    b.release()


def test_given_a_fresh_lease_then_redis_keeps_it_longer_than_the_holder_believes_it_leads(redis_url):
    # given a lease just taken, by a leader with a clock of its own
    clock = [100.0]
    lease = RedisLease(Redis.from_url(redis_url), ttl=0.5, owner="host:1:a")
    elector = Elector(lease, lambda: None, lambda: None, renew_every=1, poll_every=1, clock=lambda: clock[0])
    assert elector._claim(lease.acquire)
    assert elector.leading()
    # when as much time passes on its clock as Redis still gives the key, then it no longer believes it leads
    clock[0] += Redis.from_url(redis_url).pttl(KEY) / 1000
    assert not elector.leading()
