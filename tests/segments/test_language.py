"""The definition language: what parses, and errors that point at the offending node."""
from __future__ import annotations

import pytest

from segments.exceptions import InvalidDefinition
from segments.graph import depends_on, relative_dates, resolve
from segments.language import All, EventLeaf, TraitLeaf, parse


def test_a_nested_definition_parses_into_typed_nodes():
    """Given CONTRACT §4's example, when parsed, then the nodes carry typed operands and defaults."""
    node = parse({"all": [{"event": "booking.completed", "count": {"gte": 2}, "within_days": 90,
                           "where": {"service": "eye-test"}},
                          {"not": {"event": "groupbuy.paid", "within_days": 30}},
                          {"trait": "age", "op": "gte", "value": 18}]})
    assert isinstance(node, All)
    eye = node.all[0]
    assert isinstance(eye, EventLeaf) and eye.count.bounds() == (("gte", 2),) and eye.where_key
    assert node.all[1].not_.count.bounds() == (("gte", 1),)  # count defaults to gte 1
    age = node.all[2]
    assert isinstance(age, TraitLeaf) and (age.kind, age.operand) == ("number", 18.0)


@pytest.mark.parametrize("raw, path", [
    ({"all": [{"tag": "VIP"}, {"trait": "city", "op": "near", "value": 1}]}, "$.all[1].op"),
    ({"any": [{"not": {"event": "no.such.type"}}]}, "$.any[0].not.event"),
    ({"all": []}, "$.all"),
    ({"all": [{"tag": "VIP", "store": "S001"}]}, "$.all[0]"),
    ({"trait": "city", "op": "gt", "value": "上海"}, "$"),
    ({"trait": "age", "op": "in", "value": [1, "a"]}, "$"),
    ({"event": "booking.completed", "count": {}}, "$.count"),
    ({"event": "booking.completed", "within_days": 0}, "$.within_days"),
    ({"channel": "email"}, "$.channel"),
    ({"all": [{"tag": "VIP"}], "any": [{"tag": "VIP"}]}, "$"),
    ([1, 2], "$"),
])
def test_an_invalid_definition_names_the_offending_node(raw, path):
    """Given a broken definition, when parsed, then the error's path points at the node at fault."""
    with pytest.raises(InvalidDefinition) as err:
        parse(raw)
    assert err.value.path == path


def test_segment_references_resolve_and_cycles_are_refused():
    """Given stored segments that reference each other, when resolved, then a cycle is refused at its leaf."""
    stored = {1: {"tag": "VIP"}, 2: {"all": [{"segment": 1}, {"store": "S001"}]}, 3: {"segment": 4}, 4: {"segment": 3}}
    node = parse({"any": [{"segment": 2}, {"channel": "wecom"}]})
    refs = resolve(node, stored.get)
    assert set(refs) == {1, 2}
    assert depends_on(node, refs) == ["identity", "store", "tag:VIP"]
    with pytest.raises(InvalidDefinition, match="cycle") as err:
        resolve(parse({"all": [{"tag": "x"}, {"segment": 3}]}), stored.get)
    assert err.value.path == "$.all[1].segment"
    with pytest.raises(InvalidDefinition, match="cycle"):
        resolve(parse({"segment": 1}), {1: {"segment": 5}, 5: {"segment": 1}}.get, self_id=1)
    with pytest.raises(InvalidDefinition, match="does not exist"):
        resolve(parse({"not": {"segment": 99}}), stored.get)


def test_dependencies_follow_derived_traits_and_relative_dates_are_flagged():
    """Given leaves on derived traits and windows, then the change keys and the daily flag say so."""
    node = parse({"all": [{"trait": "count.booking.completed", "op": "gte", "value": 2},
                          {"trait": "last_seen_at", "op": "within_last_days", "value": 30}]})
    keys = depends_on(node, {})
    assert {"event:booking.completed", "event:*seen", "trait:last_seen_at"} <= set(keys)
    assert relative_dates(node, {}) is True
    assert relative_dates(parse({"event": "booking.completed"}), {}) is False
