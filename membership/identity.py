"""Identity resolution and binding: one person, one member, however many WeChat identities.

An identity is `(type, scope, value)`. The identities given to one `bind` call are known to belong to one
person (they came from one API answer), so every member that already holds one of them is that person:
such members are merged. An unverified phone proves nothing and links nobody.
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field

from sqlalchemy import and_, bindparam, delete, insert, or_, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, make_transient_to_detached

from config.database import adopt, insert_of, prepared
from config.types import UTCDateTime, utcnow
from membership.exceptions import InvalidInput
from membership.merge import merge_members
from membership.models import Identity, IdentityType, Member
from membership.phones import mask_phone, normalize_phone
from membership.timeline import record_event

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8  # concurrent binders of the same new identity settle within a few rounds


@dataclass(frozen=True)
class IdentityIn:
    """An identity to resolve or bind."""

    type: str
    value: str
    scope: str = ""
    verified: bool = False

    def normalized(self) -> IdentityIn:
        """The identity with its type checked and a phone in E.164."""
        try:
            IdentityType(self.type)
        except ValueError:
            raise InvalidInput(f"identity: unknown type {self.type!r}") from None
        value = (self.value or "").strip()
        if not value:
            raise InvalidInput(f"identity: empty {self.type} value")
        if self.type == IdentityType.phone.value:
            value = normalize_phone(value)
        scope = "" if self.type in (IdentityType.unionid.value, IdentityType.phone.value) else self.scope
        return IdentityIn(self.type, value, scope, self.verified)

    @property
    def links(self) -> bool:
        """Whether holding this identity proves two records are one person."""
        return self.type != IdentityType.phone.value or self.verified


@dataclass
class BindResult:
    member: Member
    created: bool = False
    merged: list[int] = field(default_factory=list)
    new_identities: list[IdentityIn] = field(default_factory=list)


def live_member(session: Session, member_id: int) -> Member | None:
    """The member, following `merged_into` to the survivor."""
    member = session.get(Member, member_id)
    seen = set()
    while member is not None and member.merged_into_id is not None and member.id not in seen:
        seen.add(member.id)
        member = session.get(Member, member.merged_into_id)
    return member


def resolve(session: Session, identity: IdentityIn) -> Member | None:
    """The live member holding `identity`, or None."""
    ident = identity.normalized()
    member_id = session.scalar(
        select(Identity.member_id).where(
            Identity.type == ident.type, Identity.scope == ident.scope, Identity.value == ident.value
        )
    )
    return live_member(session, member_id) if member_id is not None else None


def bind(
    session: Session,
    identities: list[IdentityIn],
    *,
    name: str | None = None,
    store_id: int | None = None,
) -> BindResult:
    """Find or create the one member these identities belong to, merging members they prove to be one."""
    wanted = list({i.normalized(): None for i in identities})
    if not wanted:
        raise InvalidInput("identity: bind needs at least one identity")
    if session.get_bind().dialect.name == "postgresql":
        existing = _look_or_create(session, wanted, name, store_id)
        if isinstance(existing, BindResult):
            return existing
    else:
        existing = _existing(session, wanted)
        if not existing:
            created = _bind_new(session, wanted, name, store_id)
            if created is not None:
                return created
            existing = None  # a concurrent binder was first: look again
    for attempt in range(MAX_ATTEMPTS):
        try:
            with session.begin_nested():
                return _bind_once(session, wanted, name, store_id, existing)
        except IntegrityError:
            # Another transaction bound one of these identities since we looked: look again.
            existing = None
            log.info("identity bind: raced on attempt %d, retrying", attempt + 1)
    raise RuntimeError("identity bind: could not settle after concurrent binders")


def _existing(session: Session, wanted: list[IdentityIn]) -> dict[tuple[str, str, str], Identity]:
    keys = [(i.type, i.scope, i.value) for i in wanted]
    params = {f"{part}{i}": value for i, key in enumerate(keys) for part, value in zip("tsv", key, strict=True)}
    return {(row.type, row.scope, row.value): row for row in session.scalars(_identities_named(len(keys)), params)}


def _bind_new(session: Session, wanted: list[IdentityIn], name: str | None, store_id: int | None) -> BindResult | None:
    """The common case, none of the identities known, without a savepoint (two round trips): a new member holding
    them all. None when a concurrent binder stored one of them meanwhile; what this wrote is then taken back, and
    `bind` looks again in a savepoint."""
    member = Member(name=name, store_id=store_id)
    session.add(member)
    session.flush()
    # in one order in every binder, so two binding overlapping identities wait for each other, never deadlock
    rows = [{"member_id": member.id, "type": i.type, "scope": i.scope, "value": i.value, "verified": i.verified}
            for i in sorted(wanted, key=lambda i: (i.type, i.scope, i.value))]
    ids = list(session.scalars(_new_identities_once(session), rows))
    if len(ids) < len(rows):
        _take_back(session, ids, member.id)
        session.expunge(member)
        return None
    result = BindResult(member, created=True, new_identities=list(wanted))
    _record_bound_phones(session, result)
    return result


# PostgreSQL: the look-up and, when none of the identities is known, the new member holding them all, in one round
# trip. The identities go in one order in every binder (so two binding overlapping ones wait, never deadlock), each
# ON CONFLICT DO NOTHING: one a concurrent binder stored since the look-up (waited for until it commits) is left out.
_LOOK_OR_CREATE = text("""
WITH wanted AS (SELECT * FROM unnest(CAST(:types AS varchar[]), CAST(:scopes AS varchar[]), CAST(:vals AS varchar[]),
                                     CAST(:verified AS boolean[])) AS w(type, scope, value, verified)),
