"""会员: search by phone, name, tag and store; a member's profile with tags, traits and the timeline."""
from __future__ import annotations

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from config.database import request_session
from config.errors import InvalidInput, NotFound
from config.inputs import DbId
from config.pagination import decode_cursor, page_of
from console.paging import decode_time_cursor, time_cursor
from console.web import attempt, console_router, is_htmx, poster, render, viewer
from membership import service as members
from membership.access import Principal, visible_member, visible_members
from membership.identity import IdentityIn
from membership.models import Role
from membership.tags import add_member_tag, remove_member_tag
from membership.timeline import timeline
from membership.views import member_out, members_out

router = console_router()
anyone_post = poster()
PAGE = 20
TIMELINE_PAGE = 20


@router.get("/members")
def member_search(request: Request, phone: str = "", name: str = "", tag: str = "", store: str = "",
                  cursor: str | None = None, session: Session = request_session, who: Principal = Depends(viewer)):
    """Members the caller may see that match every filter given, a page at a time (the rows alone for htmx)."""
    query = {"phone": phone.strip(), "name": name.strip(), "tag": tag.strip(), "store": store.strip()}
    errors: dict[str, str] = {}
    rows, next_cursor = [], None
    try:
        idents = [IdentityIn("phone", query["phone"])] if query["phone"] else []
        store_id = members.get_store_by_code(session, query["store"]).id if query["store"] else None
        found = members.find_members(session, identities=idents, store_id=store_id, tag=query["tag"] or None,
                                     name=query["name"] or None, visible=visible_members(who),
                                     after_id=decode_cursor(cursor), limit=PAGE + 1)
        page, next_cursor = page_of(found, PAGE, lambda m: m.id)
        rows = members_out(session, page)
    except InvalidInput as exc:
        errors["phone" if exc.detail.startswith("phone") else "_form"] = exc.detail
    except NotFound as exc:  # an unknown store code is a message by its field
        errors["store"] = exc.detail
    stores = members.list_stores(session, None if who.allows(Role.marketer) else (who.store_id or -1))
    template = "members_rows.html" if is_htmx(request) and cursor else "members.html"
    return render(request, template, rows=rows, next_cursor=next_cursor, query=query, errors=errors, stores=stores)


def _timeline_page(session: Session, member_id: DbId, cursor: str | None) -> tuple[list, str | None]:
    before, before_id = decode_time_cursor(cursor)
    events = timeline(session, member_id, limit=TIMELINE_PAGE + 1, before=before, before_id=before_id)
    page = events[:TIMELINE_PAGE]
    return page, time_cursor(page[-1].at, page[-1].id) if len(events) > TIMELINE_PAGE else None


@router.get("/members/{member_id}")
def member_profile(request: Request, member_id: DbId, session: Session = request_session,
                   who: Principal = Depends(viewer)):
    """A member's profile: identities, relations with staff, tags, traits and the newest timeline events."""
    member = visible_member(session, who, member_id)
    events, next_cursor = _timeline_page(session, member.id, None)
    return render(request, "member.html", m=member_out(session, member), events=events, next_cursor=next_cursor,
                  tag_errors={}, may_create_tags=who.allows(Role.marketer))


@router.get("/members/{member_id}/timeline")
def member_timeline(request: Request, member_id: DbId, cursor: str | None = None, session: Session = request_session,
                    who: Principal = Depends(viewer)):
    """The next page of a member's timeline (rows for htmx)."""
    member = visible_member(session, who, member_id)
    events, next_cursor = _timeline_page(session, member.id, cursor)
    return render(request, "member_timeline_rows.html", m=member, events=events, next_cursor=next_cursor)


def _tags_fragment(request: Request, session: Session, who: Principal, member, errors: dict, status: int = 200):
    return render(request, "member_tags.html", status_code=status, m=member_out(session, member), tag_errors=errors,
                  may_create_tags=who.allows(Role.marketer))


@router.post("/members/{member_id}/tags")
def member_tag_add(request: Request, member_id: DbId, session: Session = request_session,
                   who: Principal = Depends(anyone_post)):
    """Tag a member through the API's own path (a new tag is for admins and marketers to create)."""
    member = visible_member(session, who, member_id)
    form = request.state.form
    errors = attempt(session, ("name",), lambda: add_member_tag(
        session, member=member, name=form.get("name", ""), group=form.get("group", ""),
        may_create=who.allows(Role.marketer), source=f"console:{who.name}"))
    if errors.get("_form", "").startswith("tag:"):
        errors = {"name": errors.pop("_form")}
    return _tags_fragment(request, session, who, member, errors, 422 if errors else 200)


@router.post("/members/{member_id}/tags/remove")
def member_tag_remove(request: Request, member_id: DbId, session: Session = request_session,
                      who: Principal = Depends(anyone_post)):
    """Take a tag off a member."""
    member = visible_member(session, who, member_id)
    form = request.state.form
    errors = attempt(session, ("name",), lambda: remove_member_tag(
        session, member_id=member.id, name=form.get("name", ""), group=form.get("group", ""),
        source=f"console:{who.name}"))
    return _tags_fragment(request, session, who, member, errors, 422 if errors else 200)
