"""Auto-tagging rules: a tag put on when a member enters a segment or says a keyword, attributed to the rule.

Local tags change at once; the WeCom side of every tag change made in Siyu (rules, the API, channel codes)
is queued by the `on_tag` listener and mirrored with mark_tag after the transaction commits (segments.wecom_tags).
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from membership.models import MemberTag, Tag, TimelineEvent
from membership.tags import tag_member, untag_member
from segments.models import TagRule


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
