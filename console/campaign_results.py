"""A campaign's stats (campaigns.stats, the numbers GET /api/v1/campaigns/{id} answers) laid out for the page:
the funnel, a table per store and per staff member, and any key the stats gain later shown as it comes."""
from __future__ import annotations

LABELS = {"targeted": "目标", "sent": "已提交", "failed": "失败", "confirmed": "已确认", "delivered": "已送达",
          "converted": "已转化", "skipped": "跳过", "holdout": "对照组", "lift": "提升"}
FUNNEL = ("targeted", "sent", "confirmed", "delivered", "converted")
BREAKDOWNS = {"per_store": "门店", "per_staff": "员工"}
REASONS = {"no_wecom_contact": "无企微好友", "no_staff": "无跟进员工", "frequency_cap": "频次上限",
           "monthly_quota": "本月群发已满", "always_quiet": "全天免打扰", "cancelled": "已取消"}


def label(key: str) -> str:
    """The Chinese label of a stats key (the key itself for one this page does not know yet)."""
    return f"{LABELS[key]} ({key})" if key in LABELS else key


def reason_label(reason: str) -> str:
    return f"{REASONS[reason]} ({reason})" if reason in REASONS else reason


def _scalars(bucket: dict) -> list[str]:
    known = [k for k in FUNNEL + ("failed",) if k in bucket]
    return known + sorted(k for k, v in bucket.items() if k not in known and isinstance(v, (int, float)))


def layout(stats: dict) -> dict:
    """What the results page shows: funnel steps, the totals, the breakdown tables and every other key."""
    funnel = [{"key": k, "label": LABELS.get(k, k), "value": stats[k]} for k in FUNNEL if k in stats]
    columns = _scalars(stats)
    reasons = sorted({r for b in [stats, *[row for key in BREAKDOWNS for row in stats.get(key, {}).values()]]
                      for r in (b.get("skipped") or {})})
    tables = []
    for key, title in BREAKDOWNS.items():
        rows = [{"name": name, "values": [bucket.get(c, 0) for c in columns],
                 "skipped": [(bucket.get("skipped") or {}).get(r, 0) for r in reasons]}
                for name, bucket in sorted(stats.get(key, {}).items())]
        tables.append({"key": key, "title": title, "rows": rows})
    shown = set(columns) | {"skipped", *BREAKDOWNS}
    extra = {k: v for k, v in stats.items() if k not in shown}
    return {"funnel": funnel, "columns": columns, "reasons": reasons, "tables": tables, "extra": extra,
            "total": {"values": [stats.get(c, 0) for c in columns],
                      "skipped": [(stats.get("skipped") or {}).get(r, 0) for r in reasons]},
            "chart": {"kind": "funnel", "labels": [f["label"] for f in funnel], "values": [f["value"] for f in funnel]}}


def rows_for_csv(stats: dict) -> tuple[list[str], list[list]]:
    """The results as CSV: a header and one row for the total, each store and each staff member."""
    shaped = layout(stats)
    header = ["scope", "name", *shaped["columns"], *[f"skipped:{r}" for r in shaped["reasons"]]]
    rows = [["total", "", *shaped["total"]["values"], *shaped["total"]["skipped"]]]
    for table in shaped["tables"]:
        scope = "store" if table["key"] == "per_store" else "staff"
        rows += [[scope, r["name"], *r["values"], *r["skipped"]] for r in table["rows"]]
    return header, rows
