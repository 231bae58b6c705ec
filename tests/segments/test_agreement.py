"""The SQL compiler and the Python predicate agree on random definitions over random member states.

Definitions refer to two stored segments, often several times over, and segment 2 refers to segment 1: each
evaluator computes a referenced segment once and shares it between the occurrences, which must not change a thing.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings as hsettings, strategies as st
from sqlalchemy import delete, insert

from membership.models import Identity, Member, MemberTag, Relation, Staff, Store, Tag, Trait
from membership.traits import typed_columns
from segments.clock import EvalContext
from segments.graph import resolve
from segments.language import parse, where_key
from segments.models import EventDayCount, Segment
from segments.predicate import compile_predicate, load_states
from segments.idsets import count_and_sample, matching_ids
from segments.sql import id_filter, members_query, prepare

TODAY = date(2026, 3, 1)
TAGS = [("", "VIP"), ("", "新客"), ("level", "VIP"), ("level", "金卡")]
STORES = ["S001", "S002"]
STAFF = ["zhangsan", "lisi"]
IDENTITY_TYPES = ["wecom_external", "oa_openid", "mp_openid", "phone", "unionid"]
TEXTS = ["上海", "北京", "上海浦东", "shanghai", "Shanghai"]
EYE = {"service": "eye-test"}
EVENT_KEYS = [("booking.completed", ""), ("booking.completed", where_key(EYE)), ("groupbuy.paid", "")]
ZONES = [timezone.utc, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5))]

# -- member states ----------------------------------------------------------------------------------
times = st.builds(
    lambda days, secs, tz: (datetime(2026, 3, 1, tzinfo=timezone.utc)
                            + timedelta(days=days, seconds=secs)).astimezone(tz),
    st.integers(-800, 30), st.integers(0, 86399), st.sampled_from(ZONES))
trait_values = st.one_of(
    st.sampled_from(TEXTS), st.integers(-5, 100), st.sampled_from([0.5, 2.5, 18.0]), st.booleans(), times)
member_states = st.fixed_dictionaries({
    "store": st.sampled_from([None, *STORES]),
    "merged": st.booleans(),
    "tags": st.sets(st.sampled_from(TAGS), max_size=3),
    "traits": st.dictionaries(st.sampled_from(["city", "age", "birthday", "vip"]), trait_values, max_size=4),
    "staff": st.dictionaries(st.sampled_from(STAFF), st.sampled_from(["active", "lost"]), max_size=2),
    "identities": st.sets(st.sampled_from(IDENTITY_TYPES), max_size=3),
    "counts": st.dictionaries(st.tuples(st.sampled_from(EVENT_KEYS), st.integers(-120, 2)),
                              st.integers(1, 3), max_size=6),
})

# -- definitions --------------------------------------------------------------------------------------
def iso(t: datetime) -> str:
    return t.isoformat()


trait_leaves = st.one_of(
    st.builds(lambda k, op, v: {"trait": k, "op": op, "value": v}, st.sampled_from(["city", "age", "vip"]),
              st.sampled_from(["eq", "ne"]), st.one_of(st.sampled_from(TEXTS), st.integers(0, 100), st.booleans())),
    st.builds(lambda k, op, v: {"trait": k, "op": op, "value": v}, st.sampled_from(["age", "birthday"]),
              st.sampled_from(["gt", "gte", "lt", "lte"]), st.one_of(st.integers(-5, 100), times.map(iso))),
    st.builds(lambda k, v: {"trait": k, "op": "in", "value": v}, st.sampled_from(["city", "age"]),
              st.one_of(st.lists(st.sampled_from(TEXTS), min_size=1, max_size=3),
                        st.lists(st.integers(0, 100), min_size=1, max_size=3))),
    st.builds(lambda v: {"trait": "city", "op": "contains", "value": v}, st.sampled_from(["上海", "海", "hai", "S"])),
    st.builds(lambda k, op: {"trait": k, "op": op}, st.sampled_from(["city", "age", "birthday", "nope"]),
              st.sampled_from(["exists", "not_exists"])),
    st.builds(lambda op, n: {"trait": "birthday", "op": op, "value": n},
              st.sampled_from(["within_last_days", "more_than_days_ago", "anniversary_within_days"]),
              st.integers(0, 60)),
)
count_specs = st.dictionaries(st.sampled_from(["eq", "gt", "gte", "lt", "lte"]), st.integers(0, 4), min_size=1,
                              max_size=2)
event_leaves = st.builds(
    lambda t, count, within, where: {"event": t, **({"count": count} if count else {}),
                                     **({"within_days": within} if within else {}),
                                     **({"where": where} if where else {})},
    st.sampled_from(["booking.completed", "groupbuy.paid"]), st.none() | count_specs,
    st.none() | st.integers(1, 120), st.none() | st.just(EYE))
leaves = st.one_of(
    st.builds(lambda t: {"tag": t}, st.sampled_from(["VIP", "新客", "金卡"])),
    st.builds(lambda g, t: {"tag": t, "group": g}, st.sampled_from(["", "level"]), st.sampled_from(["VIP", "金卡"])),
    trait_leaves, event_leaves,
    st.builds(lambda s: {"store": s}, st.sampled_from([*STORES, "S999"])),
    st.builds(lambda s: {"staff": s}, st.sampled_from([*STAFF, "nobody"])),
    st.builds(lambda c: {"channel": c}, st.sampled_from(["wecom", "official_account", "miniprogram", "phone"])),
    st.sampled_from([{"segment": 1}, {"segment": 2}]),
)
definitions = st.recursive(leaves, lambda kids: st.one_of(
    st.builds(lambda xs: {"all": xs}, st.lists(kids, min_size=1, max_size=3)),
    st.builds(lambda xs: {"any": xs}, st.lists(kids, min_size=1, max_size=3)),
    st.builds(lambda x: {"not": x}, kids)), max_leaves=10)
referenced = st.recursive(leaves.filter(lambda d: "segment" not in d), lambda kids: st.one_of(
    st.builds(lambda xs: {"any": xs}, st.lists(kids, min_size=1, max_size=2)),
    st.builds(lambda x: {"not": x}, kids)), max_leaves=3)
sharing = st.recursive(st.one_of(leaves.filter(lambda d: "segment" not in d), st.just({"segment": 1})),
                       lambda kids: st.one_of(
    st.builds(lambda xs: {"all": xs}, st.lists(kids, min_size=1, max_size=3)),
    st.builds(lambda xs: {"any": xs}, st.lists(kids, min_size=1, max_size=3)),
    st.builds(lambda x: {"not": x}, kids)), max_leaves=4)


def _inline(raw: dict, stored: dict[int, dict]) -> dict:
    """The definition with each reference replaced by the referenced definition (the evaluation to agree with)."""
    if "segment" in raw:
        return _inline(stored[raw["segment"]], stored)
    if "not" in raw:
        return {"not": _inline(raw["not"], stored)}
    for key in ("all", "any"):
        if key in raw:
            return {key: [_inline(c, stored) for c in raw[key]]}
    return raw


def _reset(session) -> None:
    for model in (EventDayCount, MemberTag, Trait, Relation, Identity, Segment, Member, Tag, Staff, Store):
        session.execute(delete(model))


def _write_world(session, states: list[dict], stored: dict[int, dict]) -> list[int]:
    _reset(session)
    session.execute(insert(Store), [{"id": i + 1, "code": c, "name": c} for i, c in enumerate(STORES)])
    session.execute(insert(Staff), [{"id": i + 1, "userid": u, "name": u} for i, u in enumerate(STAFF)])
    session.execute(insert(Tag), [{"id": i + 1, "group_name": g, "name": n} for i, (g, n) in enumerate(TAGS)])
    for sid, definition in stored.items():
        session.add(Segment(id=sid, name=f"ref {sid}", definition=definition, depends_on=[]))
    ids = list(range(1, len(states) + 1))
    session.execute(insert(Member), [{"id": i, "name": f"m{i}"} for i in ids])
    for mid, st_ in zip(ids, states, strict=True):
        session.execute(
            Member.__table__.update().where(Member.id == mid).values(
                store_id=STORES.index(st_["store"]) + 1 if st_["store"] else None,
                merged_into_id=1 if st_["merged"] and mid != 1 else None))
        for tag in st_["tags"]:
            session.add(MemberTag(member_id=mid, tag_id=TAGS.index(tag) + 1))
        for key, value in st_["traits"].items():
            stored = value.isoformat() if isinstance(value, datetime) else value
            session.add(Trait(member_id=mid, key=key, value=stored, **typed_columns(value)))
        for userid, status in st_["staff"].items():
            session.add(Relation(member_id=mid, staff_id=STAFF.index(userid) + 1, status=status))
        for n, type_ in enumerate(st_["identities"]):
            session.add(Identity(member_id=mid, type=type_, value=f"{type_}-{mid}-{n}"))
        for ((type_, key), offset), n in st_["counts"].items():
            session.add(EventDayCount(member_id=mid, type=type_, where_key=key, day=TODAY + timedelta(days=offset),
                                      n=n))
    session.flush()
    return ids


@hsettings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                     HealthCheck.too_slow])
@given(states=st.lists(member_states, min_size=1, max_size=8), defs=st.lists(definitions, min_size=1, max_size=4),
       ref=referenced, middle=sharing, zone=st.sampled_from(["Asia/Shanghai", "UTC", "America/New_York"]))
def test_sql_and_python_evaluators_agree(session, states, defs, ref, middle, zone):
    """Given random members and definitions, when the SQL, set and Python evaluators run, then they pick the same."""
    from zoneinfo import ZoneInfo

    stored = {1: ref, 2: middle}
    ids = _write_world(session, states, stored)
    ctx = EvalContext(today=TODAY, tz=ZoneInfo(zone))
    prepare(session)
    member_states = load_states(session, ids)
    for raw in defs:
        node = parse(raw)
        refs = resolve(node, stored.get)
        dialect = session.get_bind().dialect.name
        by_sql = set(session.scalars(members_query(node, ctx, refs, dialect)))
        predicate = compile_predicate(node, ctx, refs)
        by_python = {mid for mid, state in member_states.items() if predicate(state)}
        assert by_sql == by_python, (raw, stored)
        inlined = compile_predicate(parse(_inline(raw, stored)), ctx, {})
        assert by_python == {mid for mid, state in member_states.items() if inlined(state)}, (raw, stored)
        scope = ids[::2]  # an incremental refresh evaluates only some members: it must pick the same ones
        scoped = set(session.scalars(members_query(node, ctx, refs, dialect, scope=id_filter(scope, dialect))))
        assert scoped == by_sql & set(scope), (raw, stored)
        # The set-algebra evaluator (full refreshes and previews) picks the same members, scoped or not.
        assert matching_ids(session, node, ctx, refs) == by_python, (raw, stored)
        assert matching_ids(session, node, ctx, refs, scope) == by_python & set(scope), (raw, stored)
        assert count_and_sample(session, node, ctx, refs, 3) == (len(by_python), sorted(by_python)[:3]), (raw, stored)
    session.rollback()
