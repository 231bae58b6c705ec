"""Stores, staff, relations and member look-ups: plain functions over a session, never committing."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Select, bindparam, exists, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from config.database import adopt, advisory_lock, forget, per_transaction
from config.types import utcnow
from membership.exceptions import Conflict, Forbidden, NotFound
from membership.identity import IdentityIn
from membership.models import (
    Identity,
    Member,
    MemberTag,
    Relation,
    RelationStatus,
    Staff,
    StaffSource,
    Store,
    Tag,
)
from membership.timeline import record_event


# -- stores and staff ---------------------------------------------------------------------------------
def create_store(session: Session, *, code: str, name: str, city: str | None = None,
                 address: str | None = None) -> Store:
    """A new store; Conflict when the code is taken."""
    store = Store(code=code, name=name, city=city, address=address)
    try:
        with session.begin_nested():
            session.add(store)
    except IntegrityError:
        raise Conflict(f"store {code!r} exists") from None
    return store


def get_store_by_code(session: Session, code: str) -> Store:
    """The store with `code`, or NotFound."""
    store = session.scalar(select(Store).where(Store.code == code))
    if store is None:
        raise NotFound(f"store {code!r} not found")
    return store


def list_stores(session: Session, store_id: int | None = None) -> list[Store]:
    """All stores (or just one when `store_id` is given), by code."""
    q = select(Store).order_by(Store.code)
    if store_id is not None:
        q = q.where(Store.id == store_id)
    return list(session.scalars(q))


def upsert_staff(session: Session, *, userid: str, name: str, store_id: int | None, role: str | None = None,
                 within_store: int | None = None) -> Staff:
    """Create or update the staff member with this WeCom userid (their role is kept unless given).

    Created here, they are `api` staff, whom a sync never deactivates until WeCom's directory lists them.

    With `within_store` (a store manager's store) an existing staff member must already work there: Forbidden
    otherwise, so that nobody moves or renames another store's staff.
    """
    if within_store is not None and store_id != within_store:
        raise Forbidden("a store manager adds staff to their own store only")
    staff = _staff_for_update(session, userid)
    if staff is None:
        try:
            with session.begin_nested():
                staff = Staff(userid=userid, name=name, store_id=store_id, role=role or "staff",
                              source=StaffSource.api.value)
                session.add(staff)
            return staff
        except IntegrityError:  # created concurrently: update that row instead
            staff = _staff_for_update(session, userid)
    if within_store is not None and staff.store_id != within_store:
        raise Forbidden(f"staff {userid!r} works in another store (or none); an admin assigns them")
    staff.name, staff.store_id, staff.active = name, store_id, True
    staff.role = role or staff.role
    session.flush()
    session.expire(staff, ["store"])  # loaded with the old store_id
    return staff


def _staff_for_update(session: Session, userid: str) -> Staff | None:
    # The row lock keeps a concurrent move to another store from being overwritten after the check above.
    return session.scalar(select(Staff).where(Staff.userid == userid).with_for_update(of=Staff))


def find_staff(session: Session, userid: str) -> Staff | None:
    """The staff member with this WeCom userid, if Siyu knows them."""
    return session.scalar(select(Staff).where(Staff.userid == userid)) if userid else None


def get_staff(session: Session, userid: str) -> Staff:
    """The staff member with this WeCom userid, or NotFound."""
    staff = find_staff(session, userid)
    if staff is None:
        raise NotFound(f"staff {userid!r} not found")
    return staff


def ensure_staff(session: Session, userid: str) -> Staff:
    """The staff member with this userid, created bare when WeCom names someone Siyu has not synced yet.

    One that exists is looked up once per transaction (a batch of callbacks names the same few staff); one
    created here is not kept, since the savepoint it was made in may still be rolled back.
    """
    staff = per_transaction(session, ("staff", userid), lambda: find_staff(session, userid))
    if staff is None:
        forget(session, ("staff", userid))  # not found is not kept either: it is about to change
        try:
            with session.begin_nested():
                # WeCom named them, so they are WeCom's; `siyu sync wecom` fills in name and store.
                staff = Staff(userid=userid, name=userid, source=StaffSource.wecom.value)
                session.add(staff)
        except IntegrityError:  # a concurrent handler created them first
            staff = find_staff(session, userid)
    return staff


def list_staff(session: Session, store_id: int | None = None) -> list[Staff]:
    """Staff, optionally of one store, by userid."""
    q = select(Staff).order_by(Staff.userid)
    if store_id is not None:
        q = q.where(Staff.store_id == store_id)
    return list(session.scalars(q))


# -- relations ----------------------------------------------------------------------------------------
def lock_contact(session: Session, external_userid: str) -> None:
    """Serialise writers of one WeCom customer's relations (callback handlers, transfer settlement) until commit."""
    # Without it an edit that read the contact before a concurrent add marked its tags would undo them, and
    # a transfer settled by the poll would race the add callback for the takeover's relation row.
    advisory_lock(session, contact_lock_key(external_userid))


def contact_lock_key(external_userid: str) -> str:
    """The advisory lock key of one WeCom customer (the intake takes it before applying their events)."""
    return f"wecom-contact:{external_userid}"


# Built once, its values bound per call (every contact event looks it up).
_RELATION_OF = select(Relation).where(Relation.staff_id == bindparam("staff_id"),
                                      Relation.member_id == bindparam("member_id"))
_INSERT_RELATION = insert(Relation.__table__).returning(Relation.__table__.c.id)


def add_relation(
    session: Session,
    *,
    staff: Staff,
    member_id: int,
    state: str | None = None,
    channel_code_id: int | None = None,
    remark: str | None = None,
    added_at: datetime | None = None,
    dedupe_key: str | None = None,
    new_member: bool = False,
) -> tuple[Relation, bool]:
    """Tie a customer to a staff member (or re-activate the tie); True when it became active now.

    `new_member`: the member was created in this transaction, so no tie can exist yet (not looked up)."""
    rel = None if new_member else session.scalar(_RELATION_OF, {"staff_id": staff.id, "member_id": member_id})
    became_active = rel is None or rel.status != RelationStatus.active.value
    if rel is None:
        rel = _new_relation(session, staff, member_id, state=state, channel_code_id=channel_code_id, remark=remark,
                            added_at=added_at or utcnow())
    else:
        rel.status, rel.ended_at = RelationStatus.active.value, None
        rel.state = state or rel.state
        rel.channel_code_id = channel_code_id or rel.channel_code_id
        rel.remark = remark or rel.remark
        session.flush()
    if became_active:
        record_event(session, member_id, "contact.added",
                     {"staff": staff.userid, "state": state, "channel_code": channel_code_id},
                     at=added_at, dedupe_key=dedupe_key)
    return rel, became_active


def _new_relation(session: Session, staff: Staff, member_id: int, **values) -> Relation:
    """An active tie, inserted by one Core statement and adopted by the session."""
    row = dict(staff_id=staff.id, member_id=member_id, status=RelationStatus.active.value, ended_at=None, **values)
    rel = Relation(id=session.scalar(_INSERT_RELATION, row), **row)
    adopt(session, rel)
    set_committed_value(rel, "staff", staff)  # loaded, not changed
    return rel


END_EVENTS = {
    RelationStatus.removed_by_staff: "contact.removed_by_staff",
    RelationStatus.lost: "contact.lost",
    RelationStatus.transferred: "contact.transferred",
}


def end_relation(
    session: Session, *, staff: Staff, member_id: int, status: RelationStatus,
    at: datetime | None = None, dedupe_key: str | None = None, data: dict | None = None,
) -> Relation | None:
    """End an active tie with `status`, writing the matching timeline event (with `data`); None when there was none."""
    rel = session.scalar(_RELATION_OF, {"staff_id": staff.id, "member_id": member_id})
    if rel is None or rel.status != RelationStatus.active.value:
        return None
    rel.status, rel.ended_at = status.value, at or utcnow()
    record_event(session, member_id, END_EVENTS[status], {"staff": staff.userid, **(data or {})}, at=at,
                 dedupe_key=dedupe_key)
    return rel


# -- members ------------------------------------------------------------------------------------------
def get_member(session: Session, member_id: int) -> Member:
    """The member with this id (merged ones included: they carry `merged_into_id`), or NotFound."""
    member = session.get(Member, member_id)
    if member is None:
        raise NotFound(f"member {member_id} not found")
    return member


def find_members(
    session: Session,
    *,
    identities: list[IdentityIn] = (),
    openid: str | None = None,
    store_id: int | None = None,
    tag: str | None = None,
    name: str | None = None,
    visible: Select | None = None,
    after_id: int | None = None,
    limit: int = 50,
) -> list[Member]:
    """Live members matching every filter, by id, from `after_id` on (a keyset page)."""
    q = select(Member).where(Member.merged_into_id.is_(None))
    for ident in identities:
        ident = ident.normalized()
        q = q.where(exists().where(Identity.member_id == Member.id, Identity.type == ident.type,
                                   Identity.value == ident.value,
                                   *([Identity.scope == ident.scope] if ident.scope else [])))
    if openid is not None:  # an official-account or a mini-program openid
        q = q.where(exists().where(Identity.member_id == Member.id, Identity.type.in_(("oa_openid", "mp_openid")),
                                   Identity.value == openid))
    if store_id is not None:
        q = q.where(Member.store_id == store_id)
    if tag is not None:
        q = q.where(exists().where(MemberTag.member_id == Member.id, MemberTag.tag_id == Tag.id, Tag.name == tag))
    if name:  # a part of the name, any case
        q = q.where(Member.name.icontains(name, autoescape=True))
    if visible is not None:
        q = q.where(Member.id.in_(visible))
    if after_id is not None:
        q = q.where(Member.id > after_id)
    return list(session.scalars(q.order_by(Member.id).limit(limit)))
