"""A campaign's stats (campaigns.stats, the numbers GET /api/v1/campaigns/{id} answers) laid out for the page:
the funnel, a table per store and per staff member, and any key the stats gain later shown as it comes."""
from __future__ import annotations

import base64
import binascii

from config.errors import InvalidInput

LABELS = {"targeted": "目标", "sent": "已提交", "failed": "失败", "confirmed": "已确认", "delivered": "已送达",
          "converted": "已转化", "skipped": "跳过", "unknown": "结果未知", "holdout": "对照组", "lift": "提升"}
TABLE_PAGE = 50  # stores or staff members per page of a breakdown table
FUNNEL = ("targeted", "sent", "confirmed", "delivered", "converted")
BREAKDOWNS = {"per_store": "门店", "per_staff": "员工"}
REASONS = {"no_wecom_contact": "无企微好友", "no_staff": "无跟进员工", "frequency_cap": "频次上限",
           "monthly_quota": "本月群发已满", "always_quiet": "全天免打扰", "cancelled": "已取消",
           "no_oa_follower": "未关注公众号", "oa_unfollowed": "已取关公众号", "no_mp_openid": "无小程序身份",
           "no_subscribe_grant": "未授权订阅", "outcome_unknown": "结果未知", "user_block": "用户拒收",
           "system_failed": "微信系统失败", "holdout": "对照组"}


def label(key: str) -> str:
    """The Chinese label of a stats key (the key itself for one this page does not know yet)."""
    return f"{LABELS[key]} ({key})" if key in LABELS else key


def reason_label(reason: str) -> str:
    return f"{REASONS[reason]} ({reason})" if reason in REASONS else reason


def _scalars(bucket: dict) -> list[str]:
    known = [k for k in FUNNEL + ("failed",) if k in bucket]
    return known + sorted(k for k, v in bucket.items() if k not in known and isinstance(v, (int, float)))


def name_cursor(name: str) -> str:
    """The cursor of a breakdown table that continues after the row named `name`."""
    return base64.urlsafe_b64encode(name.encode()).decode()


def decode_name_cursor(cursor: str | None) -> str | None:
    """The row name a breakdown cursor continues after; InvalidInput for one this page did not hand out."""
    if not cursor:
        return None
    try:
        name = base64.b64decode(cursor.encode(), altchars=b"-_", validate=True).decode()
    except (binascii.Error, ValueError):
        name = None
    if not name or name_cursor(name) != cursor:
        raise InvalidInput("cursor: not a cursor this page handed out")
    return name


def layout(stats: dict, after: dict[str, str | None] | None = None, paged: bool = True) -> dict:
    """What the results page shows: funnel steps, the totals, the breakdown tables (a page of TABLE_PAGE rows by
    name after `after[table]`, or every row unless `paged`) and every other key."""
    limit = TABLE_PAGE if paged else None
    funnel = [{"key": k, "label": LABELS.get(k, k), "value": stats[k]} for k in FUNNEL if k in stats]
    columns = _scalars(stats)
    reasons = sorted({r for b in [stats, *[row for key in BREAKDOWNS for row in stats.get(key, {}).values()]]
                      for r in (b.get("skipped") or {})})
    tables = []
    for key, title in BREAKDOWNS.items():
        start = (after or {}).get(key)
        named = [(n, b) for n, b in sorted(stats.get(key, {}).items()) if start is None or n > start]
        page = named if limit is None else named[:limit]
        rows = [{"name": name, "values": [bucket.get(c, 0) for c in columns],
                 "skipped": [(bucket.get("skipped") or {}).get(r, 0) for r in reasons]} for name, bucket in page]
        more = limit is not None and len(named) > limit
        tables.append({"key": key, "title": title, "rows": rows, "next_cursor": name_cursor(page[-1][0]) if more
                       else None})
    shown = set(columns) | {"skipped", *BREAKDOWNS}
    extra = {k: v for k, v in stats.items() if k not in shown}
    return {"funnel": funnel, "columns": columns, "reasons": reasons, "tables": tables, "extra": extra,
            "total": {"values": [stats.get(c, 0) for c in columns],
                      "skipped": [(stats.get("skipped") or {}).get(r, 0) for r in reasons]},
            "chart": {"kind": "funnel", "labels": [f["label"] for f in funnel], "values": [f["value"] for f in funnel]}}


def rows_for_csv(stats: dict) -> tuple[list[str], list[list]]:
    """The results as CSV: a header and one row for the total, each store and each staff member."""
    shaped = layout(stats, paged=False)
    header = ["scope", "name", *shaped["columns"], *[f"skipped:{r}" for r in shaped["reasons"]]]
    rows = [["total", "", *shaped["total"]["values"], *shaped["total"]["skipped"]]]
    for table in shaped["tables"]:
        scope = "store" if table["key"] == "per_store" else "staff"
        rows += [[scope, r["name"], *r["values"], *r["skipped"]] for r in table["rows"]]
    return header, rows
