"""Counter upserts held back to the end of a batch: the same traits and day counts as written at once, never lost
to a savepoint, never invisible to a read inside the batch."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.orm import Session

from config.database import get_engine, session_scope
from config.write_behind import BEHIND, flush_behind, writing_behind
from membership.models import Member, Store, Trait
from membership.timeline import record_event
from segments.models import EventDayCount

AT = datetime(2026, 11, 30, 9, tzinfo=UTC)


@pytest.fixture
def member_ids(settings) -> list[int]:
    with session_scope() as s:
        members = [Member(name=f"客户{i}") for i in range(3)]
        s.add_all(members)
        s.flush()
        return [m.id for m in members]


@pytest.fixture
def statements(settings):
    """Every statement the engine sends, as SQL text."""
    sent: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:
        sent.append(statement)

    event.listen(get_engine(), "before_cursor_execute", record)
    yield sent
    event.remove(get_engine(), "before_cursor_execute", record)


def _traits(session: Session, member_id: int) -> dict[str, object]:
    rows = session.execute(select(Trait.key, Trait.number_value, Trait.time_value)
                           .where(Trait.member_id == member_id)).all()
    return {key: number if number is not None else time for key, number, time in rows}


def _day_count(session: Session, member_id: int, type_: str) -> int:
    return session.scalar(select(func.coalesce(func.sum(EventDayCount.n), 0)).where(
        EventDayCount.member_id == member_id, EventDayCount.type == type_, EventDayCount.where_key == ""))


def _counted(member_id: int, n: int) -> None:
    """The member's committed count of contact.added events is `n`, in the traits and in the day counts alike."""
    with session_scope() as s:
        assert _traits(s, member_id)["count.contact.added"] == n
        assert _day_count(s, member_id, "contact.added") == n


def _writes(statements: list[str], table: str) -> int:
    return sum(s.lstrip().upper().startswith(f"INSERT INTO {table.upper()} ") for s in statements)


def test_a_batch_sends_its_counter_bumps_once_with_the_same_result_as_one_at_a_time(member_ids, statements):
    # given three members with two events each, recorded one at a time (outside a block) for the first
    one, *batched = member_ids
    with session_scope() as s:
        for n in range(2):
            record_event(s, one, "contact.added", {"staff": "zhangsan"}, at=AT.replace(hour=9 + n))
    at_once = len(statements)
    # when the same events are recorded for the other two inside one block
    with session_scope() as s, writing_behind(s):
        for n in range(2):
            for member_id in batched:
                record_event(s, member_id, "contact.added", {"staff": "zhangsan"}, at=AT.replace(hour=9 + n))
    inside = statements[at_once:]
    # then the block sent each table's bumps by one statement, and every member has the same traits and counts
    assert _writes(inside, "traits") == 1 and _writes(inside, "segment_event_days") == 1, inside
    # in the order every writer at once takes their locks: the traits, then the day counts
    tables = [t for sql in inside for t in ("traits", "segment_event_days") if sql.startswith(f"INSERT INTO {t} ")]
    assert tables == ["traits", "segment_event_days"]
    assert _writes(statements[:at_once], "traits") == 2
    with session_scope() as s:
        expected = _traits(s, one)
        assert expected["count.contact.added"] == 2 and expected["last.contact.added"] == AT.replace(hour=10)
        assert expected["first_seen_at"] == AT.replace(hour=9)
        for member_id in batched:
            assert _traits(s, member_id) == expected
            assert _day_count(s, member_id, "contact.added") == 2


def test_a_read_inside_the_block_sees_what_was_held_and_an_unrelated_one_sends_nothing(member_ids, statements):
    member_id = member_ids[0]
    with session_scope() as s, writing_behind(s):
        record_event(s, member_id, "contact.added", at=AT)
        before = len(statements)
        # an unrelated read leaves the bumps held
        assert s.scalar(select(func.count()).select_from(Store)) == 0
        assert _writes(statements[before:], "traits") == 0
        # a read of their table sends them first, and sees them
        assert _traits(s, member_id)["count.contact.added"] == 1
        # so does a text statement naming it
        record_event(s, member_id, "contact.added", at=AT)
        assert s.scalar(text("SELECT sum(n) FROM segment_event_days WHERE member_id = :m"), {"m": member_id}) == 2
        # and a flush of an ORM object of their table
        record_event(s, member_id, "contact.added", at=AT)
        s.add(Trait(member_id=member_id, key="vip_level", number_value=3))
        s.flush()
        assert s.info[BEHIND].sent == len(s.info[BEHIND].log)
    _counted(member_id, 3)


def test_a_savepoint_rolled_back_takes_back_what_it_held_and_has_the_rest_sent_again(member_ids):
    member_id = member_ids[0]
    with session_scope() as s, writing_behind(s):
        record_event(s, member_id, "contact.added", at=AT)  # held before the savepoint: must survive it
        with pytest.raises(RuntimeError), s.begin_nested():
            record_event(s, member_id, "contact.added", at=AT)  # held inside: must go with it
            _traits(s, member_id)  # sends both, inside the savepoint
            record_event(s, member_id, "contact.added", at=AT)
            record_event(s, member_id, "contact.added", at=AT)
            raise RuntimeError("the handler failed")
        with s.begin_nested():  # a savepoint released keeps what it held
            record_event(s, member_id, "contact.added", at=AT)
    _counted(member_id, 2)


def test_a_savepoint_a_failed_flush_rolled_back_takes_back_its_work_too(member_ids):
    from sqlalchemy.exc import IntegrityError

    member_id = member_ids[0]
    with session_scope() as s, writing_behind(s):
        record_event(s, member_id, "contact.added", at=AT)  # held before the savepoint: must survive it
        with pytest.raises(IntegrityError), s.begin_nested():
            _traits(s, member_id)  # sends it, inside the savepoint
            for _ in range(2):
                record_event(s, member_id, "contact.added", at=AT)  # held inside: must go with it
            s.add_all([Store(code="DUP", name="一"), Store(code="DUP", name="二")])
            s.flush()  # fails: the flush rolls the savepoint back, which is then only closed
    _counted(member_id, 1)


def test_a_savepoint_released_sends_nothing_held(member_ids, statements):
    member_id = member_ids[0]
    with session_scope() as s, writing_behind(s):
        record_event(s, member_id, "contact.added", at=AT)
        with s.begin_nested():
            s.add(Store(code="S1", name="一店"))
        assert _writes(statements, "traits") == 0  # a release is not a commit
    assert _writes(statements, "traits") == 1


def test_a_block_that_raises_writes_nothing_it_held(member_ids):
    member_id = member_ids[0]
    with session_scope() as s:
        with pytest.raises(RuntimeError), writing_behind(s):
            record_event(s, member_id, "contact.added", at=AT)
            raise RuntimeError("the batch failed")
        assert BEHIND not in s.info
        # the session goes on writing at once
        record_event(s, member_id, "contact.added", at=AT)
    _counted(member_id, 1)


def test_a_commit_inside_the_block_sends_what_it_held(member_ids):
    member_id = member_ids[0]
    with session_scope() as s, writing_behind(s):
        record_event(s, member_id, "contact.added", at=AT)
        s.commit()
        with session_scope() as other:
            assert _traits(other, member_id)["count.contact.added"] == 1
        flush_behind(s)  # nothing left: no-op
