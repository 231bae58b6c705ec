"""`siyu sync wecom`: reconcile stores, staff, tags, customers, relations and group chats with WeCom.

Idempotent (a second run changes nothing) and resumable: every few pages of customers are written
in one transaction together with a checkpoint (the cursor, and which relations and tags the run has
seen so far), so a run that is killed continues where it stopped and still reconciles removals.
Removals are guarded (webhooks.wecom.sync_guard): an answer that would remove too much at once is refused.
"""
from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, fields

from sqlalchemy import select

from bot.clients import wecom_client
from bot.errors import PermanentAPIError, TransportError
from bot.transport import RetryPolicy
from bot.wecom import BATCH_USERIDS
from config.database import session_scope
from config.settings import get_settings
from membership.groups import ChangeSummary, active_chat_ids, dismiss_chat, upsert_chat
from membership.models import Relation, RelationStatus, Staff, StaffSource, Store, Tag
from membership.tags import ensure_tag
from webhooks.models import SyncCheckpoint
from webhooks.wecom.sync_guard import Shrink, refusal
from webhooks.wecom.sync_write import (
    Contact,
    add_member_tags,
    drop_member_tags,
    end_relations,
    plan_member_tags,
    upsert_members,
    upsert_relations,
    vanished_relations,
)

log = logging.getLogger(__name__)
CHECKPOINT = "wecom"
READ_TRIES = 4  # a read that timed out or met a gateway error is asked again, up to this many times in all
ROOT_DEPARTMENT = 1


@dataclass
class SyncReport:
    """What one run changed (all zero when nothing did) and what it saw."""

    stores_created: int = 0
    staff_created: int = 0
    staff_updated: int = 0
    staff_deactivated: int = 0
    tags_created: int = 0
    members_created: int = 0
    members_merged: int = 0
    identities_added: int = 0
    relations_added: int = 0
    relations_updated: int = 0
    relations_ended: int = 0
    member_tags_added: int = 0
    member_tags_removed: int = 0
    group_chats_created: int = 0
    group_chats_updated: int = 0
    group_chats_dismissed: int = 0
    group_members_joined: int = 0
    group_members_left: int = 0
    contacts_seen: int = 0
    group_chats_seen: int = 0
    group_members_seen: int = 0
    resumed: bool = False

    @property
    def changes(self) -> int:
        """How many rows the run created, changed or ended."""
        skip = {"contacts_seen", "group_chats_seen", "group_members_seen", "resumed"}
        return sum(getattr(self, f.name) for f in fields(self) if f.name not in skip)


# -- stores and staff ---------------------------------------------------------------------------------
def _sync_staff(client, report: SyncReport, share: float, allow: bool) -> dict[str, int]:
    """Stores from the root's sub-departments, staff from user/list; returns userid -> staff id.

    Only staff WeCom's directory has listed (source `wecom`) are deactivated when it stops listing them,
    and not at all when that would deactivate more than `share` of them (unless `allow`).
    """
    departments = client.list_departments().get("department", [])
    users = client.list_users(ROOT_DEPARTMENT).get("userlist", [])
    parent = {d["id"]: d.get("parentid") for d in departments}
    listed = {u["userid"]: u for u in users}
    with session_scope() as s:
        existing = {st.userid: st for st in s.scalars(select(Staff))}
        governed = [st for st in existing.values()
                    if st.active and (st.source == StaffSource.wecom.value or st.userid in listed)]
        leaving = [st for st in governed if st.userid not in listed or listed[st.userid].get("status", 1) != 1]
        refused = refusal([Shrink("deactivate", "active staff", len(governed), len(leaving))], share, allow,
                          "nothing was changed")
        if refused:
            raise refused
        stores = {}
        for d in departments:
            if d.get("parentid") != ROOT_DEPARTMENT:
                continue
            code = f"wecom-{d['id']}"
            store = s.scalar(select(Store).where(Store.code == code)) or \
                s.scalar(select(Store).where(Store.name == d["name"]))
            if store is None:
                store = Store(code=code, name=d["name"])
                s.add(store)
                s.flush()
                report.stores_created += 1
            stores[d["id"]] = store.id
        for u in users:
            store_id = _store_of(u.get("main_department") or (u.get("department") or [None])[0], parent, stores)
            active = u.get("status", 1) == 1
            st = existing.get(u["userid"])
            if st is None:
                s.add(Staff(userid=u["userid"], name=u.get("name") or u["userid"], store_id=store_id, active=active,
                            source=StaffSource.wecom.value))
                report.staff_created += 1
            elif (st.name, st.store_id, st.active, st.source) != (u.get("name") or st.name, store_id, active,
                                                                   StaffSource.wecom.value):
                st.name, st.store_id, st.active = u.get("name") or st.name, store_id, active
                st.source = StaffSource.wecom.value  # an API-created member WeCom now lists is WeCom's
                report.staff_updated += 1
        for userid, st in existing.items():
            if userid not in listed and st.active and st.source == StaffSource.wecom.value:
                st.active = False
                report.staff_deactivated += 1
        s.flush()
        return {st.userid: st.id for st in s.scalars(select(Staff))}


