"""活动: the list, a form that creates a campaign, launch / pause / resume / cancel, results as a funnel and tables,
and CSV exports of the results and of the ledger. Admins and marketers only, as the campaigns API."""
from __future__ import annotations

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from campaigns import service
from campaigns.models import Campaign, CampaignRun, CampaignStatus, CampaignStep, RunStatus, StepStatus
from campaigns.stats import campaign_stats
from config.database import request_session
from config.errors import InvalidInput
from config.inputs import DbId
from config.pagination import decode_cursor, page_of
from console import campaign_form, campaign_results, csv_export
from console.web import PREFIX, console_router, is_htmx, poster, render, viewer_of
from membership.access import Principal
from membership.models import Member, Role, Staff, Store
from membership.vocabulary import EVENT_TYPES
from segments.models import Segment

router = console_router()
marketer = viewer_of(Role.marketer)
marketer_post = poster(Role.marketer)
PAGE = 20
STATUS_LABELS = {"draft": "草稿", "scheduled": "已排期", "running": "进行中", "completed": "已完成", "paused": "已暂停",
                 "cancelled": "已取消"}
MOVES = {"launch": ("启动", ("draft",)), "pause": ("暂停", ("running", "scheduled")),
         "resume": ("恢复", ("paused",)), "cancel": ("取消", ("draft", "scheduled", "running", "paused"))}
IN_FLIGHT = (StepStatus.planned.value, StepStatus.claimed.value, StepStatus.unknown.value)


@router.get("/campaigns")
def campaign_list(request: Request, status: str = "", cursor: str | None = None, session: Session = request_session,
                  who: Principal = Depends(marketer)):
    """Every campaign, newest first, a page at a time (the rows alone for htmx)."""
    if status and status not in STATUS_LABELS:
        raise InvalidInput(f"status: one of {', '.join(STATUS_LABELS)}")
    q = select(Campaign.id, Campaign.name, Campaign.status, Campaign.schedule_kind, Campaign.action_type,
               Campaign.created_at, Segment.name.label("segment")).outerjoin(Segment, Segment.id == Campaign.segment_id)
    if status:
        q = q.where(Campaign.status == status)
    after = decode_cursor(cursor)
    if after is not None:
        q = q.where(Campaign.id < after)
    rows, next_cursor = page_of(session.execute(q.order_by(Campaign.id.desc()).limit(PAGE + 1)).all(), PAGE,
                                lambda r: r.id)
    template = "campaigns_rows.html" if is_htmx(request) and cursor else "campaigns.html"
    return render(request, template, rows=rows, next_cursor=next_cursor, status=status, labels=STATUS_LABELS,
                  schedules=campaign_form.SCHEDULE_KINDS)


def _form_page(request: Request, session: Session, form, errors: dict, status_code: int = 200):
    segments = session.execute(select(Segment.id, Segment.name).order_by(Segment.name, Segment.id)).all()
    template = "campaign_form.html" if is_htmx(request) and errors else "campaign_new.html"
    return render(request, template, status_code=status_code, form=form, errors=errors, segments=segments,
                  events=sorted(EVENT_TYPES), schedules=campaign_form.SCHEDULE_KINDS,
                  actions=campaign_form.ACTION_FORMS)


@router.get("/campaigns/new")
def campaign_new(request: Request, session: Session = request_session, who: Principal = Depends(marketer)):
    """The form of a new campaign."""
    return _form_page(request, session, {"schedule_kind": "manual", "action_type": "wecom_mass_message"}, {})


@router.post("/campaigns")
def campaign_create(request: Request, session: Session = request_session, who: Principal = Depends(marketer_post)):
    """Save the campaign as a draft, or show the API's messages by their fields and save nothing."""
    form = request.state.form
    spec, errors = campaign_form.validate(form)
    if spec is not None:
        try:
            with session.begin_nested():
                campaign = service.create_campaign(session, spec=spec)
        except InvalidInput as exc:  # the segment is gone: said by its field
            errors = {"segment_id": exc.detail}
    if errors:
        return _form_page(request, session, form, errors, 422)
    url = f"{PREFIX}/campaigns/{campaign.id}"
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def _live(session: Session, campaign: Campaign) -> dict:
    """Status, progress of the run under way, the moves open now and the results."""
    stats = campaign_stats(session, campaign)
    in_flight = session.scalar(select(func.count()).select_from(CampaignStep).where(
        CampaignStep.campaign_id == campaign.id, CampaignStep.status.in_(IN_FLIGHT)))
    unplanned = session.scalar(select(func.count()).select_from(CampaignRun).where(
        CampaignRun.campaign_id == campaign.id, CampaignRun.status == RunStatus.sending.value,
        CampaignRun.planned_at.is_(None)))
    polling = campaign.status == CampaignStatus.running.value and bool(in_flight or unplanned)
    return {"campaign": campaign, "stats": stats, "results": campaign_results.layout(stats),
            "progress": {"done": stats["targeted"] - in_flight, "total": stats["targeted"],
                         "planning": bool(unplanned)},
            "polling": polling, "moves": {m: label for m, (label, from_) in MOVES.items() if campaign.status in from_},
            "labels": STATUS_LABELS}


