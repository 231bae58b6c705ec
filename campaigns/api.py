"""Admin API, campaigns slice (admin, marketer): create, read with stats, launch, pause, resume, cancel."""
from __future__ import annotations

from fastapi import APIRouter, Depends
from sqlalchemy.orm import Session

from campaigns import service
from campaigns.models import Campaign
from campaigns.schemas import CampaignIn, CampaignOut
from campaigns.stats import campaign_stats
from config.api_errors import ERROR_RESPONSES
from config.database import request_session
from config.inputs import DbId
from membership.access import Principal, require
from membership.models import Role

router = APIRouter(prefix="/api/v1", tags=["campaigns"], responses=ERROR_RESPONSES)
marketer = require(Role.marketer)


def _out(session: Session, campaign: Campaign) -> CampaignOut:
    return CampaignOut(id=campaign.id, name=campaign.name, status=campaign.status,
                       schedule_kind=campaign.schedule_kind, stats=campaign_stats(session, campaign))


@router.post("/campaigns", response_model=CampaignOut, status_code=201)
def create_campaign(body: CampaignIn, session: Session = request_session, _: Principal = Depends(marketer)):
    """Save a campaign (CONTRACT §5) as a draft."""
    return _out(session, service.create_campaign(session, spec=body))


@router.get("/campaigns/{campaign_id}", response_model=CampaignOut)
def get_campaign(campaign_id: DbId, session: Session = request_session, _: Principal = Depends(marketer)):
    """A campaign with its stats: in total, per store and per staff member."""
    return _out(session, service.get_campaign(session, campaign_id))


@router.post("/campaigns/{campaign_id}/launch", response_model=CampaignOut)
def launch(campaign_id: DbId, session: Session = request_session, _: Principal = Depends(marketer)):
    """Launch (again: nothing is sent twice); 409 when paused or cancelled."""
    return _out(session, service.launch(session, campaign_id=campaign_id))


@router.post("/campaigns/{campaign_id}/pause", response_model=CampaignOut)
def pause(campaign_id: DbId, session: Session = request_session, _: Principal = Depends(marketer)):
    """Pause a running or scheduled campaign; 409 otherwise."""
    return _out(session, service.pause(session, campaign_id=campaign_id))


@router.post("/campaigns/{campaign_id}/resume", response_model=CampaignOut)
def resume(campaign_id: DbId, session: Session = request_session, _: Principal = Depends(marketer)):
    """Resume a paused campaign from where its ledger stands; 409 otherwise."""
    return _out(session, service.resume(session, campaign_id=campaign_id))


@router.post("/campaigns/{campaign_id}/cancel", response_model=CampaignOut)
def cancel(campaign_id: DbId, session: Session = request_session, _: Principal = Depends(marketer)):
    """Cancel for good; 409 when completed or cancelled already."""
    return _out(session, service.cancel(session, campaign_id=campaign_id))