known AS (SELECT i.id, i.member_id, i.type, i.scope, i.value, i.verified, i.created_at
          FROM identities i JOIN wanted w ON i.type = w.type AND i.scope = w.scope AND i.value = w.value),
member AS (INSERT INTO members (name, store_id, created_at, updated_at)
           SELECT CAST(:name AS varchar), CAST(:store_id AS integer), :now, :now WHERE NOT EXISTS (SELECT FROM known)
           RETURNING id),
held AS (INSERT INTO identities (member_id, type, scope, value, verified, created_at)
         SELECT member.id, w.type, w.scope, w.value, w.verified, :now FROM member, wanted w
         ORDER BY w.type, w.scope, w.value
         ON CONFLICT DO NOTHING RETURNING id)
SELECT id, member_id, type, scope, value, verified, created_at, NULL AS new_member_id, NULL AS new_ids FROM known
UNION ALL
SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, member.id, ARRAY(SELECT id FROM held) FROM member
""").columns(created_at=UTCDateTime())


def _look_or_create(session: Session, wanted: list[IdentityIn], name: str | None,
                    store_id: int | None) -> BindResult | dict | None:
    """`_existing` and, when it is empty, `_bind_new`, by one statement: the new member's BindResult, else the known
    identities (None when a concurrent binder stored one of them meanwhile: what this wrote is taken back)."""
    session.flush()  # a text statement is not autoflushed: identities the session holds unsent must be seen
    now = utcnow()
    rows = session.execute(_LOOK_OR_CREATE, {
        "types": [i.type for i in wanted], "scopes": [i.scope for i in wanted], "vals": [i.value for i in wanted],
        "verified": [i.verified for i in wanted], "name": name, "store_id": store_id, "now": now}).all()
    created = next((r for r in rows if r.new_member_id is not None), None)
    if created is None:
        return {(r.type, r.scope, r.value): _adopted(session, Identity(
            id=r.id, member_id=r.member_id, type=r.type, scope=r.scope, value=r.value, verified=r.verified,
            created_at=r.created_at)) for r in rows}
    if len(created.new_ids) < len(wanted):
        _take_back(session, created.new_ids, created.new_member_id)
        return None
    member = Member(id=created.new_member_id, name=name, store_id=store_id, merged_into_id=None, created_at=now,
                    updated_at=now)
    adopt(session, member)
    result = BindResult(member, created=True, new_identities=list(wanted))
    _record_bound_phones(session, result)
    return result


def _take_back(session: Session, identity_ids: list[int], member_id: int) -> None:
    """Delete the new member and the identities a bind wrote for it, a concurrent binder having stored another."""
    log.info("identity bind: a concurrent binder stored one of these identities, looking again")
    session.execute(delete(Identity).where(Identity.id.in_(identity_ids)))
    session.execute(delete(Member).where(Member.id == member_id))


def _adopted(session: Session, obj):
    """A row just read by a statement of our own, as the session's object (the one it has, if it has one)."""
    make_transient_to_detached(obj)
    return session.merge(obj, load=False)


