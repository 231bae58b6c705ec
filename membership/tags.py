"""The tag catalogue and tags on members."""
from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from membership import hooks
from membership.exceptions import Conflict, Forbidden, InvalidInput, NotFound
from membership.models import Member, MemberTag, Tag
from membership.timeline import record_event


def get_tag(session: Session, name: str, group: str = "") -> Tag | None:
    """The tag `name` in `group`, if the catalogue has it."""
    return session.scalar(select(Tag).where(Tag.name == name, Tag.group_name == group))


def ensure_tag(session: Session, name: str, group: str = "", wecom_tag_id: str | None = None) -> Tag:
    """The tag `name` in `group`, created when missing (safe against a concurrent creator)."""
    name = name.strip()
    if not name or len(name) > 60:
        raise InvalidInput("tag: a name of 1 to 60 characters is required")
    tag = get_tag(session, name, group)
    if tag is None:
        try:
            with session.begin_nested():
                tag = Tag(name=name, group_name=group, wecom_tag_id=wecom_tag_id)
                session.add(tag)
        except IntegrityError:
            tag = get_tag(session, name, group)
            if tag is None:
                raise
    if wecom_tag_id and tag.wecom_tag_id != wecom_tag_id:
        tag.wecom_tag_id = wecom_tag_id
    return tag


def usable_tag(session: Session, name: str, group: str = "", *, may_create: bool) -> Tag:
    """The tag to apply: created when missing if `may_create` (admins, marketers), else Forbidden when missing."""
    if may_create:
        return ensure_tag(session, name, group)
    tag = get_tag(session, name.strip(), group)
    if tag is None:
        raise Forbidden(f"tag {name!r} is not in the catalogue; admins and marketers create tags")
    return tag


def member_tags(session: Session, member_id: int) -> list[Tag]:
    """The tags on a member, by name."""
    q = select(Tag).join(MemberTag, MemberTag.tag_id == Tag.id).where(MemberTag.member_id == member_id)
    return list(session.scalars(q.order_by(Tag.group_name, Tag.name)))


def tag_member(session: Session, member_id: int, tag: Tag, source: str = "manual") -> bool:
    """Put `tag` on a member (idempotent); True when it was not there before."""
    if session.get(MemberTag, (member_id, tag.id)) is not None:
        return False
    try:
        with session.begin_nested():
            session.add(MemberTag(member_id=member_id, tag_id=tag.id, source=source))
    except IntegrityError:
        return False
    record_event(session, member_id, "tag.added", {"tag": tag.name, "group": tag.group_name, "source": source})
    for listener in hooks.TAG_LISTENERS:
        listener(session, member_id, tag, True, source)
    return True


def untag_member(session: Session, member_id: int, tag: Tag, source: str = "manual") -> bool:
    """Take `tag` off a member; True when it was there."""
    result = session.execute(delete(MemberTag).where(MemberTag.member_id == member_id, MemberTag.tag_id == tag.id))
    if not result.rowcount:
        return False
    record_event(session, member_id, "tag.removed", {"tag": tag.name, "group": tag.group_name, "source": source})
    for listener in hooks.TAG_LISTENERS:
        listener(session, member_id, tag, False, source)
    return True


def add_member_tag(session: Session, *, member: Member, name: str, group: str = "", may_create: bool,
                   source: str, visible_to_member: bool | None = None) -> None:
    """Tag a live member by tag name (the API's and the console's one path); Conflict for a merged member.

    `visible_to_member` shows or hides the tag on consumers' member cards; like creating tags, that is for
    those who may create them (admins and marketers).
    """
    if member.merged_into_id:
        raise Conflict(f"member {member.id} was merged into {member.merged_into_id}")
    tag = usable_tag(session, name, group, may_create=may_create)
    if visible_to_member is not None and visible_to_member != tag.visible_to_member:
        if not may_create:
            raise Forbidden("admins and marketers decide which tags consumers see")
        tag.visible_to_member = visible_to_member
    tag_member(session, member.id, tag, source=source)


def remove_member_tag(session: Session, *, member_id: int, name: str, group: str = "", source: str) -> None:
    """Take a tag off a member by name; NotFound when the member does not carry it."""
    tag = get_tag(session, name, group)
    if tag is None or not untag_member(session, member_id, tag, source=source):
        raise NotFound(f"member {member_id} has no tag {name!r}")
