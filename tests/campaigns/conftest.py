"""A campaign world: stores, staff and WeCom customers in Siyu and in the sandbox, a segment of them, a clock."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import insert

from campaigns import clock
from config.database import session_scope
from membership.models import Identity, Member, Relation, Staff, Store
from segments.models import Segment, SegmentMembership

# A Tuesday morning in Shanghai: outside the default quiet hours (21:00-09:00).
MORNING = datetime(2026, 3, 10, 10, 0, tzinfo=timezone(timedelta(hours=8)))
TEXT = "双十二会员回访"


@dataclass
class World:
    sandbox: object
    segment_id: int
    members: list[int]
    owner: dict[int, str]  # member id -> userid of the staff member who must send to them
    ext: dict[int, str]  # member id -> external_userid
    staff: list[str]


def build_world(sandbox, members: int = 60, stores: int = 3, staff: int = 6, second_follow_every: int = 7) -> World:
    """`members` customers over `stores` stores and `staff` staff; every 7th also follows a second staff member,
    earlier, so the most recent relation decides who sends."""
    corp = sandbox.corp_id
    userids = [f"u{i:03d}" for i in range(staff)]
    owner, ext = {}, {}
    with session_scope() as s:
        s.execute(insert(Store), [{"id": i + 1, "code": f"S{i + 1:03d}", "name": f"店{i + 1}"} for i in range(stores)])
        s.execute(insert(Staff), [{"id": i + 1, "userid": u, "name": u, "store_id": i % stores + 1, "active": True}
                                  for i, u in enumerate(userids)])
        s.execute(insert(Member), [{"id": m, "name": f"客{m}", "store_id": (m % staff) % stores + 1}
                                   for m in range(1, members + 1)])
        s.execute(insert(Identity), [{"member_id": m, "type": "wecom_external", "scope": corp,
                                      "value": f"wmC{m:06d}", "verified": True} for m in range(1, members + 1)])
        relations = []
        for m in range(1, members + 1):
            main = m % staff
            relations.append({"staff_id": main + 1, "member_id": m, "status": "active",
                              "added_at": MORNING - timedelta(days=10)})
            owner[m], ext[m] = userids[main], f"wmC{m:06d}"
            if m % second_follow_every == 0:
                other = (main + 1) % staff
                relations.append({"staff_id": other + 1, "member_id": m, "status": "active",
                                  "added_at": MORNING - timedelta(days=30)})
        s.execute(insert(Relation), relations)
        segment = Segment(name="全部", definition={"channel": "wecom"}, depends_on=[])
        s.add(segment)
        s.flush()
        s.execute(insert(SegmentMembership), [{"segment_id": segment.id, "member_id": m}
                                              for m in range(1, members + 1)])
        segment_id = segment.id
    for u in userids:
        sandbox.add_staff(u)
    for r in relations:
        sandbox.add_external_contact(userids[r["staff_id"] - 1], external_userid=ext[r["member_id"]])
    return World(sandbox, segment_id, list(range(1, members + 1)), owner, ext, userids)


@pytest.fixture
def manual_clock():
    """The engine's clock, standing still at MORNING until the test moves it."""
    c = clock.Manual(MORNING.astimezone(timezone.utc))
    with clock.using(c):
        yield c