def _store_of(dept: int | None, parent: dict, stores: dict) -> int | None:
    seen = set()
    while dept is not None and dept not in stores and dept not in seen:
        seen.add(dept)
        dept = parent.get(dept)
    return stores.get(dept)


# -- tags --------------------------------------------------------------------------------------------------
def _sync_tags(client, report: SyncReport) -> dict[str, int]:
    """The corp tag catalogue into `tags`; returns WeCom tag id -> local tag id."""
    groups = client.list_corp_tags().get("tag_group", [])
    out = {}
    with session_scope() as s:
        known = {t.wecom_tag_id for t in s.scalars(select(Tag).where(Tag.wecom_tag_id.is_not(None)))}
        for g in groups:
            for t in g.get("tag", []):
                tag = ensure_tag(s, t["name"], g.get("group_name", ""), wecom_tag_id=t["id"])
                report.tags_created += t["id"] not in known
                out[t["id"]] = tag.id
        s.flush()
        return {k: v for k, v in out.items()}


# -- contacts ----------------------------------------------------------------------------------------------
def _write_page(corp_id: str, items: list[dict], staff_ids: dict[str, int], tag_ids: dict[str, int],
                seen: set, wanted_tags: dict, report: SyncReport, checkpoint: dict) -> None:
    contacts: dict[str, Contact] = {}
    for item in items:
        ec, info = item["external_contact"], item["follow_info"]
        c = contacts.setdefault(ec["external_userid"],
                                Contact(ec["external_userid"], ec.get("name"), ec.get("unionid") or None))
        c.follows.append(info)
    with session_scope() as s:
        member_of = upsert_members(s, corp_id, list(contacts.values()), report)
        pairs = []
        for c in contacts.values():
            member_id = member_of[c.external_userid]
            tags = wanted_tags.setdefault(member_id, set())
            for info in c.follows:
                staff_id = staff_ids.get(info["userid"])
                if staff_id is None:
                    continue
                pairs.append((staff_id, member_id, info))
                seen.add((staff_id, member_id))
                tags.update(tag_ids[t] for t in info.get("tag_id", []) if t in tag_ids)
        upsert_relations(s, pairs, report)
        _save_checkpoint(s, checkpoint)
    report.contacts_seen += len(items)


# -- group chats -------------------------------------------------------------------------------------------
def _sync_group_chats(client, corp_id: str, report: SyncReport) -> set[str]:
    """Every chat WeCom lists, applied through membership.groups; returns the chat ids it listed."""
    listed: set[str] = set()
    for item in client.iter_group_chats():
        chat_id = item["chat_id"]
        listed.add(chat_id)
        try:
            detail = client.get_group_chat(chat_id).get("group_chat") or {}
        except PermanentAPIError as exc:
            log.info("group chat %s: not readable (%s), left as stored", chat_id, exc)
            continue
        if not detail.get("member_list"):
            # A chat always holds its owner: an empty list is a broken answer, not everyone leaving.
            log.warning("group chat %s: WeCom answered no members, left as stored", chat_id)
            continue
        # One transaction per chat: a chat is consistent on its own, and the API read dominates anyway.
        with session_scope() as s:
            _count_groups(report, upsert_chat(s, {**detail, "chat_id": chat_id}, corp_id))
        report.group_chats_seen += 1
        report.group_members_seen += len(detail.get("member_list") or [])
    return listed


