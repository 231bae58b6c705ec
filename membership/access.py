"""Who may see what: bearer tokens of the admin API, their roles, and the members each role sees."""
from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from config.database import request_session
from config.secret_files import read_or_create
from config.settings import get_settings
from membership.exceptions import Forbidden, NotFound
from membership.models import Member, Relation, RelationStatus, Role
from membership.tokens import live_token


@dataclass(frozen=True)
class Principal:
    """The caller of an admin API request."""

    role: Role
    name: str
    store_id: int | None = None
    staff_id: int | None = None
    token_id: int | None = None  # the API token's row (None for the bootstrap token and WeCom sign-ins)

    def allows(self, *roles: Role) -> bool:
        """True when the caller's role is admin or one of `roles`."""
        return self.role is Role.admin or self.role in roles


def bootstrap_token() -> str | None:
    """SIYU_ADMIN_TOKEN, or in embedded mode the token generated once into var/ (printed at start)."""
    settings = get_settings()
    if settings.admin_token:
        return settings.admin_token
    if not settings.embedded:
        return None
    return read_or_create(settings.var_dir / "admin_token", lambda: "sy_admin_" + secrets.token_urlsafe(24))


def authenticate(session: Session, token: str, *, now: datetime | None = None) -> Principal | None:
    """The principal a token stands for, or None (also for a revoked or expired token)."""
    boot = bootstrap_token()
    if boot and hmac.compare_digest(token.encode(), boot.encode()):
        return Principal(role=Role.admin, name="bootstrap")
    row = live_token(session, token, now=now)
    if row is None:
        return None
    return token_principal(row)


def token_principal(row) -> Principal:
    """The principal a live API token row stands for."""
    return Principal(role=Role(row.role), name=row.name, store_id=row.store_id, staff_id=row.staff_id,
                     token_id=row.id)


# Declares the scheme in OpenAPI (Swagger UI's Authorize) on every route that depends on it; the answers stay
# Siyu's own: auto_error=False, so a missing token is the 401 below, not FastAPI's 403.
bearer = HTTPBearer(auto_error=False, scheme_name="bearer",
                    description="An admin API token: `siyu token create --role R` or `POST /api/v1/tokens`.")


def current_principal(credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
                      session: Session = request_session) -> Principal:
    """FastAPI dependency: the bearer token's principal, 401 without a valid one."""
    token = credentials.credentials.strip() if credentials else ""
    if not token:
        raise HTTPException(401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"})
    principal = authenticate(session, token)
    if principal is None:
        raise HTTPException(401, "invalid token", headers={"WWW-Authenticate": "Bearer"})
    return principal


def require(*roles: Role):
    """FastAPI dependency factory: 403 unless the caller is admin or holds one of `roles`."""

    def check(principal: Principal = Depends(current_principal)) -> Principal:
        if not principal.allows(*roles):
            raise Forbidden(f"role {principal.role.value} may not do this")
        return principal

    return check


def visible_members(principal: Principal) -> Select | None:
    """A subquery of the member ids the caller may see; None means all."""
    if principal.allows(Role.marketer):
        return None
    if principal.role is Role.store_manager:
        return select(Member.id).where(Member.store_id == principal.store_id)
    return select(Relation.member_id).where(
        Relation.staff_id == principal.staff_id, Relation.status == RelationStatus.active.value
    )


def can_see_member(session: Session, principal: Principal, member: Member) -> bool:
    """Whether the caller may see this member (others answer 404, not 403)."""
    sub = visible_members(principal)
    if sub is None:
        return True
    return session.scalar(select(Member.id).where(Member.id == member.id, Member.id.in_(sub))) is not None


def visible_member(session: Session, principal: Principal, member_id: int) -> Member:
    """The member with this id if the caller may see them; NotFound otherwise (the same answer as no member)."""
    member = session.get(Member, member_id)
    if member is None or not can_see_member(session, principal, member):
        raise NotFound(f"member {member_id} not found")
    return member