@router.get("/campaigns/{campaign_id}")
def campaign_page(request: Request, campaign_id: DbId, session: Session = request_session,
                  who: Principal = Depends(marketer)):
    """A campaign: its spec, the moves open to it, and its results per store and staff member."""
    campaign = service.get_campaign(session, campaign_id)
    segment = session.get(Segment, campaign.segment_id) if campaign.segment_id else None
    return render(request, "campaign.html", segment=segment, schedules=campaign_form.SCHEDULE_KINDS,
                  label=campaign_results.label, reason=campaign_results.reason_label, **_live(session, campaign))


@router.get("/campaigns/{campaign_id}/live")
def campaign_live(request: Request, campaign_id: DbId, session: Session = request_session,
                  who: Principal = Depends(marketer)):
    """The status, progress and results fragment (polled while a run is under way)."""
    campaign = service.get_campaign(session, campaign_id)
    return render(request, "campaign_live.html", label=campaign_results.label, reason=campaign_results.reason_label,
                  **_live(session, campaign))


@router.get("/campaigns/{campaign_id}/results/{table}")
def campaign_breakdown(request: Request, campaign_id: DbId, table: str, cursor: str | None = None,
                       session: Session = request_session, who: Principal = Depends(marketer)):
    """The next page of the per-store or per-staff table (rows for htmx)."""
    if table not in campaign_results.BREAKDOWNS:
        raise InvalidInput(f"table: one of {', '.join(campaign_results.BREAKDOWNS)}")
    campaign = service.get_campaign(session, campaign_id)
    results = campaign_results.layout(campaign_stats(session, campaign),
                                      after={table: campaign_results.decode_name_cursor(cursor)})
    shaped = next(t for t in results["tables"] if t["key"] == table)
    return render(request, "campaign_breakdown_rows.html", campaign=campaign, t=shaped)


@router.post("/campaigns/{campaign_id}/{move}")
def campaign_move(request: Request, campaign_id: DbId, move: str, session: Session = request_session,
                  who: Principal = Depends(marketer_post)):
    """Launch, pause, resume or cancel through the API's own service; an illegal move is its 409."""
    if move not in MOVES:
        raise InvalidInput(f"move: one of {', '.join(MOVES)}")
    campaign = getattr(service, move)(session, campaign_id=campaign_id)
    return render(request, "campaign_live.html", label=campaign_results.label, reason=campaign_results.reason_label,
                  **_live(session, campaign))


@router.get("/campaigns/{campaign_id}/results.csv")
def campaign_results_csv(campaign_id: DbId, session: Session = request_session, who: Principal = Depends(marketer)):
    """The results as CSV: the total, each store and each staff member (the API's numbers)."""
    campaign = service.get_campaign(session, campaign_id)
    header, rows = campaign_results.rows_for_csv(campaign_stats(session, campaign))
    return csv_export.download(csv_export.small(header, rows), f"campaign-{campaign.id}-results.csv", len(rows))


LEDGER_HEADER = ["member_id", "member", "store", "staff", "status", "reason", "result", "submitted_at",
                 "confirmed_at"]


def _ledger_page(campaign_id: int):
    st = CampaignStep

    def fetch(session: Session, after, limit: int) -> list[tuple]:
        q = (select(st.member_id, Member.name, Store.code, Staff.userid, st.status, st.reason, st.result,
                    st.submitted_at, st.confirmed_at, st.id)
             .outerjoin(Member, Member.id == st.member_id).outerjoin(Store, Store.id == st.store_id)
             .outerjoin(Staff, Staff.id == st.staff_id).where(st.campaign_id == campaign_id))
        if after is not None:
            q = q.where(st.id > after)
        return [tuple(r) for r in session.execute(q.order_by(st.id).limit(limit))]

    return fetch


@router.get("/campaigns/{campaign_id}/ledger.csv")
def campaign_ledger_csv(campaign_id: DbId, session: Session = request_session, who: Principal = Depends(marketer)):
    """The campaign's ledger, one row per member and step, streamed a page at a time."""
    campaign = service.get_campaign(session, campaign_id)
    total = session.scalar(select(func.count()).select_from(CampaignStep)
                           .where(CampaignStep.campaign_id == campaign.id))
    lines = csv_export.paged(LEDGER_HEADER, _ledger_page(campaign.id))
    return csv_export.download(lines, f"campaign-{campaign.id}-ledger.csv", total)
