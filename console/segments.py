"""人群: the list with sizes, a builder for the segment language with a live count, save, rename, delete, refresh."""
from __future__ import annotations

import json
from datetime import datetime

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from config.database import request_session
from config.errors import InvalidInput
from config.inputs import DbId
from config.types import utcnow
from console.web import PREFIX, attempt, console_router, is_htmx, poster, render, viewer_of
from membership import service as members
from membership.access import Principal
from membership.models import Role
from membership.vocabulary import EVENT_TYPES
from segments import service
from segments.exceptions import InvalidDefinition
from segments.language import TRAIT_OPS

router = console_router()
marketer_post = poster(Role.marketer)
marketer = viewer_of(Role.marketer)
FIELDS = ("name", "definition")
STARTER = {"all": [{"tag": "VIP"}]}


def _definition(raw: str | None) -> object:
    try:
        return json.loads(raw or "")
    except ValueError:
        raise InvalidDefinition("$", "not JSON: the builder sends a definition as JSON") from None


def _builder_options(session: Session, exclude: int | None = None) -> dict:
    """What the builder offers in its menus: event types, trait ops, stores, other segments."""
    return {"events": sorted(EVENT_TYPES), "trait_ops": list(TRAIT_OPS),
            "stores": [s.code for s in members.list_stores(session)],
            "segments": [{"id": s.id, "name": s.name} for s in service.list_segments(session) if s.id != exclude]}


@router.get("/segments")
def segment_list(request: Request, session: Session = request_session, who: Principal = Depends(marketer)):
    """Every segment with its size and last refresh."""
    rows = service.list_segments(session)
    sizes = service.sizes(session, [s.id for s in rows])
    return render(request, "segments.html", rows=rows, sizes=sizes)


@router.get("/segments/new")
def segment_new(request: Request, session: Session = request_session, who: Principal = Depends(marketer)):
    """The builder for a new segment."""
    return render(request, "segment.html", segment=None, definition=STARTER, size=None, errors={},
                  options=_builder_options(session))


@router.get("/segments/{segment_id}")
def segment_page(request: Request, segment_id: DbId, session: Session = request_session,
                 who: Principal = Depends(marketer)):
    """A segment in the builder: rename, redefine, refresh or delete it."""
    segment = service.get_segment(session, segment_id)
    return render(request, "segment.html", segment=segment, definition=segment.definition, errors={},
                  size=service.sizes(session, [segment.id])[segment.id], options=_builder_options(session, segment.id))


@router.post("/segments/preview")
def segment_preview(request: Request, session: Session = request_session,
                    who: Principal = Depends(marketer_post)):
    """The live count and a sample of the definition being edited (or the node it is wrong at)."""
    try:
        count, sample = service.preview(session, _definition(request.state.form.get("definition")))
    except InvalidDefinition as exc:
        return render(request, "segment_preview.html", status_code=422, error=exc.detail, path=exc.path)
    except InvalidInput as exc:
        return render(request, "segment_preview.html", status_code=422, error=exc.detail, path="$")
    return render(request, "segment_preview.html", count=count, sample=sample, error=None)


def _saved(request: Request, segment_id: int) -> Response:
    url = f"{PREFIX}/segments/{segment_id}?saved=1"
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def _form_errors(request: Request, session: Session, errors: dict, segment=None) -> Response:
    form = request.state.form
    return render(request, "segment_form_errors.html", status_code=422, errors=errors, segment=segment,
                  name=form.get("name", ""))


@router.post("/segments")
def segment_create(request: Request, session: Session = request_session,
                   who: Principal = Depends(marketer_post)):
    """Save a new segment (its members are computed in the background); nothing is saved when anything is wrong."""
    form, made = request.state.form, []
    name = form.get("name", "").strip()

    def create():
        if not name:
            raise InvalidInput("name: a segment needs a name")
        made.append(service.create_segment(session, name=name[:120], definition=_definition(form.get("definition"))))

    errors = attempt(session, FIELDS, create)
    if errors.get("_form", "").startswith("$"):
        errors["definition"] = errors.pop("_form")
    return _form_errors(request, session, errors) if errors else _saved(request, made[0].id)


@router.post("/segments/{segment_id}")
def segment_update(request: Request, segment_id: DbId, session: Session = request_session,
                   who: Principal = Depends(marketer_post)):
    """Rename and redefine a segment in one step (both or neither are saved)."""
    form = request.state.form
    segment = service.get_segment(session, segment_id)
    name = form.get("name", "").strip()

    def update():
        if not name:
            raise InvalidInput("name: a segment keeps a name")
        service.update_segment(session, segment_id=segment.id, name=name[:120],
                               definition=_definition(form.get("definition")))

    errors = attempt(session, FIELDS, update)
    if errors.get("_form", "").startswith("$"):
        errors["definition"] = errors.pop("_form")
    return _form_errors(request, session, errors, segment) if errors else _saved(request, segment.id)


@router.post("/segments/{segment_id}/delete")
def segment_delete(request: Request, segment_id: DbId, session: Session = request_session,
                   who: Principal = Depends(marketer_post)):
    """Delete a segment; while something uses it the API's 409 message is shown instead."""
    errors = attempt(session, (), lambda: service.delete_segment(session, segment_id=segment_id))
    if errors:
        return render(request, "_error_fragment.html", status_code=409, status=409, message=errors["_form"])
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": f"{PREFIX}/segments"})
    return RedirectResponse(f"{PREFIX}/segments", status_code=303)


@router.post("/segments/{segment_id}/refresh")
def segment_refresh(request: Request, segment_id: DbId, session: Session = request_session,
                    who: Principal = Depends(marketer_post)):
    """Queue a full refresh; the answer polls its progress until the refresh has finished."""
    segment = service.request_refresh(session, segment_id)
    return render(request, "segment_status.html", segment=segment, since=utcnow().isoformat(), done=False, size=None)


@router.get("/segments/{segment_id}/status")
def segment_status(request: Request, segment_id: DbId, since: str, session: Session = request_session,
                   who: Principal = Depends(marketer)):
    """Whether the refresh asked for at `since` has finished, with the size it found."""
    try:
        asked = datetime.fromisoformat(since)
    except ValueError:
        raise InvalidInput("since: an ISO 8601 time") from None
    segment = service.get_segment(session, segment_id)
    done = segment.refreshed_at is not None and asked.tzinfo is not None and segment.refreshed_at >= asked
    failed = bool(segment.refresh_error)
    size = service.sizes(session, [segment.id])[segment.id] if done or failed else None
    return render(request, "segment_status.html", segment=segment, since=since, done=done or failed, size=size)
