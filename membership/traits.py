"""Traits: profile attributes, set by people and integrations or derived from the timeline."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from config.database import upsert
from config.types import utcnow
from membership import hooks
from membership.models import Trait

DERIVED_PREFIXES = ("count.", "last.")
DERIVED_KEYS = ("first_seen_at", "last_seen_at", "total_spent_fen")


def is_derived(key: str) -> bool:
    """True for traits Siyu keeps from the timeline, which nobody may set by hand."""
    return key in DERIVED_KEYS or key.startswith(DERIVED_PREFIXES)


def typed_columns(value: object) -> dict:
    """The typed columns SQL compares for `value`: numbers, ISO datetimes and text each in their own."""
    cols = {"text_value": None, "number_value": None, "time_value": None}
    if isinstance(value, bool):
        cols["number_value"] = float(value)
    elif isinstance(value, (int, float)):
        cols["number_value"] = float(value)
    elif isinstance(value, datetime):
        cols["time_value"] = value
    elif isinstance(value, str):
        cols["text_value"] = value[:300]
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            cols["time_value"] = parsed
    return cols


def set_trait(session: Session, member_id: int, key: str, value: object) -> None:
    """Set one trait (None removes it)."""
    if value is None:
        session.execute(delete(Trait).where(Trait.member_id == member_id, Trait.key == key))
        _notify(session, member_id, key)
        return
    stored = value.isoformat() if isinstance(value, datetime) else value
    cols = typed_columns(value)
    upsert(
        session,
        Trait.__table__,
        {"member_id": member_id, "key": key, "value": stored, "updated_at": utcnow(), **cols},
        ["member_id", "key"],
        {"value": stored, "updated_at": utcnow(), **cols},
    )
    _notify(session, member_id, key)


def _notify(session: Session, member_id: int, key: str) -> None:
    for listener in hooks.TRAIT_LISTENERS:
        listener(session, member_id, key)


def display_value(trait: Trait) -> object:
    """What the API shows: the value as set, else the typed column the counter lives in."""
    if trait.value is not None:
        return trait.value
    if trait.time_value is not None:
        return trait.time_value.isoformat()
    if trait.number_value is not None:
        n = trait.number_value
        return int(n) if n == int(n) else n
    return trait.text_value


def get_traits(session: Session, member_id: int) -> dict[str, object]:
    """All traits of a member, key → value."""
    rows = session.scalars(select(Trait).where(Trait.member_id == member_id).order_by(Trait.key))
    return {t.key: display_value(t) for t in rows}
