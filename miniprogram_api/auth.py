"""Mini-program session tokens: signed with SIYU_SECRET_KEY, expiring, and ended by the user's next login.

A token is `mp1.<session id>.<member id>.<expiry>.<signature>`: HMAC-SHA256 under a key derived from the secret
for this one purpose, so no other value Siyu signs (or an admin token, which is a random string looked up by
hash) is ever a session token, nor a session token an admin token. The signature proves Siyu issued it; the
`mp_sessions` row says whether it is still live (WeChat ends a user's previous session at every new login).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime, timedelta

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import update
from sqlalchemy.orm import Session

from config.database import request_session, session_scope
from config.settings import get_settings
from config.types import utcnow
from membership.identity import live_member
from miniprogram_api.exceptions import Unauthorized
from miniprogram_api.models import MPSession

PREFIX = "mp1"
MAX_TOKEN = 200  # characters; anything longer is not ours

bearer = HTTPBearer(auto_error=False, scheme_name="mp_session",
                    description="A mini-program session token from `POST /mp/v1/session`.")


def _key() -> bytes:
    return hmac.new(get_settings().secret().encode(), b"siyu mini-program session token v1", hashlib.sha256).digest()


def _sign(body: str) -> str:
    digest = hmac.new(_key(), body.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def session_ttl() -> timedelta:
    """How long a session token lives (SIYU_MP_SESSION_TTL_HOURS); the mini-program logs in again (wx.login is
    silent) when it expires."""
    return timedelta(hours=get_settings().mp_session_ttl_hours)


def start_session(session: Session, *, member_id: int, openid: str | None, ttl: timedelta | None = None,
                  now: datetime | None = None) -> str:
    """A token for a new login of `member_id`; the same openid's earlier logins end (their tokens stop working)."""
    now = now or utcnow()
    ttl = ttl or session_ttl()
    if openid:
        session.execute(update(MPSession).where(MPSession.openid == openid, MPSession.ended_at.is_(None))
                        .values(ended_at=now))
    row = MPSession(member_id=member_id, openid=openid, created_at=now, expires_at=now + ttl)
    session.add(row)
    session.flush()
    body = f"{PREFIX}.{row.id}.{member_id}.{int(row.expires_at.timestamp())}"
    return f"{body}.{_sign(body)}"


def issue_token(member_id: int, *, session: Session | None = None, openid: str | None = None,
                ttl: timedelta | None = None, now: datetime | None = None) -> str:
    """A session token for `member_id` (in `session`'s transaction, or committed at once without one)."""
    if session is not None:
        return start_session(session, member_id=member_id, openid=openid, ttl=ttl, now=now)
    with session_scope() as own:
        return start_session(own, member_id=member_id, openid=openid, ttl=ttl, now=now)


def verify(session: Session, token: str, *, now: datetime | None = None) -> int:
    """The (live) member id a session token stands for; Unauthorized when it is not a live token of ours."""
    parts = token.split(".") if len(token) <= MAX_TOKEN else []
    if len(parts) != 5 or parts[0] != PREFIX or not all(p.isdigit() for p in parts[1:4]):
        raise Unauthorized("not a mini-program session token")
    body = ".".join(parts[:4])
    if not hmac.compare_digest(parts[4].encode(), _sign(body).encode()):
        raise Unauthorized("invalid session token")
    sid, member_id, expiry = (int(p) for p in parts[1:4])
    now = now or utcnow()
    if expiry <= now.timestamp():
        raise Unauthorized("session expired: log in again")
    row = session.get(MPSession, sid)
    if row is None or row.member_id != member_id:
        raise Unauthorized("invalid session token")
    if row.ended_at is not None:
        raise Unauthorized("session ended by a newer login: log in again")
    member = live_member(session, member_id)
    if member is None:
        raise Unauthorized("invalid session token")
    return member.id  # a merged member's token acts for the member it was merged into


def current_member(credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
                   session: Session = request_session) -> int:
    """FastAPI dependency: the member id of the request's session token; 401 without a live one."""
    token = credentials.credentials.strip() if credentials else ""
    if not token:
        raise Unauthorized("a session token is required (POST /mp/v1/session)")
    return verify(session, token)
