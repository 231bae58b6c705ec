"""Members as the API shows them: phones masked, tags by name, relations by staff userid."""
from __future__ import annotations

from sqlalchemy.orm import Session

from membership.models import Member, Store
from membership.phones import mask_phone
from membership.schemas import IdentityOut, MemberOut, RelationOut
from membership.service import member_identities, member_relations
from membership.tags import member_tags
from membership.traits import get_traits


def member_out(session: Session, member: Member) -> MemberOut:
    """The API shape of one member."""
    store = session.get(Store, member.store_id) if member.store_id else None
    return MemberOut(
        id=member.id,
        name=member.name,
        store=store.code if store else None,
        tags=[t.name for t in member_tags(session, member.id)],
        traits=get_traits(session, member.id),
        identities=[
            IdentityOut(type=i.type, scope=i.scope, value=mask_phone(i.value) if i.type == "phone" else i.value)
            for i in member_identities(session, member.id)
        ],
        relations=[
            RelationOut(staff=r.staff.userid, state=r.state, added_at=r.added_at, status=r.status)
            for r in member_relations(session, member.id)
        ],
        merged_into=member.merged_into_id,
    )
