"""Migrations: `siyu db upgrade` builds exactly the schema the models declare, and every step reverses."""
import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.engine import make_url

from siyu import db
from siyu.models import metadata


def _check(url: str) -> None:
    # when the migrations run up to head
    db.upgrade(url)
    engine = create_engine(url)
    # then the database matches the models exactly
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    assert diff == [], f"models and migrations differ; generate a migration: {diff}"
    # and downgrading to base removes every table
    db.downgrade(url)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    # and upgrading again works (the downgrade really reversed everything)
    db.upgrade(url)
    assert set(metadata.tables) <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_migrations_on_sqlite(tmp_path):
    _check(f"sqlite:///{tmp_path}/migrations.db")


@pytest.mark.postgres
def test_migrations_on_postgresql(pg_url):
    name = f"siyu_migrations_{uuid.uuid4().hex[:8]}"
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        _check(make_url(pg_url).set(database=name).render_as_string(hide_password=False))
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_url(request, tmp_path):
    """The URL of a database with no tables at all: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/empty.db"
        return
    pg_url = request.getfixturevalue("pg_url")
    name = f"siyu_migrations_{uuid.uuid4().hex[:8]}"
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


def test_the_send_ledger_keeps_its_rows_when_inbox_id_becomes_a_cause_and_back(empty_url):
    # given a ledger as 0007 left it: a welcome sent for inbox event 42, and a send with no inbox event
    db.upgrade(empty_url, "0007")
    engine = create_engine(empty_url)
    insert = text("INSERT INTO outbound_sends (key, inbox_id, status, created_at) VALUES (:k, :i, 'sent', :at)")
    with engine.begin() as conn:
        conn.execute(insert, [{"k": "welcome:A", "i": 42, "at": "2024-01-01 00:00:00"},
                              {"k": "manual:B", "i": None, "at": "2024-01-01 00:00:00"}])
    # when upgraded to head, then the rows say what caused them
    db.upgrade(empty_url)
    rows = "SELECT key, {} FROM outbound_sends ORDER BY key"
    with engine.connect() as conn:
        assert conn.execute(text(rows.format("cause"))).all() == [("manual:B", None), ("welcome:A", "inbox:42")]
    # and a status outside SendStatus is refused by the database
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text("INSERT INTO outbound_sends (key, status, created_at) VALUES ('x', 'new', :at)"),
                     {"at": "2024-01-01 00:00:00"})
    # and when downgraded again, the inbox ids come back
    db.downgrade(empty_url, "0007")
    with engine.connect() as conn:
        assert conn.execute(text(rows.format("inbox_id"))).all() == [("manual:B", None), ("welcome:A", 42)]
    engine.dispose()


def test_0016_counts_the_active_bookings_into_time_units_and_keeps_one_booking_per_member_and_slot(empty_url):
    from datetime import datetime, timezone

    # given bookings as 0015 left them: store 1 (3 seats, 1 per staff member), a 60-minute repair with staff 1 at
    # 10:00, an eye test at 10:30 booked twice by member 1 (the second a repeat 0015 did not refuse), a cancelled one
    db.upgrade(empty_url, "0015")
    engine = create_engine(empty_url)
    t = metadata.tables
    ten = datetime(2030, 1, 7, 2, 0, tzinfo=timezone.utc)  # 10:00 in Shanghai
    half = datetime(2030, 1, 7, 2, 30, tzinfo=timezone.utc)
    eleven = datetime(2030, 1, 7, 3, 0, tzinfo=timezone.utc)
    with engine.begin() as conn:
        conn.execute(t["stores"].insert(), {"id": 1, "code": "S1", "name": "店"})
        conn.execute(t["staff"].insert(), {"id": 1, "userid": "zhang", "name": "张", "store_id": 1})
        conn.execute(t["members"].insert(), [{"id": 1}, {"id": 2}])
        conn.execute(t["booking_services"].insert(), [
            {"id": 1, "code": "repair", "name": "修", "duration_minutes": 60, "price_fen": 0},
            {"id": 2, "code": "eye", "name": "验光", "duration_minutes": 30, "price_fen": 0}])
        conn.execute(t["booking_schedules"].insert(), {"store_id": 1, "capacity": 3, "staff_capacity": 1})
        conn.execute(t["bookings"].insert(), [
            {"id": 1, "member_id": 2, "store_id": 1, "service_id": 1, "staff_id": 1, "start": ten, "end": eleven,
             "status": "booked"},
            {"id": 2, "member_id": 1, "store_id": 1, "service_id": 2, "staff_id": None, "start": half, "end": eleven,
             "status": "booked"},
            {"id": 3, "member_id": 1, "store_id": 1, "service_id": 2, "staff_id": None, "start": half, "end": eleven,
             "status": "booked"},
            {"id": 4, "member_id": 2, "store_id": 1, "service_id": 2, "staff_id": None, "start": half, "end": eleven,
             "status": "cancelled"}])
    # when upgraded to head
    db.upgrade(empty_url)
    with engine.connect() as conn:
        units = conn.execute(text("SELECT staff_key, booked, capacity FROM booking_units ORDER BY staff_key, at")).all()
        statuses = conn.execute(text("SELECT id, status FROM bookings ORDER BY id")).all()
    # then the repeat is cancelled, the first of it kept
    assert statuses == [(1, "booked"), (2, "booked"), (3, "cancelled"), (4, "cancelled")]
    # and the store's units hold 1 seat from 10:00 and 2 from 10:30 (6 + 6 units), the staff member's 1 from 10:00
    assert units == [(0, 1, 3)] * 6 + [(0, 2, 3)] * 6 + [(1, 1, 1)] * 12
    # and when downgraded, the per-slot counters come back from the bookings
    db.downgrade(empty_url, "0015")
    with engine.connect() as conn:
        slots = conn.execute(text("SELECT service_id, staff_key, booked, capacity FROM booking_slots "
                                  "ORDER BY service_id, staff_key")).all()
    assert slots == [(1, 0, 1, 3), (1, 1, 1, 1), (2, 0, 1, 3)]
    engine.dispose()
