"""The console's menu: one entry per page, shown to the roles that may open it (the page checks again)."""
from __future__ import annotations

from dataclasses import dataclass

from membership.access import Principal
from membership.models import Role


@dataclass(frozen=True)
class Entry:
    label: str
    path: str
    roles: tuple[Role, ...]  # besides admin; empty: admin only


ALL = (Role.marketer, Role.store_manager, Role.staff)
# A new page (campaigns, group-buy, bookings, tasks) is one line here and its module in siyu.packages.ROUTERS.
NAV = (
    Entry("概览", "/console/", (Role.marketer, Role.store_manager)),
    Entry("会员", "/console/members", ALL),
    Entry("人群", "/console/segments", (Role.marketer,)),
    Entry("活动", "/console/campaigns", (Role.marketer,)),
    Entry("拼团", "/console/groupbuy", (Role.marketer, Role.store_manager)),
    Entry("预约", "/console/bookings", (Role.marketer, Role.store_manager)),
    Entry("运营", "/console/ops", (Role.marketer, Role.store_manager)),
    Entry("任务", "/console/tasks", (Role.marketer, Role.store_manager)),
    Entry("工作台", "/console/workbench", (Role.staff,)),
)


def visible(who: Principal | None, current: str) -> list[dict]:
    """The entries `who` may open, the current one marked."""
    if who is None:
        return []
    return [{"label": e.label, "path": e.path,
             "current": current == e.path or (e.path != "/console/" and current.startswith(e.path))}
            for e in NAV if who.allows(*e.roles)]
