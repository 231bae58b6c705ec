"""Sandbox WeCom APIs: token, staff, external contacts, tags, 联系我, welcome messages, group chats
(succession: transfer_api.py)."""
from __future__ import annotations

from bot.sandbox.errors import err, ok
from bot.sandbox.routing import Table
from bot.sandbox.wecom_state import STATE_MAX, WELCOME_CODE_TTL

WECOM = Table("wecom", lambda state, path: state.corp_id)
api = WECOM.api


@api("GET", "gettoken", auth=False)
def gettoken(state, body, q):
    if q.get("corpid") != state.corp_id:
        return err("invalid_corpid")
    if q.get("corpsecret") not in state.wecom_secrets:
        return err("invalid_secret")
    token, expires_in = state.issue_token(state.corp_id, q["corpsecret"])
    return ok(access_token=token, expires_in=expires_in)


# -- staff ---------------------------------------------------------------------------------------
@api("GET", "department/list")
def department_list(state, body, q):
    return ok(department=sorted(state.departments.values(), key=lambda d: d["id"]))


@api("GET", "user/list")
def user_list(state, body, q):
    dept = int(q.get("department_id", 1))
    child = q.get("fetch_child") in ("1", 1)
    wanted = {dept}
    if child:
        changed = True
        while changed:
            more = {d["id"] for d in state.departments.values() if d["parentid"] in wanted}
            changed = not more <= wanted
            wanted |= more
    users = [u for u in state.staff.values() if set(u["department"]) & wanted]
    return ok(userlist=users)


# -- external contacts -----------------------------------------------------------------------------
@api("GET", "externalcontact/get_follow_user_list")
def follow_user_list(state, body, q):
    return ok(follow_user=list(state.follow_enabled))


def _follow_users(state, ext: str) -> list[dict]:
    out = []
    for follows in state.follows.values():
        info = follows.get(ext)
        if info is not None:
            tags = []
            for tid in info["tag_id"]:
                for g in state.tag_groups.values():
                    for t in g["tag"]:
                        if t["id"] == tid:
                            tags.append({"group_name": g["group_name"], "tag_name": t["name"], "tag_id": tid,
                                         "type": 1})
            item = {k: v for k, v in info.items() if k != "tag_id"}
            out.append({**item, "tags": tags})
    return out


@api("GET", "externalcontact/get")
def external_get(state, body, q):
    ext = q.get("external_userid", "")
    contact = state.contacts.get(ext)
    if contact is None:
        return err("invalid_external_userid")
    follow = _follow_users(state, ext)
    if not follow:
        return err("not_friend")
    return ok(external_contact=contact, follow_user=follow, next_cursor="")


@api("POST", "externalcontact/batch/get_by_user")
def batch_get_by_user(state, body, q):
    userids = body.get("userid_list") or []
    limit = int(body.get("limit") or 50)
    if not userids or len(userids) > 100:
        return err("invalid_parameter", "userid_list must hold 1 to 100 userids")
    if limit < 1 or limit > 100:
        return err("invalid_parameter", "limit must be 1 to 100")
    for u in userids:
        if u not in state.staff:
            return err("invalid_userid", u)
    # The cursor is opaque to callers: "<index in userid_list>:<offset in that user's customers>".
    ui, off = 0, 0
    if body.get("cursor"):
        try:
            ui, off = (int(x) for x in str(body["cursor"]).split(":"))
        except ValueError:
            return err("invalid_parameter", "cursor")
    items = []
    while ui < len(userids) and len(items) < limit:
        follows = list(state.follows.get(userids[ui], {}).items())
        chunk = follows[off:off + limit - len(items)]
        for ext, info in chunk:
            items.append({"external_contact": state.contacts[ext], "follow_info": dict(info)})
        off += len(chunk)
        if off >= len(follows):
            ui, off = ui + 1, 0
    next_cursor = f"{ui}:{off}" if ui < len(userids) else ""
    return ok(external_contact_list=items, next_cursor=next_cursor, fail_info={})


# -- corp tags ----------------------------------------------------------------------------------------
@api("POST", "externalcontact/get_corp_tag_list")
def corp_tag_list(state, body, q):
    tag_ids, group_ids = set(body.get("tag_id") or []), set(body.get("group_id") or [])
    groups = []
    for g in state.tag_groups.values():
        if group_ids and g["group_id"] not in group_ids:
            continue
        tags = [t for t in g["tag"] if not tag_ids or t["id"] in tag_ids]
        if tag_ids and not tags:
            continue
        groups.append({**g, "tag": tags})
    return ok(tag_group=groups)


@api("POST", "externalcontact/add_corp_tag")
def add_corp_tag(state, body, q):
    tags = body.get("tag") or []
    if not tags or any(not t.get("name") or len(t["name"]) > 30 for t in tags):
        return err("invalid_parameter", "tag names are 1 to 30 characters")
    gid = body.get("group_id")
    if gid and gid not in state.tag_groups:
        return err("invalid_parameter", "group_id")
    name = body.get("group_name") or (state.tag_groups[gid]["group_name"] if gid else "")
    if not name:
        return err("invalid_parameter", "group_id or group_name is required")
    for t in tags:
        state.add_corp_tag_seed(name, t["name"])
    group = next(g for g in state.tag_groups.values() if g["group_name"] == name)
    names = {t["name"] for t in tags}
    return ok(tag_group={**group, "tag": [t for t in group["tag"] if t["name"] in names]})


