"""The segment definition language (CONTRACT §4) as typed, immutable nodes, and its parser.

`parse(raw)` turns JSON into nodes or raises `InvalidDefinition` naming the offending node by path
(`$.all[1].any[0]`). Leaves normalise their operands once here, so both compilers read the same values.
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel, ConfigDict, Field, GetJsonSchemaHandler, TypeAdapter, ValidationError, field_validator, model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from membership.vocabulary import EVENT_TYPES
from segments.exceptions import InvalidDefinition

MAX_DEPTH = 32
MAX_NODES = 500
CHANNELS = {  # CONTRACT §4 channel → identity types that put a member on it
    "wecom": ("wecom_external",),
    "official_account": ("oa_openid",),
    "miniprogram": ("mp_openid",),
    "phone": ("phone",),
}
COMPARE_OPS = ("eq", "ne", "gt", "gte", "lt", "lte")
DATE_OPS = ("within_last_days", "more_than_days_ago", "anniversary_within_days")
TRAIT_OPS = (*COMPARE_OPS, "in", "contains", "exists", "not_exists", *DATE_OPS)
COUNT_OPS = ("eq", "gt", "gte", "lt", "lte")
Scalar = bool | int | float | str


class _Node(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TagLeaf(_Node):
    """Has the tag (in any group unless `group` is given)."""

    tag: str = Field(min_length=1, max_length=60)
    group: str | None = Field(default=None, max_length=60)


class TraitLeaf(_Node):
    """A comparison on one trait's typed column; `kind` and `operand` are derived from `op` and `value`."""

    trait: str = Field(min_length=1, max_length=80)
    op: Literal[TRAIT_OPS]  # type: ignore[valid-type]
    value: Any = None
    # Derived, not part of the language: hidden from the API schema (and refused in input below).
    kind: SkipJsonSchema[Literal["text", "number", "time", "days", "none"]] = "none"
    operand: SkipJsonSchema[Any] = None

    @model_validator(mode="before")
    @classmethod
    def _no_internal_fields(cls, data: Any) -> Any:
        if isinstance(data, dict) and ({"kind", "operand"} & data.keys()):
            raise ValueError("unknown field (allowed: trait, op, value)")
        return data

    @model_validator(mode="after")
    def _typed_operand(self) -> TraitLeaf:
        kind, operand = _operand(self.op, self.value)
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "operand", operand)
        return self


def _operand(op: str, value: Any) -> tuple[str, Any]:
    is_num = isinstance(value, (int, float)) and not isinstance(value, bool)
    if op in ("exists", "not_exists"):
        if value is not None:
            raise ValueError(f"op {op} takes no value")
        return "none", None
    if op in DATE_OPS:
        limit = 366 if op == "anniversary_within_days" else 36500
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= limit:
            raise ValueError(f"op {op} needs a whole number of days from 0 to {limit}")
        return "days", value
    if op in ("eq", "ne"):
        if isinstance(value, str):
            return "text", value[:300]
        if isinstance(value, bool) or is_num:
            return "number", float(value)
        raise ValueError(f"op {op} needs a text, number or boolean value")
    if op in ("gt", "gte", "lt", "lte"):
        if is_num:
            return "number", float(value)
        when = _aware_time(value)
        if when is None:
            # Text order differs between PostgreSQL collations and Python, so it is not offered.
            raise ValueError(f"op {op} needs a number or an ISO 8601 time with offset")
        return "time", when
    if op == "in":
        if not isinstance(value, list) or not 1 <= len(value) <= 1000:
            raise ValueError("op in needs a list of 1 to 1000 values")
        if all(isinstance(v, str) for v in value):
            return "text", tuple(sorted({v[:300] for v in value}))
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            return "number", tuple(sorted({float(v) for v in value}))
        raise ValueError("op in needs a list of texts or a list of numbers, not a mix")
    if op == "contains":
        if not isinstance(value, str) or not value:
            raise ValueError("op contains needs a non-empty text")
        return "text", value
    raise ValueError(f"unknown op {op}")  # pragma: no cover - Literal guards it


def _aware_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


class CountSpec(_Node):
    """Bounds on an event count; every bound given must hold."""

    eq: int | None = Field(default=None, ge=0)
    gt: int | None = Field(default=None, ge=0)
    gte: int | None = Field(default=None, ge=0)
    lt: int | None = Field(default=None, ge=0)
    lte: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _one_bound(self) -> CountSpec:
        if not self.bounds():
            raise ValueError("count needs at least one of eq, gt, gte, lt, lte")
        return self

    def bounds(self) -> tuple[tuple[str, int], ...]:
        """The (op, number) pairs given."""
        return tuple((op, getattr(self, op)) for op in COUNT_OPS if getattr(self, op) is not None)

    def holds(self, n: int) -> bool:
        """Whether count `n` satisfies every bound."""
        return all(_COUNT_CHECK[op](n, k) for op, k in self.bounds())


_COUNT_CHECK = {
    "eq": lambda n, k: n == k, "gt": lambda n, k: n > k, "gte": lambda n, k: n >= k,
    "lt": lambda n, k: n < k, "lte": lambda n, k: n <= k,
}


