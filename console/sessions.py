"""Console sign-in: an API token (or a WeCom sign-in) exchanged for a session cookie, and CSRF tokens.

The cookie carries a random secret; the table keeps its hash. Every request re-reads the session and the
API token behind it, so revoking either, or the token expiring, signs the browser out at its next click.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from config.settings import get_settings
from config.types import utcnow
from console.models import ConsoleSession, SignedInVia
from membership import tokens
from membership.access import Principal, authenticate, bootstrap_token, token_principal
from membership.models import Role, Staff

COOKIE = "siyu_console"
LOGIN_COOKIE = "siyu_console_login"  # binds the sign-in form's CSRF token before there is a session
STATE_COOKIE = "siyu_console_oauth"  # binds WeCom's OAuth `state` to the browser that asked for it
LIFETIME = timedelta(hours=12)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def sign(purpose: str, value: str) -> str:
    """An HMAC of `value` for `purpose` under Siyu's secret key (CSRF tokens, OAuth state)."""
    key = get_settings().secret().encode()
    return hmac.new(key, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()


def csrf_token(cookie_secret: str) -> str:
    """The CSRF token of the forms of a session (or of the sign-in form's cookie)."""
    return sign("csrf", cookie_secret)


def csrf_ok(cookie_secret: str | None, given: str | None) -> bool:
    """Whether a form's CSRF token belongs to this browser's cookie."""
    return bool(cookie_secret and given) and hmac.compare_digest(csrf_token(cookie_secret), given)


def _open(session: Session, now: datetime | None, **fields) -> str:
    now = now or utcnow()
    secret = secrets.token_urlsafe(32)
    session.add(ConsoleSession(secret_hash=_hash(secret), created_at=now, expires_at=now + LIFETIME, **fields))
    session.flush()
    return secret


def sign_in_with_token(session: Session, token: str, *, now: datetime | None = None) -> str | None:
    """A new session's cookie secret for a valid API token; None for a wrong, revoked or expired one."""
    principal = authenticate(session, token.strip(), now=now) if token.strip() else None
    if principal is None:
        return None
    if principal.token_id is None:  # the bootstrap token
        return _open(session, now, via=SignedInVia.token.value, bootstrap_hash=_hash(token.strip()))
    return _open(session, now, via=SignedInVia.token.value, api_token_id=principal.token_id)


def sign_in_staff(session: Session, staff: Staff, *, now: datetime | None = None) -> str:
    """A new session's cookie secret for a staff member WeCom has vouched for."""
    return _open(session, now, via=SignedInVia.wecom.value, staff_id=staff.id)


def principal_of(session: Session, secret: str | None, *, now: datetime | None = None) -> Principal | None:
    """Who a session cookie stands for now; None when it is unknown, signed out, expired or its token is gone."""
    if not secret:
        return None
    now = now or utcnow()
    row = session.scalar(select(ConsoleSession).where(
        ConsoleSession.secret_hash == _hash(secret), ConsoleSession.revoked_at.is_(None),
        ConsoleSession.expires_at > now))
    if row is None:
        return None
    if row.api_token_id is not None:
        token = tokens.live_token_by_id(session, row.api_token_id, now=now)
        return token_principal(token) if token is not None else None
    if row.bootstrap_hash is not None:
        boot = bootstrap_token()
        ok = boot is not None and hmac.compare_digest(_hash(boot), row.bootstrap_hash)
        return Principal(role=Role.admin, name="bootstrap") if ok else None
    staff = session.get(Staff, row.staff_id)
    if staff is None or not staff.active:
        return None
    return Principal(role=Role.staff, name=staff.userid, store_id=staff.store_id, staff_id=staff.id)


def sign_out(session: Session, secret: str | None, *, now: datetime | None = None) -> bool:
    """Revoke the session of this cookie; True when one was live."""
    if not secret:
        return False
    done = session.execute(update(ConsoleSession).where(
        ConsoleSession.secret_hash == _hash(secret), ConsoleSession.revoked_at.is_(None))
        .values(revoked_at=now or utcnow()).returning(ConsoleSession.id)).first()
    return done is not None
