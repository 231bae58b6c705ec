"""Look-ups the handlers share: staff by userid, members by WeCom / OA identities, channel codes by state.

`ensure_staff` belongs in membership.service one day (reported to the lead); it lives here until then.
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from membership.identity import IdentityIn, resolve
from membership.models import Member, Staff
from webhooks.intake import credentials
from webhooks.models import ChannelCode


def ensure_staff(session: Session, userid: str) -> Staff:
    """The staff member with this userid, created as a bare record when WeCom knows them and Siyu not yet."""
    staff = session.scalar(select(Staff).where(Staff.userid == userid))
    if staff is None:
        try:
            with session.begin_nested():
                staff = Staff(userid=userid, name=userid)  # `siyu sync wecom` fills in name and store later
                session.add(staff)
        except IntegrityError:  # a concurrent handler created them first
            staff = session.scalar(select(Staff).where(Staff.userid == userid))
    return staff


def find_staff(session: Session, userid: str) -> Staff | None:
    """The staff member with this userid, if Siyu knows them."""
    return session.scalar(select(Staff).where(Staff.userid == userid)) if userid else None


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
