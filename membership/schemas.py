"""Request and response bodies of the admin API's membership slice."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from config.inputs import Timestamp
from membership.models import Role


class TokenIn(BaseModel):
    name: str = Field(min_length=1, max_length=120)
    role: Role
    store: str | None = None
    staff: str | None = None
    expires_at: Timestamp | None = None  # absent: valid until revoked


class TokenOut(BaseModel):
    id: int
    token: str


class TokenInfo(BaseModel):
    """A token as listed: its scope and state, never its secret or hash."""

    id: int
    name: str
    role: str
    store: str | None
    staff: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class StoreIn(BaseModel):
    code: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_\-]+$")
    name: str = Field(min_length=1, max_length=120)
    city: str | None = Field(default=None, max_length=60)
    address: str | None = Field(default=None, max_length=300)


class StoreOut(BaseModel):
    code: str
    name: str
    city: str | None = None
    address: str | None = None


class StaffIn(BaseModel):
    userid: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=120)
    store: str
    # Absent: a new staff member is `staff`, an existing one keeps their role.
    role: str | None = Field(default=None, pattern=r"^(staff|store_manager)$")


class StaffOut(BaseModel):
    userid: str
    name: str
    store: str | None
    role: str
    active: bool
    source: str  # api: created through the API, never listed by WeCom's directory; wecom: WeCom knows them


class IdentityOut(BaseModel):
    type: str
    value: str
    scope: str


class RelationOut(BaseModel):
    staff: str
    state: str | None
    added_at: datetime
    status: str


class MemberOut(BaseModel):
    id: int
    name: str | None
    store: str | None
    tags: list[str]
    traits: dict[str, Any]
    identities: list[IdentityOut]
    relations: list[RelationOut]
    merged_into: int | None = None


class MemberPage(BaseModel):
    items: list[MemberOut]
    next_cursor: str | None


class EventOut(BaseModel):
    type: str
    at: datetime
    data: dict[str, Any]


class TimelineOut(BaseModel):
    items: list[EventOut]


class TagIn(BaseModel):
    name: str = Field(min_length=1, max_length=60)
    group: str = Field(default="", max_length=60)
    # Admins and marketers mark a catalogue tag as shown to the consumer on their member card (GET /mp/v1/me).
    visible_to_member: bool | None = None


class MergeReviewOut(BaseModel):
    id: int
    member_id: int
    other_member_id: int
    reason: str
    status: str
    created_at: datetime
