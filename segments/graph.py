"""Segment references as a dependency graph, and what each definition depends on.

A `{"segment": id}` leaf is evaluated from the referenced definition, so a reference never reads stale
materialised membership; every evaluator computes each referenced segment once per evaluation, however
often it occurs. Cycles are refused; so are missing segments, and definitions that would be too large or
too deep with their references inlined (`MAX_EXPANDED_NODES`, `MAX_EXPANDED_DEPTH`): twenty references to a
segment of twenty references to one of twenty leaves is already 8,421 nodes, and nothing else bounds it.
"""
from __future__ import annotations

from collections.abc import Callable

from membership.vocabulary import NOT_SEEN, SPEND_SIGN
from segments.exceptions import InvalidDefinition
from segments.language import (
    DATE_OPS, ChannelLeaf, EventLeaf, Node, SegmentLeaf, StaffLeaf, StoreLeaf, TagLeaf, TraitLeaf, children, parse,
)

Refs = dict[int, Node]
ALL = "all"  # the change key that re-checks every segment (a merge)
MAX_EXPANDED_NODES = 10_000  # nodes of a definition with every segment reference replaced by its definition
MAX_EXPANDED_DEPTH = 64  # nesting with references inlined, each reference counting one level (evaluators recurse)


def leaf_paths(node: Node, path: str = "$"):
    """(path, node) for every node of a tree, with the same paths the parser reports."""
    yield path, node
    key = {"All": "all", "AnyOf": "any"}.get(type(node).__name__)
    for i, child in enumerate(children(node)):
        yield from leaf_paths(child, f"{path}.{key}[{i}]" if key else f"{path}.not")


def resolve(root: Node, load: Callable[[int], dict | None], self_id: int | None = None) -> Refs:
    """Every segment `root` reaches, parsed; InvalidDefinition on a missing segment, a cycle or too large a whole."""
    refs: Refs = {}
    done: list[int] = []  # fully visited, each after every segment it references

    def visit(node: Node, stack: tuple[int, ...], where: str | None) -> None:
        for path, leaf in leaf_paths(node):
            if not isinstance(leaf, SegmentLeaf):
                continue
            at = where or f"{path}.segment"
            sid = leaf.segment
            if sid in stack:
                chain = " → ".join(str(s) for s in (*stack, sid))
                raise InvalidDefinition(at, f"segment reference cycle {chain}")
            if sid in refs:  # visited already (a segment on the stack was caught above): once is enough
                continue
            if len(stack) >= MAX_EXPANDED_DEPTH:
                raise InvalidDefinition(at, f"segment references nested more than {MAX_EXPANDED_DEPTH} deep")
            raw = load(sid)
            if raw is None:
                raise InvalidDefinition(at, f"segment {sid} does not exist")
            try:
                refs[sid] = parse(raw)
            except InvalidDefinition as exc:  # a stored definition that no longer parses
                raise InvalidDefinition(at, f"segment {sid} is invalid ({exc})") from None
            visit(refs[sid], (*stack, sid), at)
            done.append(sid)

    visit(root, (self_id,) if self_id is not None else (), None)
    check_expansion(root, refs, done)
    return refs


def expansion(node: Node, known: dict[int, tuple[int, int]]) -> tuple[int, int]:
    """(nodes, depth) of `node` with its references inlined; `known` holds those of the segments it references."""
    if isinstance(node, SegmentLeaf):
        size, depth = known[node.segment]
        return size, depth + 1
    kids = [expansion(child, known) for child in children(node)]
    return 1 + sum(size for size, _ in kids), 1 + max((depth for _, depth in kids), default=0)


def check_expansion(root: Node, refs: Refs, order: list[int] | None = None) -> tuple[int, int]:
    """(nodes, depth) of `root` with references inlined, computed without inlining; InvalidDefinition past a cap."""
    known: dict[int, tuple[int, int]] = {}
    # Each segment after those it references, so every tree is walked once whatever it is shared by.
    for sid in order if order is not None else _post_order(root, refs):
        known[sid] = expansion(refs[sid], known)
    size, depth = expansion(root, known)
    if size > MAX_EXPANDED_NODES or depth > MAX_EXPANDED_DEPTH:
        at, largest = "$", None
        for path, leaf in leaf_paths(root):
            if isinstance(leaf, SegmentLeaf) and (largest is None or known[leaf.segment] > known[largest]):
                at, largest = f"{path}.segment", leaf.segment
        what = f"segment {largest} alone expands to {known[largest][0]:,} nodes" if largest else "no references"
        if size > MAX_EXPANDED_NODES:
            raise InvalidDefinition(at, f"with its segment references inlined the definition has {size:,} nodes, "
                                        f"more than MAX_EXPANDED_NODES = {MAX_EXPANDED_NODES:,} ({what})")
        raise InvalidDefinition(at, f"with its segment references inlined the definition nests {depth} levels deep, "
                                    f"more than MAX_EXPANDED_DEPTH = {MAX_EXPANDED_DEPTH}")
    return size, depth


def _post_order(root: Node, refs: Refs) -> list[int]:
    order: list[int] = []
    seen: set[int] = set()

    def visit(node: Node) -> None:
        for _, leaf in leaf_paths(node):
            if isinstance(leaf, SegmentLeaf) and leaf.segment not in seen:
                seen.add(leaf.segment)
                visit(refs[leaf.segment])
                order.append(leaf.segment)

    visit(root)
    return order


def direct_references(node: Node) -> set[int]:
    """The segment ids a definition refers to itself (not those its references refer to)."""
    return {leaf.segment for _, leaf in leaf_paths(node) if isinstance(leaf, SegmentLeaf)}


def _leaves(root: Node, refs: Refs):
    # Each definition's own leaves once (references are not followed into at each occurrence).
    for tree in (root, *(refs[sid] for sid in _post_order(root, refs))):
        for _, leaf in leaf_paths(tree):
            if type(leaf) in DEPENDS:
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