class EventLeaf(_Node):
    """Count of timeline events of a type (optionally matching `where` on data) in the last `within_days` days."""

    event: str = Field(min_length=1, max_length=40)
    count: CountSpec = CountSpec(gte=1)
    within_days: int | None = Field(default=None, ge=1, le=3650)
    where: dict[str, Scalar] | None = None

    @field_validator("event")
    @classmethod
    def _known_type(cls, v: str) -> str:
        if v not in EVENT_TYPES:
            raise ValueError(f"unknown event type {v!r}")
        return v

    @field_validator("where")
    @classmethod
    def _where(cls, v: dict | None) -> dict | None:
        if not v:
            return None
        if len(v) > 10:
            raise ValueError("where takes at most 10 fields")
        return v

    @property
    def where_key(self) -> str:
        """The counter key of this leaf's filter: '' for none, else a digest of the canonical `where`."""
        return where_key(self.where)


def where_key(where: dict | None) -> str:
    """'' for no filter, else a short digest of the canonical JSON of `where`."""
    if not where:
        return ""
    canonical = json.dumps(where, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha1(canonical.encode()).hexdigest()[:20]


def where_matches(where: dict, data: dict) -> bool:
    """Whether event `data` carries every `where` field with an equal value (True is not 1 here)."""
    for key, want in where.items():
        got = data.get(key)
        if isinstance(want, bool) or isinstance(got, bool):
            if type(got) is not type(want) or got != want:
                return False
        elif got != want or isinstance(got, str) != isinstance(want, str):
            return False
    return True


class StoreLeaf(_Node):
    """The member's home store (by code)."""

    store: str = Field(min_length=1, max_length=40)


class StaffLeaf(_Node):
    """Has an active relation with this staff member (WeCom userid)."""

    staff: str = Field(min_length=1, max_length=64)


class ChannelLeaf(_Node):
    """Has an identity on this channel."""

    channel: Literal["wecom", "official_account", "miniprogram", "phone"]


class SegmentLeaf(_Node):
    """Is a member of another segment (evaluated from that segment's definition)."""

    segment: int = Field(ge=1)


class All(_Node):
    """Every child node holds."""

    all: tuple[Node, ...] = Field(min_length=1)


class AnyOf(_Node):
    """At least one child node holds."""

    any: tuple[Node, ...] = Field(min_length=1)


class Not(_Node):
    """The child node does not hold."""

    not_: Node = Field(alias="not")


Leaf = TagLeaf | TraitLeaf | EventLeaf | StoreLeaf | StaffLeaf | ChannelLeaf | SegmentLeaf
Node = All | AnyOf | Not | Leaf

_NODE = TypeAdapter(Node)


class _DefinitionSchema:
    """Documents a definition in OpenAPI as the node union; `parse` validates it, with paths in its messages."""

    @classmethod
    def __get_pydantic_json_schema__(cls, _core_schema, handler: GetJsonSchemaHandler) -> dict:
        return handler(_NODE.core_schema)


# A definition as the API takes and answers it: raw JSON at run time (`parse` refuses a bad one with the path
# of the offending node, which pydantic's union errors would not give), the node union in the schema.
Definition = Annotated[Any, _DefinitionSchema]

LEAVES: dict[str, type[_Node]] = {  # the key that names a leaf → its model
    "tag": TagLeaf, "trait": TraitLeaf, "event": EventLeaf, "store": StoreLeaf,
    "staff": StaffLeaf, "channel": ChannelLeaf, "segment": SegmentLeaf,
}


def parse(raw: Any) -> Node:
    """Parse a definition; InvalidDefinition names the offending node's path."""
    counter = [0]
    return _parse(raw, "$", 0, counter)


def _parse(raw: Any, path: str, depth: int, counter: list[int]) -> Node:
    counter[0] += 1
    if counter[0] > MAX_NODES:
        raise InvalidDefinition(path, f"a definition has at most {MAX_NODES} nodes")
    if depth > MAX_DEPTH:
        raise InvalidDefinition(path, f"nesting deeper than {MAX_DEPTH}")
    if not isinstance(raw, dict):
        raise InvalidDefinition(path, "a node is a JSON object")
    for key, model in (("all", All), ("any", AnyOf)):
        if key in raw:
            _only(raw, key, path)
            children = raw[key]
            if not isinstance(children, list) or not children:
                raise InvalidDefinition(f"{path}.{key}", "needs a non-empty list of nodes")
            parsed = tuple(_parse(c, f"{path}.{key}[{i}]", depth + 1, counter) for i, c in enumerate(children))
            return model.model_validate({key: parsed})
    if "not" in raw:
        _only(raw, "not", path)
        return Not.model_validate({"not": _parse(raw["not"], f"{path}.not", depth + 1, counter)})
    named = [k for k in LEAVES if k in raw]
    if len(named) != 1:
        found = ", ".join(named) or ", ".join(sorted(raw)) or "nothing"
        raise InvalidDefinition(path, f"a node is one of all, any, not, {', '.join(LEAVES)} (found {found})")
    try:
        return LEAVES[named[0]].model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        where = f"{path}.{loc}" if loc else path
        raise InvalidDefinition(where, f"{named[0]} leaf: {msg}") from None


def _only(raw: dict, key: str, path: str) -> None:
    extra = sorted(k for k in raw if k != key)
    if extra:
        raise InvalidDefinition(path, f"a {key!r} node takes no other fields (found {', '.join(extra)})")


def walk(node: Node):
    """Every node of a tree, depth first (segment references are not followed)."""
    yield node
    for child in children(node):
        yield from walk(child)


def children(node: Node) -> tuple:
    """The direct children of a composite node."""
    if isinstance(node, All):
        return node.all
    if isinstance(node, AnyOf):
        return node.any
    if isinstance(node, Not):
        return (node.not_,)
    return ()
