"""A store manager's staff update never undoes an admin's concurrent move of that staff member (PostgreSQL)."""
from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import text

from config.database import engine_for, session_scope
from membership.exceptions import Forbidden
from membership.service import create_store, find_staff, upsert_staff


def _wait_until_blocked(engine, fragment: str) -> None:
    # Polls until the other session waits on a row lock (an ordering condition, not a timing assertion).
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            waiting = conn.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE :q"),
                {"q": f"%{fragment}%"}).scalar()
        if waiting:
            return
        time.sleep(0.02)
    pytest.fail("the store manager's update never waited for the admin's lock")


def test_a_store_managers_update_waits_for_an_admins_move_and_is_then_refused(pg_url):
    engine = engine_for(pg_url)
    with session_scope(engine) as s:
        s1, s2 = create_store(s, code="S1", name="一店"), create_store(s, code="S2", name="二店")
        s.flush()
        s1_id, s2_id = s1.id, s2.id
        upsert_staff(s, userid="li", name="li", store_id=s1_id)
    outcome = []

    def manager_renames_li():
        try:
            with session_scope(engine) as s:
                upsert_staff(s, userid="li", name="李（店长改）", store_id=s1_id, within_store=s1_id)
            outcome.append("updated")
        except Forbidden:
            outcome.append("forbidden")

    # given an admin moving li to S2, not yet committed
    with session_scope(engine) as admin:
        upsert_staff(admin, userid="li", name="li", store_id=s2_id)
        # when S1's manager renames li meanwhile
        manager = threading.Thread(target=manager_renames_li)
        manager.start()
        _wait_until_blocked(engine, "staff")
    manager.join(30)
    # then the manager's update saw the move and was refused; li stays in S2 under the admin's name
    assert outcome == ["forbidden"]
    with session_scope(engine) as s:
        li = find_staff(s, "li")
        assert (li.store_id, li.name) == (s2_id, "li")
