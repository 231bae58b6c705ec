"""Bearer tokens of the admin API: issued, listed, revoked and looked up; only a token's SHA-256 is stored."""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, selectinload

from config.types import utcnow
from membership import service
from membership.exceptions import InvalidInput, NotFound
from membership.models import ApiToken, Role
from membership.schemas import TokenInfo


def hash_token(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(session: Session, *, name: str, role: Role, store_id: int | None = None,
                staff_id: int | None = None, expires_at: datetime | None = None) -> tuple[ApiToken, str]:
    """Store a new token and return it with its secret (shown once: only the hash is kept)."""
    secret = "sy_" + secrets.token_urlsafe(32)
    row = ApiToken(name=name, role=role.value, store_id=store_id, staff_id=staff_id, token_hash=hash_token(secret),
                   expires_at=expires_at)
    session.add(row)
    session.flush()
    return row, secret


def create_token(session: Session, *, name: str, role: Role, store: str | None = None, staff: str | None = None,
                 expires_at: datetime | None = None, now: datetime | None = None) -> tuple[ApiToken, str]:
    """A token for a role, scoped by store code and staff userid; NotFound or InvalidInput for what does not fit."""
    store_row = service.get_store_by_code(session, store) if store else None
    staff_row = service.get_staff(session, staff) if staff else None
    if role is Role.store_manager and store_row is None:
        raise InvalidInput("store: a store_manager token needs a store")
    if role is Role.staff and staff_row is None:
        raise InvalidInput("staff: a staff token needs a staff userid")
    if store_row and staff_row and staff_row.store_id != store_row.id:
        raise InvalidInput(f"staff: {staff} does not work in store {store}")
    if expires_at is not None and expires_at <= (now or utcnow()):
        raise InvalidInput("expires_at: must be in the future")
    store_id = store_row.id if store_row else (staff_row.store_id if staff_row else None)
    return issue_token(session, name=name, role=role, store_id=store_id,
                       staff_id=staff_row.id if staff_row else None, expires_at=expires_at)


def list_tokens(session: Session, *, after_id: int | None = None, limit: int | None = None) -> list[ApiToken]:
    """Every token ever issued, revoked and expired ones included, oldest first (a keyset page with `limit`)."""
    q = select(ApiToken).options(selectinload(ApiToken.store), selectinload(ApiToken.staff)).order_by(ApiToken.id)
    if after_id is not None:
        q = q.where(ApiToken.id > after_id)
    return list(session.scalars(q if limit is None else q.limit(limit)))


def token_info(row: ApiToken) -> TokenInfo:
    """A token as listed: scope and state, never the secret or its hash."""
    return TokenInfo(id=row.id, name=row.name, role=row.role, store=row.store.code if row.store else None,
                     staff=row.staff.userid if row.staff else None, created_at=row.created_at,
                     expires_at=row.expires_at, revoked_at=row.revoked_at)


def revoke_token(session: Session, *, token_id: int, now: datetime | None = None) -> None:
    """Revoke a token from now on (revoking twice keeps the first time); NotFound when there is no such token."""
    done = session.execute(update(ApiToken).where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None))
                           .values(revoked_at=now or utcnow()).returning(ApiToken.id)).first()
    if done is None and session.get(ApiToken, token_id) is None:
        raise NotFound(f"token {token_id} not found")


def live_token(session: Session, secret: str, *, now: datetime | None = None) -> ApiToken | None:
    """The token with this secret, unless it was revoked or has expired (read on every request, never cached)."""
    now = now or utcnow()
    q = select(ApiToken).where(ApiToken.token_hash == hash_token(secret), ApiToken.revoked_at.is_(None),
                               or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > now))
    return session.scalar(q)


def live_token_by_id(session: Session, token_id: int, *, now: datetime | None = None) -> ApiToken | None:
    """The token with this id, unless it was revoked or has expired (a console session re-checks it per request)."""
    now = now or utcnow()
    q = select(ApiToken).where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None),
                               or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > now))
    return session.scalar(q)
