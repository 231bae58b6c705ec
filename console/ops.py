"""运营: the inbox's failures with replay, channel codes, OA QR codes, auto-replies, tag rules and API tokens.

Each section is a list paged by cursor and a form, both calling the API's own service functions with the
API's role rules; a section is one `Section` entry and its form one tuple of `Field`s.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse
from sqlalchemy.orm import Session

from config.database import request_session
from config.errors import Forbidden, InvalidInput, NotFound
from config.inputs import DbId
from config.pagination import decode_cursor, page_of
from config.settings import get_settings
from console.web import PREFIX, attempt, console_router, poster, render, viewer
from membership import tokens
from membership.access import Principal
from membership.models import Role
from membership.schemas import TokenIn
from segments import service as segments
from segments.schemas import TagRuleIn
from webhooks import inbox_admin, views
from webhooks import service as intake
from webhooks.inbox import inbox_request_session
from webhooks.models import InboxStatus
from webhooks.replies import MATCH_MODES
from webhooks.schemas import AutoReplyIn, ChannelCodeIn, OAQrCodeIn

router = console_router()
anyone_post = poster()
PAGE = 30


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    kind: str = "text"  # text, list (comma separated), int, bool, select, time (business time zone), textarea
    choices: tuple[str, ...] = ()
    required: bool = False


@dataclass(frozen=True)
class Section:
    key: str
    label: str
    roles: tuple[Role, ...]  # besides admin
    columns: tuple[tuple[str, str], ...]  # (attribute, heading)
    rows: Callable  # (session, who, after_id, limit) -> list of row objects with .id
    fields: tuple[Field, ...] = ()
    create: Callable | None = None  # (session, who, payload) -> the created row (or (row, secret) for tokens)


def _own_store(who: Principal) -> int | None:
    return who.store_id if who.role is Role.store_manager else None


def _inbox_rows(session, who, after_id, limit, status="failed"):
    return inbox_admin.list_events(status=InboxStatus(status) if status else None, after_id=after_id, limit=limit)


def _code_rows(session, who, after_id, limit):
    rows = intake.list_channel_codes(session, within_store=_own_store(who), after_id=after_id, limit=limit)
    return views.channel_codes_out(session, rows)


def _qr_rows(session, who, after_id, limit):
    return views.oa_qrcodes_out(session, intake.list_oa_qrcodes(session, after_id=after_id, limit=limit))


def _reply_rows(session, who, after_id, limit):
    return [views.auto_reply_out(r) for r in intake.list_auto_replies(session, after_id=after_id, limit=limit)]


def _rule_rows(session, who, after_id, limit):
    rules = segments.list_tag_rules(session, after_id=after_id, limit=limit)
    tags = segments.rule_tags(session, rules)
    return [{"id": r.id, "name": r.name, "tag": tags[r.id].name if r.id in tags else "", "segment_id": r.segment_id,
             "keywords": r.keywords, "remove_on_leave": r.remove_on_leave, "active": r.active} for r in rules]


def _token_rows(session, who, after_id, limit):
    return [tokens.token_info(t) for t in tokens.list_tokens(session, after_id=after_id, limit=limit)]


def _create_code(session, who, payload):
    code = intake.create_channel_code(session, ChannelCodeIn(**payload), within_store=_own_store(who),
                                      may_create_tags=who.allows(Role.marketer))
    return code


def _create_rule(session, who, payload):
    return segments.create_tag_rule(session, **TagRuleIn(**payload).model_dump())


def _create_token(session, who, payload):
    return tokens.create_token(session, **TokenIn(**payload).model_dump())


SECTIONS = {s.key: s for s in (
    Section("inbox", "回调失败", (), (("id", "ID"), ("source", "来源"), ("msg_type", "类型"), ("event", "事件"),
                                      ("change_type", "变更"), ("status", "状态"), ("attempts", "尝试"),
                                      ("error", "错误"), ("received_at", "收到时间")), _inbox_rows),
    Section("channel-codes", "渠道活码", (Role.marketer, Role.store_manager),
            (("id", "ID"), ("name", "名称"), ("store", "门店"), ("staff", "员工"), ("tags", "标签"), ("state", "state"),
             ("qr_code", "二维码")), _code_rows,
            (Field("name", "名称", required=True), Field("store", "门店代码", required=True),
             Field("staff", "员工 userid（逗号分隔）", "list", required=True),
             Field("tags", "标签（逗号分隔）", "list"),
             Field("welcome", "欢迎语", "textarea")), _create_code),
    Section("oa-qrcodes", "公众号二维码", (Role.marketer,),
            (("id", "ID"), ("name", "名称"), ("store", "门店"), ("staff", "员工"), ("scene", "场景"),
             ("expire_seconds", "有效期(秒)"), ("url", "链接")), _qr_rows,
            (Field("name", "名称"), Field("store", "门店代码", required=True), Field("staff", "员工 userid"),
             Field("expire_seconds", "有效期（秒，空为永久）", "int")),
            lambda session, who, payload: intake.create_oa_qrcode(session, OAQrCodeIn(**payload))),
    Section("auto-replies", "自动回复", (Role.marketer,),
            (("id", "ID"), ("name", "名称"), ("keywords", "关键词"), ("match", "匹配"), ("channels", "渠道"),
             ("reply_text", "回复"), ("priority", "优先级")), _reply_rows,
            (Field("name", "名称"), Field("keywords", "关键词（逗号分隔）", "list", required=True),
             Field("match", "匹配方式", "select", MATCH_MODES),
             Field("channels", "渠道（official_account, miniprogram；空为全部）", "list"),
             Field("reply_text", "回复内容", "textarea"), Field("priority", "优先级", "int")),
            lambda session, who, payload: intake.create_auto_reply(session, AutoReplyIn(**payload))),
    Section("tag-rules", "自动标签", (Role.marketer,),
            (("id", "ID"), ("name", "名称"), ("tag", "标签"), ("segment_id", "人群"), ("keywords", "关键词"),
             ("remove_on_leave", "离开时移除"), ("active", "启用")), _rule_rows,
            (Field("name", "名称", required=True), Field("tag", "标签", required=True),
             Field("segment_id", "人群 ID", "int"),
             Field("keywords", "关键词（逗号分隔，与人群二选一）", "list"),
             Field("remove_on_leave", "离开人群时移除标签", "bool")), _create_rule),
    Section("tokens", "API 令牌", (), (("id", "ID"), ("name", "名称"), ("role", "角色"), ("store", "门店"),
                                       ("staff", "员工"), ("created_at", "创建"), ("expires_at", "过期"),
                                       ("revoked_at", "撤销")), _token_rows,
            (Field("name", "名称", required=True), Field("role", "角色", "select", tuple(r.value for r in Role)),
             Field("store", "门店代码"), Field("staff", "员工 userid"),
             Field("expires_at", "过期时间（YYYY-MM-DD HH:MM，空为不过期）", "time")), _create_token),
)}


def _allowed(who: Principal) -> list[Section]:
    return [s for s in SECTIONS.values() if who.allows(*s.roles)]


def _section(who: Principal, key: str) -> Section:
    section = SECTIONS.get(key)
    if section is None:
        raise NotFound(f"no section {key}")
    if not who.allows(*section.roles):
        raise Forbidden(f"role {who.role.value} may not do this")
    return section


def payload_of(fields: tuple[Field, ...], form) -> dict:
    """The API body a form stands for: blank fields left out (the API's defaults apply), lists split on commas."""
    body: dict = {}
    for f in fields:
        raw = form.get(f.name, "").strip()
        if f.kind == "bool":
            body[f.name] = raw in ("1", "on", "true")
        elif not raw:
            continue
        elif f.kind == "list":
            body[f.name] = [p.strip() for p in raw.replace("，", ",").split(",") if p.strip()]
        elif f.kind == "int":
            try:
                body[f.name] = int(raw)
            except ValueError:
                raise InvalidInput(f"{f.name}: a whole number") from None
        elif f.kind == "time":
            try:
                body[f.name] = datetime.fromisoformat(raw).replace(tzinfo=get_settings().tz)
            except ValueError:
                raise InvalidInput(f"{f.name}: a time like 2026-12-31 18:00") from None
        elif f.name == "welcome":
            body[f.name] = {"text": raw}
        else:
            body[f.name] = raw
    return body


def _page(request: Request, session: Session, who: Principal, section: Section, cursor: str | None,
          status_code: int = 200, **extra):
    query = dict(request.query_params)
    if section.key == "inbox":
        status = query.get("status", "failed")
        status = status if status in {s.value for s in InboxStatus} or status == "" else "failed"
        found = _inbox_rows(session, who, decode_cursor(cursor), PAGE + 1, status)
        extra.setdefault("inbox_status", status)
    else:
        found = section.rows(session, who, decode_cursor(cursor), PAGE + 1)
    rows, next_cursor = page_of(found, PAGE, lambda r: r["id"] if isinstance(r, dict) else r.id)
    return render(request, "ops.html", status_code=status_code, sections=_allowed(who), section=section, rows=rows,
                  next_cursor=next_cursor, values=extra.pop("values", {}), errors=extra.pop("errors", {}),
                  statuses=[s.value for s in InboxStatus], **extra)


@router.get("/ops")
def ops_home(who: Principal = Depends(viewer)):
    """The first section the caller may open."""
    allowed = _allowed(who)
    if not allowed:
        raise Forbidden(f"role {who.role.value} may not do this")
    return RedirectResponse(f"{PREFIX}/ops/{allowed[0].key}", status_code=303)


@router.get("/ops/{key}")
def ops_section(request: Request, key: str, cursor: str | None = None, session: Session = request_session,
                who: Principal = Depends(viewer)):
    """One section: its list (a page at a time) and its form."""
    return _page(request, session, who, _section(who, key), cursor)


@router.post("/ops/inbox/{inbox_id}/replay")
def ops_replay(request: Request, inbox_id: DbId, inbox: Session = inbox_request_session,
               who: Principal = Depends(anyone_post)):
    """Replay a failed or unhandled callback; the row shows its new state (or why it cannot replay)."""
    section = _section(who, "inbox")
    replayed = []
    errors = attempt(inbox, (), lambda: replayed.append(inbox_admin.replay(inbox, inbox_id)))
    if errors:
        return render(request, "_error_fragment.html", status_code=409, status=409, message=errors["_form"])
    return render(request, "ops_inbox_row.html", section=section, r=replayed[0], replayed=True)


@router.post("/ops/tokens/{token_id}/revoke")
def ops_revoke(request: Request, token_id: DbId, session: Session = request_session,
               who: Principal = Depends(anyone_post)):
    """Revoke an API token: its next request, and every console session it opened, is signed out."""
    _section(who, "tokens")
    tokens.revoke_token(session, token_id=token_id)
    return RedirectResponse(f"{PREFIX}/ops/tokens", status_code=303)


@router.post("/ops/{key}")
def ops_create(request: Request, key: str, session: Session = request_session, who: Principal = Depends(anyone_post)):
    """Create through the section's form; the API's message goes next to the field and nothing is saved."""
    section = _section(who, key)
    if section.create is None:
        raise NotFound(f"section {key} has no form")
    form, made = request.state.form, []
    errors = attempt(session, tuple(f.name for f in section.fields),
                     lambda: made.append(section.create(session, who, payload_of(section.fields, form))))
    if errors:
        return _page(request, session, who, section, None, 422, values=dict(form), errors=errors)
    if key == "tokens":  # the secret is shown this once
        row, secret = made[0]
        return _page(request, session, who, section, None, created_token={"id": row.id, "token": secret})
    return RedirectResponse(f"{PREFIX}/ops/{key}?created=1", status_code=303)
