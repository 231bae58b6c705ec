"""Auto-tagging rules: a tag put on when a member enters a segment or says a keyword, attributed to the rule.

Local tags change at once; the WeCom side of every tag change made in Siyu (rules, the API, channel codes)
is queued in `segment_wecom_tag_changes` by the `on_tag` listener and mirrored with mark_tag by
`segments.jobs.sync_wecom_tags` after the transaction commits.
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from membership.models import MemberTag, Tag, TimelineEvent
from membership.tags import tag_member, untag_member
from config.database import on_transaction_end
from config.queue import enqueue
from segments.models import TagRule, WecomTagChange


def source_of(rule: TagRule) -> str:
    """The `member_tags.source` that attributes a tag to a rule."""
    return f"rule:{rule.id}"


def rules_for_segment(session: Session, segment_id: int) -> list[TagRule]:
    """Active rules triggered by a segment."""
    return list(session.scalars(select(TagRule).where(TagRule.segment_id == segment_id, TagRule.active)))


def on_entered(session: Session, segment_rules: list[TagRule], member_id: int) -> None:
    """Apply each rule's tag to a member who entered its segment."""
    for rule in segment_rules:
        apply(session, rule, member_id)


def on_left(session: Session, segment_rules: list[TagRule], member_id: int) -> None:
    """Take a rule's tag off a member who left, when the rule says so and the rule put it there."""
    for rule in segment_rules:
        if not rule.remove_on_leave:
            continue
        link = session.get(MemberTag, (member_id, rule.tag_id))
        if link is None or link.source != source_of(rule):  # a hand-put tag is not the rule's to remove
            continue
        untag_member(session, member_id, session.get(Tag, rule.tag_id), source=source_of(rule))


def apply(session: Session, rule: TagRule, member_id: int) -> bool:
    """Put a rule's tag on a member; True when it was not there before."""
    return tag_member(session, member_id, session.get(Tag, rule.tag_id), source=source_of(rule))


def message_keywords(data: dict) -> tuple[set[str], str]:
    """The jieba keywords of a message (computed when the writer did not), and its text."""
    text = str(data.get("text") or "")
    keywords = data.get("keywords")
    if not isinstance(keywords, list):
        import jieba

        keywords = [w for w in jieba.lcut(text) if w.strip()]
    return {str(k) for k in keywords}, text


def keyword_rules_match(rule_keywords: list[str], keywords: set[str], text: str) -> bool:
    """A rule keyword is among the message's keywords, or (when jieba split it) appears in its text."""
    return any(k in keywords or (k and k in text) for k in rule_keywords)


def apply_keyword_rules(session: Session, event_id: int) -> list[int]:
    """Apply every keyword rule a `message.received` event matches; the ids of rules that tagged."""
    event = session.get(TimelineEvent, event_id)
    if event is None or event.type != "message.received":
        return []
    keywords, text = message_keywords(event.data or {})
    fired = []
    for rule in session.scalars(select(TagRule).where(TagRule.keywords.is_not(None), TagRule.active)):
        if (rule.keywords and keyword_rules_match(rule.keywords, keywords, text)
                and apply(session, rule, event.member_id)):
            fired.append(rule.id)
    return fired


def queue_wecom(session: Session, member_id: int, tag_id: int, *, add: bool, rule_id: int | None) -> None:
    """Queue a tag change for WeCom; one sync job is enqueued per transaction, after it commits."""
    session.add(WecomTagChange(member_id=member_id, tag_id=tag_id, add=add, rule_id=rule_id))
    if not session.info.get("segments_wecom_sync"):
        from segments.jobs import sync_wecom_tags  # jobs imports this module

        session.info["segments_wecom_sync"] = True
        on_transaction_end(session, lambda: session.info.pop("segments_wecom_sync", None))
        enqueue(sync_wecom_tags, queue="low", session=session)
