"""概览: customers gained, lost and net per day, members by channel, segment sizes, campaign funnels, group-buy
revenue and refunds and bookings by state, per store, staff and period."""
from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import Depends, Query, Request
from fastapi.responses import RedirectResponse
from sqlalchemy.orm import Session

from config.database import request_session
from config.settings import get_settings
from console import overview_sections as sections
from console.web import PREFIX, console_router, render, viewer
from membership import service as members
from membership import stats
from membership.access import Principal, visible_members
from membership.models import Role
from segments import service as segments

router = console_router()
PERIODS = {7: "近 7 天", 30: "近 30 天", 90: "近 90 天"}
CHANNEL_LABELS = {"wecom": "企业微信", "official_account": "公众号", "miniprogram": "小程序", "phone": "手机号"}


@router.get("")
def bare() -> RedirectResponse:
    """/console goes to /console/."""
    return RedirectResponse(f"{PREFIX}/", status_code=307)


@router.get("/")
def overview(request: Request, days: int = Query(30), store: str = "", staff: str = "",
             session: Session = request_session, who: Principal = Depends(viewer)):
    """The overview of the caller's scope: a store manager's store, or every store (or one) for the others."""
    if who.role is Role.staff:
        return RedirectResponse(f"{PREFIX}/workbench", status_code=303)
    days = days if days in PERIODS else 30
    all_stores = who.allows(Role.marketer)
    store_rows = members.list_stores(session, None if all_stores else (who.store_id or -1))
    store_id = who.store_id if not all_stores else (members.get_store_by_code(session, store).id if store else None)
    staff_rows = members.list_staff(session, store_id)
    staff = staff if any(s.userid == staff for s in staff_rows) else ""
    until = datetime.now(get_settings().tz).date()
    since = until - timedelta(days=days - 1)
    visible = visible_members(who)
    flow = stats.contact_flow(session, since=since, until=until, tz=get_settings().tz, store_id=store_id,
                              staff_userid=staff or None, visible=visible)
    channels = stats.members_by_channel(session, store_id=store_id, visible=visible)
    segment_rows = []
    if who.allows(Role.marketer):
        listed = segments.list_segments(session)
        sizes = segments.sizes(session, [s.id for s in listed])
        segment_rows = [{"id": s.id, "name": s.name, "size": sizes[s.id]} for s in listed]
    charts = {
        "flow": {"kind": "flow", "days": [f.day.isoformat() for f in flow], "added": [f.added for f in flow],
                 "lost": [f.lost for f in flow], "net": [f.net for f in flow]},
        "channels": {"kind": "bar", "labels": [CHANNEL_LABELS[c] for c in channels], "values": list(channels.values())},
        "segments": {"kind": "bar", "labels": [s["name"] for s in segment_rows],
                     "values": [s["size"] for s in segment_rows]},
    }
    # The commerce sections: a store manager's store always (none: nothing), the chosen one or all for the others.
    shown_store = store_id if all_stores else (who.store_id or -1)
    funnels = (sections.campaign_funnels(session, since=since, until=until, store_code=store, staff_userid=staff)
               if who.allows(Role.marketer) else [])
    buys = sections.group_buy(session, since=since, until=until, store_id=shown_store)
    states = sections.bookings_by_state(session, since=since, until=until, store_id=shown_store)
    charts.update(sections.charts(funnels, buys, states))
    totals = {"added": sum(f.added for f in flow), "lost": sum(f.lost for f in flow)}
    return render(request, "overview.html", flow=flow, channels=channels, channel_labels=CHANNEL_LABELS,
                  segments=segment_rows, charts=charts, totals=totals, periods=PERIODS, days=days,
                  funnels=funnels, funnel_labels=[sections.LABELS[k] for k in sections.FUNNEL], buys=buys,
                  states=states, state_labels=sections.STATUS_LABELS,
                  stores=store_rows, store=store if all_stores else "", all_stores=all_stores, staff_rows=staff_rows,
                  staff=staff)
