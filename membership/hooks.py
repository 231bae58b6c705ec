"""Listeners that higher floors register, so the profile store never imports them.

`on_event(fn)`: fn(session, event) after a timeline event is written (segments re-evaluate, campaigns trigger).
`on_merge(fn)`: fn(session, survivor_id, merged_id) after two members are merged (ledgers, memberships move).
`on_tag(fn)`: fn(session, member_id, tag, added: bool, source) after a tag is put on or taken off (WeCom mark_tag).
`on_trait(fn)`: fn(session, member_id, key) after `set_trait` sets or removes a trait (segments re-check).
"""
from __future__ import annotations

from collections.abc import Callable

EVENT_LISTENERS: list[Callable] = []
MERGE_LISTENERS: list[Callable] = []
TAG_LISTENERS: list[Callable] = []
TRAIT_LISTENERS: list[Callable] = []


def _register(registry: list[Callable], fn: Callable) -> Callable:
    if fn not in registry:
        registry.append(fn)
    return fn


def on_event(fn: Callable) -> Callable:
    """Register `fn(session, event)` for every timeline event written."""
    return _register(EVENT_LISTENERS, fn)


def on_merge(fn: Callable) -> Callable:
    """Register `fn(session, survivor_id, merged_id)` for every merge."""
    return _register(MERGE_LISTENERS, fn)


def on_tag(fn: Callable) -> Callable:
    """Register `fn(session, member_id, tag, added, source)` for every tag change."""
    return _register(TAG_LISTENERS, fn)


def on_trait(fn: Callable) -> Callable:
    """Register `fn(session, member_id, key)` for every trait set or removed through `set_trait`."""
    return _register(TRAIT_LISTENERS, fn)
