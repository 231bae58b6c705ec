"""Pydantic bodies and answers of the intake's admin endpoints."""
from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field, field_validator

from webhooks.replies import MATCH_MODES


class WelcomeIn(BaseModel):
    text: str = Field(min_length=1, max_length=4000)


class ChannelCodeIn(BaseModel):
    name: str = Field(min_length=1, max_length=120)
    store: str
    staff: list[str] = Field(min_length=1, max_length=100)
    tags: list[str] = []
    welcome: WelcomeIn | None = None


class ChannelCodeOut(BaseModel):
    id: int
    state: str
    config_id: str | None
    qr_code: str | None
    name: str
    store: str | None  # its code
    staff: list[str]  # WeCom userids
    tags: list[str]  # names
    welcome: WelcomeIn | None
    created_at: datetime


class ChannelCodePage(BaseModel):
    items: list[ChannelCodeOut]
    next_cursor: str | None


class OAQrCodeIn(BaseModel):
    name: str = ""
    store: str
    staff: str | None = None
    expire_seconds: int | None = Field(None, ge=60, le=2592000)  # absent: a permanent code


class OAQrCodeOut(BaseModel):
    id: int
    scene: str
    ticket: str | None
    url: str | None
    name: str
    store: str | None  # its code
    staff: str | None  # WeCom userid
    expire_seconds: int | None  # None: a permanent code
    created_at: datetime


class OAQrCodePage(BaseModel):
    items: list[OAQrCodeOut]
    next_cursor: str | None


class MiniProgramCard(BaseModel):
    title: str
    appid: str
    pagepath: str
    thumb_media_id: str


class AutoReplyIn(BaseModel):
    name: str = ""
    keywords: list[str] = Field(min_length=1)
    match: str = "contains"
    channels: list[str] = []
    reply_text: str | None = None
    miniprogram: MiniProgramCard | None = None
    priority: int = Field(0, ge=-(2**31), le=2**31 - 1)  # an INTEGER column

    @field_validator("match")
    @classmethod
    def _match(cls, v: str) -> str:
        if v not in MATCH_MODES:
            raise ValueError(f"match must be one of {', '.join(MATCH_MODES)}")
        return v

    @field_validator("channels")
    @classmethod
    def _channels(cls, v: list[str]) -> list[str]:
        bad = [c for c in v if c not in ("official_account", "miniprogram")]
        if bad:
            raise ValueError(f"channels: unknown {bad}; use official_account, miniprogram")
        return v


class AutoReplyOut(AutoReplyIn):
    id: int
    active: bool


class AutoReplyPage(BaseModel):
    items: list[AutoReplyOut]
    next_cursor: str | None


class InboxOut(BaseModel):
    id: int
    source: str
    msg_type: str
    event: str
    change_type: str
    status: str
    attempts: int
    error: str | None
    received_at: datetime
    processed_at: datetime | None


class InboxPage(BaseModel):
    items: list[InboxOut]
    next_cursor: str | None
