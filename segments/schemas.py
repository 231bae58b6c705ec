"""Request and response bodies of the admin API's segments slice."""
from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from config.inputs import DbId
from segments.language import Definition


class PreviewIn(BaseModel):
    definition: Definition


class PreviewOut(BaseModel):
    count: int
    sample: list[int]


class SegmentIn(BaseModel):
    name: str = Field(min_length=1, max_length=120)
    definition: Definition


class SegmentPatch(BaseModel):
    """PATCH /segments/{id}: a new name, a new definition, or both."""

    name: str | None = Field(default=None, min_length=1, max_length=120)
    definition: Definition = None


class SegmentOut(BaseModel):
    id: int
    name: str
    definition: Definition
    size: int | None
    refreshed_at: datetime | None
    last_refresh_ms: int | None = None  # how long the last full refresh took: slow ones are visible
    last_entered: int | None = None
    last_left: int | None = None
    relative_dates: bool = False
    depends_on: list[str] = []
    refresh_error: str | None = None  # why no refresh can evaluate it (until it or a segment it uses is redefined)


class SegmentMemberOut(BaseModel):
    id: int
    entered_at: datetime


class SegmentMembersPage(BaseModel):
    items: list[SegmentMemberOut]
    next_cursor: str | None


class TagRuleIn(BaseModel):
    name: str = Field(min_length=1, max_length=120)
    tag: str = Field(min_length=1, max_length=60)
    group: str = Field(default="", max_length=60)
    segment_id: DbId | None = None
    keywords: list[str] | None = Field(default=None, max_length=200)
    remove_on_leave: bool = False
    apply_to_current: bool = True


class TagRuleOut(BaseModel):
    id: int
    name: str
    tag: str
    group: str
    segment_id: int | None
    keywords: list[str] | None
    remove_on_leave: bool
    active: bool