def _count_groups(report: SyncReport, summary: ChangeSummary) -> None:
    report.group_chats_created += summary.chats_created
    report.group_chats_updated += summary.chats_updated
    report.group_chats_dismissed += summary.chats_dismissed
    report.group_members_joined += summary.members_joined
    report.group_members_left += summary.members_left
    report.members_created += summary.members_created
    report.identities_added += summary.identities_added
    report.members_merged += summary.members_merged


def _save_checkpoint(s, state: dict | None) -> None:
    row = s.get(SyncCheckpoint, CHECKPOINT)
    if state is None:
        if row is not None:
            s.delete(row)
    else:
        # `seen` and `tags` are filled in by _write_page before this runs, within the same transaction.
        data = {"chunk": state["chunk"], "cursor": state["cursor"],
                "seen": sorted(state.get("seen", ())),
                "tags": {str(m): sorted(t) for m, t in state.get("tags", {}).items()}}
        if row is None:
            s.add(SyncCheckpoint(name=CHECKPOINT, state=data))
        else:
            row.state = data


def _load_checkpoint() -> dict | None:
    with session_scope() as s:
        row = s.get(SyncCheckpoint, CHECKPOINT)
        return dict(row.state) if row else None


def sync_wecom(progress: bool = True, client=None, stop_after_writes: int | None = None,
               pages_per_commit: int = 10, allow_shrink: bool = False) -> SyncReport:
    """Reconcile everything from WeCom; `stop_after_writes` simulates an interruption (tests).

    Raises ShrinkRefused, having removed nothing, when WeCom's answer would remove more than
    SIYU_SYNC_MAX_SHRINK of the staff, relations, group chats or tags Siyu holds, unless `allow_shrink`.
    """
    client = _RetriedReads(client or wecom_client(), RetryPolicy(backoff_base=get_settings().wechat_backoff_base))
    corp_id = client.creds.corp_id
    share = get_settings().sync_max_shrink
    report = SyncReport()
    start = _load_checkpoint()
    report.resumed = start is not None
    staff_ids = _sync_staff(client, report, share, allow_shrink)
    tag_ids = _sync_tags(client, report)
    follow_users = set(client.list_follow_users())
    follow = sorted(u for u in follow_users if u in staff_ids)
    chunks = [follow[i:i + BATCH_USERIDS] for i in range(0, len(follow), BATCH_USERIDS)]
    # What earlier pages saw travels in the checkpoint, so a resumed run still reconciles removals.
    seen: set[tuple[int, int]] = {tuple(p) for p in (start or {}).get("seen", [])}
    wanted_tags: dict[int, set[int]] = {int(m): set(t) for m, t in (start or {}).get("tags", {}).items()}
    writes = 0
    first_chunk, cursor = (start["chunk"], start["cursor"]) if start else (0, "")
    with _progress(progress) as bar:
        task = bar.add_task("customers", total=None) if bar else None
        for index in range(first_chunk, len(chunks)):
            pending: list[dict] = []
            pages = 0
            while True:
                page = client.batch_get_by_user(chunks[index], cursor=cursor)
                pending += page.get("external_contact_list", [])
                cursor = page.get("next_cursor") or ""
                pages += 1
                # Several pages per transaction: fewer commits, and the checkpoint still moves every few pages.
                if pages % pages_per_commit == 0 or not cursor:
                    checkpoint = {"chunk": index + (0 if cursor else 1), "cursor": cursor, "seen": seen,
                                  "tags": wanted_tags}
                    _write_page(corp_id, pending, staff_ids, tag_ids, seen, wanted_tags, report, checkpoint)
                    if bar:
                        bar.update(task, advance=len(pending), description=f"customers ({report.contacts_seen})")
                    pending = []
                    writes += 1
                    if stop_after_writes and writes >= stop_after_writes:
                        raise SyncInterrupted(report)
                if not cursor:
                    break
        if bar:
            bar.update(task, description="group chats")
        chats = _sync_group_chats(client, corp_id, report)
    _remove_vanished(corp_id, [staff_ids[u] for u in follow], follow_users, seen, wanted_tags, chats, report,
                     share, allow_shrink)
    log.info("sync wecom: %s", asdict(report))
    return report


