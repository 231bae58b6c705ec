"""Look-ups the handlers share: members by WeCom identities, channel codes by state."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from membership.identity import IdentityIn, resolve
from membership.models import Member
from webhooks.intake import credentials
from webhooks.models import ChannelCode


def corp_id() -> str:
    """The corp id: the scope of `wecom_external` identities."""
    return credentials("wecom").corp_id


def wecom_identity(external_userid: str) -> IdentityIn:
    """The identity of a WeCom external contact."""
    return IdentityIn("wecom_external", external_userid, scope=corp_id())


def member_by_external(session: Session, external_userid: str) -> Member | None:
    """The live member behind a WeCom external_userid, if known."""
    return resolve(session, wecom_identity(external_userid)) if external_userid else None


def channel_code_by_state(session: Session, state: str | None) -> ChannelCode | None:
    """The channel code Siyu made with this `state`, if it is one of ours."""
    if not state:
        return None
    return session.scalar(select(ChannelCode).where(ChannelCode.state == state))
