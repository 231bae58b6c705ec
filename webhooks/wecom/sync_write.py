"""Bulk writes of `siyu sync wecom` into membership: a page of contacts in a handful of statements.

Calling `membership.identity.bind` per customer costs several queries each; a 20,000-customer corp
would take minutes. The common cases (a customer Siyu already knows, or one whose identities are
all new) are written in bulk here; only customers whose identities point at different members, or
whose unionid is already known elsewhere, go through `bind`, which merges as the identity rules say.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from sqlalchemy import func, select, text, tuple_, update
from sqlalchemy.orm import Session

from membership.identity import IdentityIn, bind
from membership.models import Identity, IdentityType, Member, MemberTag, Relation, RelationStatus

WECOM = IdentityType.wecom_external.value
UNIONID = IdentityType.unionid.value


@dataclass
class Contact:
    """One customer as seen in this page: who they are and which staff follow them."""

    external_userid: str
    name: str | None
    unionid: str | None
    follows: list[dict] = field(default_factory=list)


def _identity_map(session: Session, type_: str, scope: str, values: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for start in range(0, len(values), 500):
        chunk = values[start:start + 500]
        rows = session.execute(select(Identity.value, Identity.member_id).where(
            Identity.type == type_, Identity.scope == scope, Identity.value.in_(chunk)))
        out.update(dict(rows.all()))
    return out


def allocate_ids(session: Session, table, n: int) -> list[int]:
    """`n` fresh primary keys of `table`, so a bulk insert needs no RETURNING.

    INSERT … RETURNING with the parameter order kept falls back to one statement per row on
    PostgreSQL for these tables (no sentinel column); taking ids from the sequence keeps it one batch.
    On SQLite the transaction already holds the write lock (BEGIN IMMEDIATE), so max(id) is stable.
    """
    if n == 0:
        return []
    if session.get_bind().dialect.name == "postgresql":
        seq = session.scalar(text(f"SELECT pg_get_serial_sequence('{table.name}', 'id')"))
        return list(session.scalars(text("SELECT nextval(:seq) FROM generate_series(1, :n)"), {"seq": seq, "n": n}))
    top = session.scalar(select(func.coalesce(func.max(table.c.id), 0))) or 0
    return list(range(top + 1, top + 1 + n))


def upsert_members(session: Session, corp_id: str, contacts: list[Contact], counts) -> dict[str, int]:
    """external_userid -> member id for every contact, creating members and identities as needed."""
    exts = [c.external_userid for c in contacts]
    by_ext = _identity_map(session, WECOM, corp_id, exts)
    unionids = sorted({c.unionid for c in contacts if c.unionid})
    by_union = _identity_map(session, UNIONID, "", unionids)
    new_members: list[Contact] = []
    new_unionids: list[tuple[int, str]] = []
    for c in contacts:
        m_ext, m_union = by_ext.get(c.external_userid), by_union.get(c.unionid) if c.unionid else None
        if m_ext is None and m_union is None:
            new_members.append(c)
        elif m_ext is not None and c.unionid and m_union is None:
            new_unionids.append((m_ext, c.unionid))
            by_union[c.unionid] = m_ext
        elif m_ext is not None and (m_union is None or m_union == m_ext):
            continue
        else:
            # Known by unionid only, or the two identities name different members: bind merges by the rules.
            ids = [IdentityIn(WECOM, c.external_userid, corp_id)]
            ids += [IdentityIn(UNIONID, c.unionid)] if c.unionid else []
            result = bind(session, ids, name=c.name)
            counts.members_created += result.created
            counts.identities_added += len(result.new_identities)
            counts.members_merged += len(result.merged)
            by_ext[c.external_userid] = result.member.id
            if c.unionid:
                by_union[c.unionid] = result.member.id
    if new_members:
        # Two contacts of one page can share a unionid: they are one person, one member.
        firsts: dict[str, Contact] = {}
        rows = []
        for c in new_members:
            if c.unionid and c.unionid in firsts:
                continue
            if c.unionid:
                firsts[c.unionid] = c
            rows.append(c)
        now = datetime.now(timezone.utc)
        ids = allocate_ids(session, Member.__table__, len(rows))
        session.execute(Member.__table__.insert(), [{"id": i, "name": c.name, "created_at": now, "updated_at": now}
                                         for i, c in zip(ids, rows, strict=True)])
        counts.members_created += len(ids)
        for c, member_id in zip(rows, ids, strict=True):
            by_ext[c.external_userid] = member_id
            if c.unionid:
                by_union[c.unionid] = member_id
        identities = []
        for c in new_members:
            member_id = by_ext.get(c.external_userid) or by_union[c.unionid]
            by_ext[c.external_userid] = member_id
            identities.append({"member_id": member_id, "type": WECOM, "scope": corp_id,
                               "value": c.external_userid, "verified": False, "created_at": now})
        for union in firsts:
            identities.append({"member_id": by_union[union], "type": UNIONID, "scope": "", "value": union,
                               "verified": False, "created_at": now})
        session.execute(Identity.__table__.insert(), identities)
        counts.identities_added += len(identities)
    if new_unionids:
        now = datetime.now(timezone.utc)
        session.execute(Identity.__table__.insert(), [{"member_id": m, "type": UNIONID, "scope": "", "value": u,
                                            "verified": False, "created_at": now} for m, u in new_unionids])
        counts.identities_added += len(new_unionids)
    return by_ext


def upsert_relations(session: Session, pairs: list[tuple[int, int, dict]], counts) -> None:
    """Make (staff id, member id) relations active with WeCom's state and added time; untouched when equal."""
    if not pairs:
        return
    keys = [(s, m) for s, m, _ in pairs]
    existing = {}
    for start in range(0, len(keys), 500):
        rows = session.execute(select(Relation.staff_id, Relation.member_id, Relation.id, Relation.status,
                                      Relation.state).where(
            tuple_(Relation.staff_id, Relation.member_id).in_(keys[start:start + 500])))
        existing.update({(r.staff_id, r.member_id): r for r in rows})
    inserts, seen = [], set()
    for staff_id, member_id, info in pairs:
        if (staff_id, member_id) in seen:
            continue
        seen.add((staff_id, member_id))
        state = (info.get("state") or None)
        row = existing.get((staff_id, member_id))
        if row is None:
            added = datetime.fromtimestamp(int(info.get("createtime") or 0), timezone.utc)
            inserts.append({"staff_id": staff_id, "member_id": member_id, "state": state,
                            "remark": (info.get("remark") or None), "status": RelationStatus.active.value,
                            "added_at": added})
        elif row.status != RelationStatus.active.value or (state and row.state != state):
            session.execute(update(Relation).where(Relation.id == row.id).values(
                status=RelationStatus.active.value, ended_at=None, state=state or row.state))
            counts.relations_updated += 1
    if inserts:
        session.execute(Relation.__table__.insert(), inserts)
        counts.relations_added += len(inserts)


