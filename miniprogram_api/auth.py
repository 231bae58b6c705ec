"""Consumer sessions of /mp/v1: an HMAC token `member_id.expiry.sig` signed with the settings' secret key."""
from __future__ import annotations

import base64
import hashlib
import hmac
import time

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from config.errors import DomainError
from config.settings import get_settings

SESSION_TTL = 7 * 24 * 3600  # seconds a session token stays valid

bearer = HTTPBearer(auto_error=False, scheme_name="mp_session",
                    description="A mini-program session token from `POST /mp/v1/session`.")


class Unauthorized(DomainError):
    """No session token, or one that is forged, expired or not a session token at all."""

    status_code = 401


def _sign(member_id: int, expiry: int) -> str:
    mac = hmac.new(get_settings().secret().encode(), f"mp-session:{member_id}.{expiry}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).decode().rstrip("=")


def issue_token(member_id: int, ttl: int = SESSION_TTL) -> str:
    """A session token for `member_id`, valid `ttl` seconds."""
    expiry = int(time.time()) + ttl
    return f"{int(member_id)}.{expiry}.{_sign(int(member_id), expiry)}"


def member_of(token: str, now: float | None = None) -> int | None:
    """The member id a session token stands for, or None (forged, expired, malformed)."""
    parts = (token or "").split(".")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit() or len(parts[0]) > 18:
        return None
    member_id, expiry = int(parts[0]), int(parts[1])
    if not hmac.compare_digest(parts[2].encode(), _sign(member_id, expiry).encode()):
        return None
    return member_id if expiry > (time.time() if now is None else now) else None


def current_member(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> int:
    """FastAPI dependency: the member id of the request's session token; 401 without a valid one."""
    member_id = member_of(credentials.credentials.strip() if credentials else "")
    if member_id is None:
        raise Unauthorized("a valid mini-program session token is required")
    return member_id
