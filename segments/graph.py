"""Segment references as a dependency graph, and what each definition depends on.

A `{"segment": id}` leaf is evaluated from the referenced definition (inlined by both compilers), so a
reference never reads stale materialised membership. Cycles are refused; so are missing segments.
"""
from __future__ import annotations

from collections.abc import Callable

from membership.timeline import NOT_SEEN, SPEND_SIGN
from segments.exceptions import InvalidDefinition
from segments.language import (
    DATE_OPS, ChannelLeaf, EventLeaf, Node, SegmentLeaf, StaffLeaf, StoreLeaf, TagLeaf, TraitLeaf, children, parse,
)

Refs = dict[int, Node]
ALL = "all"  # the change key that re-checks every segment (a merge)


def leaf_paths(node: Node, path: str = "$"):
    """(path, node) for every node of a tree, with the same paths the parser reports."""
    yield path, node
    key = {"All": "all", "AnyOf": "any"}.get(type(node).__name__)
    for i, child in enumerate(children(node)):
        yield from leaf_paths(child, f"{path}.{key}[{i}]" if key else f"{path}.not")


def resolve(root: Node, load: Callable[[int], dict | None], self_id: int | None = None) -> Refs:
    """Every segment `root` reaches, parsed; InvalidDefinition on a missing segment or a cycle."""
    refs: Refs = {}

    def visit(node: Node, stack: tuple[int, ...], where: str | None) -> None:
        for path, leaf in leaf_paths(node):
            if not isinstance(leaf, SegmentLeaf):
                continue
            at = where or f"{path}.segment"
            sid = leaf.segment
            if sid in stack:
                chain = " → ".join(str(s) for s in (*stack, sid))
                raise InvalidDefinition(at, f"segment reference cycle {chain}")
            if sid not in refs:
                raw = load(sid)
                if raw is None:
                    raise InvalidDefinition(at, f"segment {sid} does not exist")
                try:
                    refs[sid] = parse(raw)
                except InvalidDefinition as exc:  # a stored definition that no longer parses
                    raise InvalidDefinition(at, f"segment {sid} is invalid ({exc})") from None
            visit(refs[sid], (*stack, sid), at)

    visit(root, (self_id,) if self_id is not None else (), None)
    return refs


def _leaves(node: Node, refs: Refs):
    for _, leaf in leaf_paths(node):
        if isinstance(leaf, SegmentLeaf):
            yield from _leaves(refs[leaf.segment], refs)
        elif not children(leaf) and type(leaf) in DEPENDS:
            yield leaf


def _trait_keys(key: str) -> set[str]:
    keys = {f"trait:{key}"}
    for prefix in ("count.", "last."):  # derived from the timeline by membership
        if key.startswith(prefix):
            keys.add(f"event:{key.removeprefix(prefix)}")
    if key in ("first_seen_at", "last_seen_at"):
        keys.add("event:*seen")
    if key == "total_spent_fen":
        keys.update(f"event:{t}" for t in SPEND_SIGN)
    return keys


DEPENDS: dict[type, Callable] = {  # leaf → change keys that can alter its truth for a member
    TagLeaf: lambda leaf: {f"tag:{leaf.tag}"},
    TraitLeaf: lambda leaf: _trait_keys(leaf.trait),
    EventLeaf: lambda leaf: {f"event:{leaf.event}"},
    StoreLeaf: lambda leaf: {"store"},
    StaffLeaf: lambda leaf: {"relation"},
    ChannelLeaf: lambda leaf: {"identity"},
}


def depends_on(root: Node, refs: Refs) -> list[str]:
    """The change keys a definition depends on, sorted."""
    keys: set[str] = set()
    for leaf in _leaves(root, refs):
        keys |= DEPENDS[type(leaf)](leaf)
    return sorted(keys)


def relative_dates(root: Node, refs: Refs) -> bool:
    """Whether the definition's truth can change with the date alone (windows, date ops)."""
    for leaf in _leaves(root, refs):
        if isinstance(leaf, EventLeaf) and leaf.within_days is not None:
            return True
        if isinstance(leaf, TraitLeaf) and leaf.op in DATE_OPS:
            return True
    return False


def event_leaves(root: Node, refs: Refs) -> list[EventLeaf]:
    """Every event leaf, references followed."""
    return [leaf for leaf in _leaves(root, refs) if isinstance(leaf, EventLeaf)]


def event_change_keys(type_: str, data: dict) -> set[str]:
    """The change keys a timeline event stands for."""
    keys = {f"event:{type_}"}
    if type_ not in NOT_SEEN:
        keys.add("event:*seen")
    if type_ in ("tag.added", "tag.removed") and data.get("tag"):
        keys.add(f"tag:{data['tag']}")
    if type_.startswith("contact."):
        keys.update(("relation", "store", "identity"))
    if type_ in ("oa.subscribed", "oa.scanned", "mp.session", "member.phone_bound"):
        keys.update(("identity", "store"))
    if type_ == "member.merged":
        keys.add(ALL)
    return keys