@api("POST", "externalcontact/edit_corp_tag")
def edit_corp_tag(state, body, q):
    target = body.get("id")
    for g in state.tag_groups.values():
        if g["group_id"] == target:
            g["group_name"] = body.get("name", g["group_name"])
            return ok()
        for t in g["tag"]:
            if t["id"] == target:
                t["name"] = body.get("name", t["name"])
                t["order"] = body.get("order", t["order"])
                return ok()
    return err("invalid_parameter", "id")


@api("POST", "externalcontact/del_corp_tag")
def del_corp_tag(state, body, q):
    tag_ids, group_ids = set(body.get("tag_id") or []), set(body.get("group_id") or [])
    if not tag_ids and not group_ids:
        return err("invalid_parameter", "tag_id or group_id is required")
    for gid in list(state.tag_groups):
        group = state.tag_groups[gid]
        group["tag"] = [t for t in group["tag"] if t["id"] not in tag_ids]
        if gid in group_ids or not group["tag"]:
            del state.tag_groups[gid]  # a group without tags disappears, as in WeCom
    return ok()


@api("POST", "externalcontact/mark_tag")
def mark_tag(state, body, q):
    userid, ext = body.get("userid"), body.get("external_userid")
    info = state.follows.get(userid, {}).get(ext)
    if info is None:
        return err("not_friend")
    known = {t["id"] for g in state.tag_groups.values() for t in g["tag"]}
    add, remove = body.get("add_tag") or [], body.get("remove_tag") or []
    if not add and not remove or any(t not in known for t in add + remove):
        return err("invalid_parameter", "add_tag / remove_tag")
    info["tag_id"] = [t for t in info["tag_id"] if t not in remove] + [t for t in add if t not in info["tag_id"]]
    return ok()


# -- 联系我 and welcome messages -----------------------------------------------------------------------------
@api("POST", "externalcontact/add_contact_way")
def add_contact_way(state, body, q):
    if body.get("type") not in (1, 2) or body.get("scene") not in (1, 2):
        return err("invalid_parameter", "type and scene must be 1 or 2")
    if len(body.get("state") or "") > STATE_MAX:
        return err("invalid_parameter", f"state exceeds {STATE_MAX} characters")
    users = body.get("user") or []
    if not users or any(u not in state.staff for u in users) or (body["type"] == 1 and len(users) != 1):
        return err("invalid_userid", "user")
    config_id = state.new_id("", 32)
    qr = f"https://sandbox.invalid/wecom/contact_way/{config_id}.png" if body["scene"] == 2 else ""
    state.contact_ways[config_id] = {**body, "config_id": config_id, "qr_code": qr}
    return ok(config_id=config_id, **({"qr_code": qr} if qr else {}))


@api("POST", "externalcontact/get_contact_way")
def get_contact_way(state, body, q):
    way = state.contact_ways.get(body.get("config_id", ""))
    return ok(contact_way=way) if way else err("invalid_config_id")


@api("POST", "externalcontact/del_contact_way")
def del_contact_way(state, body, q):
    return ok() if state.contact_ways.pop(body.get("config_id", ""), None) else err("invalid_config_id")


@api("POST", "externalcontact/send_welcome_msg")
def send_welcome_msg(state, body, q):
    rec = state.welcome_codes.get(body.get("welcome_code", ""))
    if rec is None or rec["used"] or state.now() - rec["issued_at"] > WELCOME_CODE_TTL:
        return err("invalid_welcome_code")
    if not body.get("text") and not body.get("attachments"):
        return err("invalid_parameter", "text or attachments is required")
    rec["used"] = True
    state.welcome_sent.append({**rec, "body": body})
    return ok()


# -- group chats -------------------------------------------------------------------------------------------
@api("POST", "externalcontact/groupchat/list")
def groupchat_list(state, body, q):
    limit = int(body.get("limit") or 100)
    if limit < 1 or limit > 1000:
        return err("invalid_parameter", "limit must be 1 to 1000")
    owners = set((body.get("owner_filter") or {}).get("userid_list") or [])
    chats = [c for c in state.group_chats.values() if not owners or c["owner"] in owners]
    start = int(body.get("cursor") or 0)
    page = chats[start:start + limit]
    nxt = str(start + limit) if start + limit < len(chats) else ""
    return ok(group_chat_list=[{"chat_id": c["chat_id"], "status": c["status"]} for c in page], next_cursor=nxt)


@api("POST", "externalcontact/groupchat/get")
def groupchat_get(state, body, q):
    chat = state.group_chats.get(body.get("chat_id", ""))
    if chat is None:
        return err("invalid_chat_id")
    return ok(group_chat={k: v for k, v in chat.items() if k != "status"})
