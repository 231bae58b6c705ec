"""Members as the API shows them: phones masked, tags by name, relations by staff userid."""
from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.orm import Session

from membership.models import Identity, Member, MemberTag, Relation, Store, Tag, Trait
from membership.phones import mask_phone
from membership.schemas import IdentityOut, MemberOut, RelationOut
from membership.traits import display_value


def members_out(session: Session, members: list[Member]) -> list[MemberOut]:
    """The API shape of a page of members, loaded in one query per kind of row, not per member."""
    ids = [m.id for m in members]
    if not ids:
        return []
    stores = {s.id: s.code for s in session.scalars(
        select(Store).where(Store.id.in_({m.store_id for m in members if m.store_id})))}
    tags, traits, identities, relations = (defaultdict(list), defaultdict(dict), defaultdict(list), defaultdict(list))
    for member_id, name in session.execute(
        select(MemberTag.member_id, Tag.name).join(Tag, Tag.id == MemberTag.tag_id)
        .where(MemberTag.member_id.in_(ids)).order_by(Tag.group_name, Tag.name)
    ):
        tags[member_id].append(name)
    for t in session.scalars(select(Trait).where(Trait.member_id.in_(ids)).order_by(Trait.key)):
        traits[t.member_id][t.key] = display_value(t)
    for i in session.scalars(select(Identity).where(Identity.member_id.in_(ids)).order_by(Identity.type, Identity.id)):
        value = mask_phone(i.value) if i.type == "phone" else i.value
        identities[i.member_id].append(IdentityOut(type=i.type, scope=i.scope, value=value))
    for r in session.scalars(select(Relation).where(Relation.member_id.in_(ids)).order_by(Relation.added_at)):
        relations[r.member_id].append(RelationOut(staff=r.staff.userid, state=r.state, added_at=r.added_at,
                                                  status=r.status))
    return [
        MemberOut(id=m.id, name=m.name, store=stores.get(m.store_id), tags=tags[m.id], traits=traits[m.id],
                  identities=identities[m.id], relations=relations[m.id], merged_into=m.merged_into_id)
        for m in members
    ]


def member_out(session: Session, member: Member) -> MemberOut:
    """The API shape of one member."""
    return members_out(session, [member])[0]
