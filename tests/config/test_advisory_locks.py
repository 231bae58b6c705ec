"""Advisory locks on PostgreSQL: many keys in one statement, in one order, held until the transaction ends."""
from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import text

from config.database import ADVISORY_LOCKS, advisory_lock, advisory_locks, session_scope

POSTGRESQL = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


def _held_by_others(key: str) -> bool:
    """True when another transaction holds `key` (a try from a fresh one fails)."""
    with session_scope() as s:
        return not s.scalar(text("SELECT pg_try_advisory_xact_lock(hashtext(:k))"), {"k": key})


@POSTGRESQL
def test_many_keys_are_taken_at_once_held_till_the_end_and_not_taken_twice(settings):
    statements = []
    with session_scope() as s:
        from sqlalchemy import event

        @event.listens_for(s.get_bind(), "before_cursor_execute")
        def count(conn, cur, stmt, *args):
            if "advisory" in stmt:
                statements.append(stmt)

        # when a transaction takes three keys at once, then one more of them and one new one
        advisory_locks(s, ["c", "a", "b"])
        advisory_lock(s, "a")
        advisory_locks(s, ["b", "d"])
        # then it took them in two statements (the key it held already cost nothing), and others cannot have them
        assert len(statements) == 2 and s.info[ADVISORY_LOCKS] == {"a", "b", "c", "d"}
        assert all(_held_by_others(k) for k in "abcd") and not _held_by_others("e")
        event.remove(s.get_bind(), "before_cursor_execute", count)
    # and once it ended they are free
    assert not any(_held_by_others(k) for k in "abcd")


@POSTGRESQL
def test_transactions_taking_overlapping_keys_in_any_order_never_deadlock(settings):
    keys = [f"customer:{i:03d}" for i in range(30)]
    errors, done = [], []

    def worker(n: int) -> None:
        try:
            for round_ in range(10):
                mine = keys[n::2] + keys[: 15 - n] if round_ % 2 else list(reversed(keys))[n:]
                with session_scope() as s:
                    advisory_locks(s, mine)
                    time.sleep(0.001)
            done.append(n)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and sorted(done) == [0, 1, 2, 3]


@POSTGRESQL
def test_a_rolled_back_savepoint_forgets_its_locks_and_what_it_looked_up(settings):
    from config.database import TRANSACTION_CACHE
    from membership.models import Staff
    from membership.service import ensure_staff

    with session_scope() as s:
        advisory_lock(s, "outer")
        # given a savepoint that took a lock and created (then looked up) a staff member, and was rolled back
        try:
            with s.begin_nested():
                advisory_lock(s, "inner")
                ensure_staff(s, "new-staff")
                assert ensure_staff(s, "new-staff").userid == "new-staff"
                raise RuntimeError("the event failed")
        except RuntimeError:
            pass
        # then PostgreSQL released the savepoint's lock and the transaction no longer counts it as held
        assert not _held_by_others("inner") and "inner" not in s.info.get(ADVISORY_LOCKS, set())
        advisory_lock(s, "inner")  # taken again, for real
        assert _held_by_others("inner")
        # and the staff member the savepoint made is not served from the cache: it is made again
        assert TRANSACTION_CACHE not in s.info
        again = ensure_staff(s, "new-staff")
        s.flush()
        assert s.get(Staff, again.id) is again
    with session_scope() as s:
        assert [x.userid for x in s.query(Staff).filter(Staff.userid == "new-staff")] == ["new-staff"]