def _remove_vanished(corp_id: str, follow_ids: list[int], follow_users: set[str], seen: set, wanted_tags: dict,
                     chats: set[str], report: SyncReport, share: float, allow: bool) -> None:
    """End what WeCom no longer lists (relations, `wecom` tags, group chats), unless it is too much at once."""
    with session_scope() as s:
        held, gone = vanished_relations(s, follow_ids, seen)
        tags = plan_member_tags(s, wanted_tags, remove=True)
        stored_chats = active_chat_ids(s)
        dismissed = sorted(stored_chats - chats)
        # Staff Siyu has customers of, whom WeCom no longer lists as allowed to have customers.
        holders = set(s.scalars(select(Staff.userid).join(Relation, Relation.staff_id == Staff.id).where(
            Staff.active.is_(True), Relation.status == RelationStatus.active.value).distinct()))
        refused = refusal([
            Shrink("drop", "staff with customers from the follow-user list", len(holders), len(holders - follow_users)),
            Shrink("end", "relations", held, len(gone)),
            Shrink("remove", "WeCom tags of customers", tags.held, len(tags.drops)),
            Shrink("dismiss", "group chats", len(stored_chats), len(dismissed)),
        ], share, allow, "what it added or changed is kept, nothing was ended or removed")
        add_member_tags(s, tags, report)
        if not refused:
            end_relations(s, gone, report)
            drop_member_tags(s, tags, report)
            # WeCom lists every chat that still exists, so a stored chat missing here was dismissed (its callback lost).
            for chat_id in dismissed:
                _count_groups(report, dismiss_chat(s, chat_id, corp_id))
        # Refused or not, the next run starts over: resuming would re-apply this answer's removals.
        _save_checkpoint(s, None)
    if refused:
        raise refused


class _RetriedReads:
    """The client's reads the sync makes, each asked again after a TransportError; nothing else of it.

    A run of a large chain makes hundreds of calls; one lost to a timeout or a 502 should cost a retry, not the run.
    A generator's pages (group chats) are not retried: its error ends the run, which resumes from its checkpoint.
    """

    READS = frozenset({"list_departments", "list_users", "list_corp_tags", "list_follow_users", "batch_get_by_user",
                       "iter_group_chats", "get_group_chat"})

    def __init__(self, client, policy: RetryPolicy):
        self._client = client
        self._policy = policy  # the transport's backoff: exponential, with jitter, capped
        self.creds = client.creds

    def __getattr__(self, name: str):
        if name not in self.READS:  # a write asked again after a lost answer would be made twice
            raise AttributeError(f"the sync reads WeCom only: {name} is not one of its reads")
        read = getattr(self._client, name)

        def retried(*args, **kwargs):
            for attempt in range(READ_TRIES):
                try:
                    return read(*args, **kwargs)
                except TransportError as exc:
                    if attempt == READ_TRIES - 1:
                        raise
                    delay = self._policy.backoff(attempt)
                    log.warning("sync wecom: %s; asking again in %.2fs", exc, delay)
                    time.sleep(delay)

        return retried


class SyncInterrupted(Exception):
    """Raised by `stop_after_pages` to imitate a killed run."""

    def __init__(self, report: SyncReport):
        super().__init__("sync interrupted")
        self.report = report


class _NoBar:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _progress(enabled: bool):
    if not enabled:
        return _NoBar()
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    # On stderr: stdout carries the command's result alone.
    return Progress(SpinnerColumn(), TextColumn("[bold]sync wecom[/bold] {task.description}"), BarColumn(),
                    MofNCompleteColumn(), TimeElapsedColumn(), transient=False, console=Console(stderr=True))