def vanished_relations(session: Session, staff_ids: list[int], seen: set[tuple[int, int]]) -> tuple[int, list[int]]:
    """(how many active relations these staff have, ids of those WeCom no longer lists)."""
    if not staff_ids:
        return 0, []
    rows = session.execute(select(Relation.id, Relation.staff_id, Relation.member_id).where(
        Relation.staff_id.in_(staff_ids), Relation.status == RelationStatus.active.value)).all()
    return len(rows), [r.id for r in rows if (r.staff_id, r.member_id) not in seen]


def end_relations(session: Session, ids: list[int], counts) -> None:
    """These relations end as `lost` (who deleted whom is unknown here)."""
    for start in range(0, len(ids), 500):
        session.execute(update(Relation).where(Relation.id.in_(ids[start:start + 500])).values(
            status=RelationStatus.lost.value, ended_at=datetime.now(timezone.utc)))
    counts.relations_ended += len(ids)


@dataclass
class TagPlan:
    """What reconciling member tags would do: rows to add, (member, tag) pairs to drop, `wecom` rows held."""

    adds: list[dict]
    drops: list[tuple[int, int]]
    held: int


def plan_member_tags(session: Session, wanted: dict[int, set[int]], remove: bool) -> TagPlan:
    """Member tags with source `wecom` should become exactly `wanted` (only added to when `remove` is False)."""
    member_ids = list(wanted)
    have: dict[int, dict[int, str]] = {}
    for start in range(0, len(member_ids), 500):
        rows = session.execute(select(MemberTag.member_id, MemberTag.tag_id, MemberTag.source).where(
            MemberTag.member_id.in_(member_ids[start:start + 500])))
        for r in rows:
            have.setdefault(r.member_id, {})[r.tag_id] = r.source
    now = datetime.now(timezone.utc)
    plan = TagPlan([], [], sum(src == "wecom" for tags in have.values() for src in tags.values()))
    for member_id, tag_ids in wanted.items():
        current = have.get(member_id, {})
        plan.adds += [{"member_id": member_id, "tag_id": t, "source": "wecom", "created_at": now}
                      for t in tag_ids if t not in current]
        if remove:
            plan.drops += [(member_id, t) for t, src in current.items() if src == "wecom" and t not in tag_ids]
    return plan


def add_member_tags(session: Session, plan: TagPlan, counts) -> None:
    """Insert the tags `plan` adds."""
    if plan.adds:
        session.execute(MemberTag.__table__.insert(), plan.adds)
    counts.member_tags_added += len(plan.adds)


def drop_member_tags(session: Session, plan: TagPlan, counts) -> None:
    """Delete the tags `plan` drops."""
    for member_id, tag_id in plan.drops:
        session.execute(MemberTag.__table__.delete().where(MemberTag.member_id == member_id,
                                                          MemberTag.tag_id == tag_id))
    counts.member_tags_removed += len(plan.drops)