@prepared
def _new_identities_once(dialect: str):
    # ON CONFLICT DO NOTHING: a concurrent binder's identity (waited for until it commits) is left out, not an error
    return insert_of(dialect)(Identity.__table__).on_conflict_do_nothing().returning(Identity.id)


def _record_bound_phones(session: Session, result: BindResult) -> None:
    for ident in result.new_identities:
        if ident.type == "phone" and ident.verified:
            record_event(session, result.member.id, "member.phone_bound", {"phone_masked": mask_phone(ident.value)})


def _bind_once(session: Session, wanted: list[IdentityIn], name: str | None, store_id: int | None,
               existing: dict | None = None) -> BindResult:
    keys = [(i.type, i.scope, i.value) for i in wanted]
    existing = _existing(session, wanted) if existing is None else existing
    linked_ids = sorted({
        existing[key].member_id
        for key, ident in zip(keys, wanted, strict=True)
        if key in existing and ident.links and (ident.type != "phone" or existing[key].verified)
    })
    members = _lock_live(session, linked_ids)
    result: BindResult
    if not members:
        member = Member(name=name, store_id=store_id)
        session.add(member)
        session.flush()
        result = BindResult(member, created=True)
    else:
        members.sort(key=lambda m: (m.created_at, m.id))
        survivor = members[0]
        result = BindResult(survivor)
        for other in members[1:]:
            if merge_members(session, survivor, other, reason="shared identity"):
                result.merged.append(other.id)
        if name and not survivor.name:
            survivor.name = name
        if store_id and not survivor.store_id:
            survivor.store_id = store_id
    new_rows = []
    for key, ident in zip(keys, wanted, strict=True):
        row = existing.get(key)
        if row is None:
            new_rows.append({"member_id": result.member.id, "type": ident.type, "scope": ident.scope,
                             "value": ident.value, "verified": ident.verified})
            result.new_identities.append(ident)
        elif row.type == "phone" and ident.verified and not row.verified:
            # A verified proof of ownership beats an unverified claim made elsewhere.
            row.member_id, row.verified = result.member.id, True
            result.new_identities.append(ident)
    if new_rows:  # by one Core statement: the ORM's unit of work costs more than the insert (0.3 ms a member)
        session.execute(_NEW_IDENTITIES, new_rows)
    session.flush()
    _record_bound_phones(session, result)
    return result


_NEW_IDENTITIES = insert(Identity.__table__)


@functools.lru_cache(maxsize=16)
def _identities_named(n: int):
    # OR of equalities, not a row-value IN: SQLite only uses the unique index for the former. Built once per
    # count (its values bound per call): building it costs twice its execution.
    return select(Identity).where(or_(*(
        and_(Identity.type == bindparam(f"t{i}"), Identity.scope == bindparam(f"s{i}"),
             Identity.value == bindparam(f"v{i}")) for i in range(n))))


def _lock_live(session: Session, member_ids: list[int]) -> list[Member]:
    # Lock in id order so two binders merging the same members cannot deadlock.
    if not member_ids:
        return []
    rows = session.scalars(
        select(Member).where(Member.id.in_(member_ids)).order_by(Member.id).with_for_update()
    ).all()
    live = {}
    for m in rows:
        target = live_member(session, m.id)
        if target is not None:
            live[target.id] = target
    return list(live.values())

