"""Out-of-range input on every admin route: huge ids and cursors, NUL characters, far-off years are 4xx, never 5xx.

The routes are read from the app's own OpenAPI schema, so a route added later is walked too.
"""
from __future__ import annotations

import copy
import re
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from config.database import session_scope
from config.pagination import encode_cursor
from membership.identity import IdentityIn, bind
from membership.tags import ensure_tag, tag_member
from tests.conftest import ADMIN_TOKEN
from tests.webhooks.conftest import FakeOA, FakeWeCom

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
HUGE_INTS = [2**63, 2**64]
NUL = "x\x00y"
FAR_TIMES = ["0001-01-01T00:00:00+08:00", "0001-01-01T00:00:00-08:00", "0001-01-01T00:00:00Z",
             "9999-12-31T23:59:59-08:00", "9999-12-31T23:59:59+08:00", "9999-12-31T23:59:59Z"]
PLAIN_STRINGS = ["x", "staff", "admin", "S1"]  # a baseline string must pass a field's pattern to reach the handler
# Baselines of fields whose validators the schema does not show (a mutation must get past the others).
KNOWN = {"match": "contains", "channels": ["official_account"], "definition": {"tag": "x"}, "segment_id": None}


@pytest.fixture
def client(settings, stand_in):
    from siyu.app import create_app

    stand_in(wecom=FakeWeCom(), oa=FakeOA())
    with TestClient(create_app(), raise_server_exceptions=False) as c:
        yield c


def _resolve(schema: dict, spec: dict) -> dict:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    for key in ("anyOf", "oneOf"):
        if key in schema:  # `X | None`: the non-null branch
            branches = [b for b in schema[key] if b.get("type") != "null"]
            return _resolve(branches[0], spec) if branches else {}
    return schema


def _kind(schema: dict) -> str:
    if schema.get("type") == "string" and schema.get("format") == "date-time":
        return "datetime"
    return schema.get("type", "any")


def _baseline(schema: dict, spec: dict):
    """A value that passes `schema`, so that a mutation of one field reaches the handler."""
    schema = _resolve(schema, spec)
    if "enum" in schema:
        return schema["enum"][0]
    kind = _kind(schema)
    if kind == "object":
        return {k: KNOWN[k] if k in KNOWN else _baseline(v, spec) for k, v in schema.get("properties", {}).items()}
    if kind == "array":
        return [_baseline(schema.get("items", {}), spec)] * max(1, schema.get("minItems", 1))
    if kind == "integer":
        return int(max(1, schema.get("minimum", 1)))
    if kind == "boolean":
        return False
    if kind == "datetime":
        return "2999-01-01T00:00:00+08:00"
    if kind == "string":
        pattern = schema.get("pattern")
        return next((s for s in PLAIN_STRINGS if not pattern or re.fullmatch(pattern, s)), "x")
    return "x"


def _bad_values(kind: str, name: str) -> list:
    if kind == "integer":
        return HUGE_INTS
    if kind == "datetime":
        return FAR_TIMES + [NUL]
    if kind == "string":
        return [NUL] + ([encode_cursor(n) for n in HUGE_INTS] if name == "cursor" else [])
    if kind == "any":
        return HUGE_INTS + [NUL]
    return []


def _body_mutations(value, schema: dict, spec: dict, path=()):
    """(path, bad value) for every leaf of a JSON body, and for the body's keys."""
    schema = _resolve(schema, spec)
    kind = _kind(schema)
    if kind == "object" and isinstance(value, dict):
        for key, sub in value.items():
            yield from _body_mutations(sub, schema.get("properties", {}).get(key, {}), spec, (*path, key))
        yield (*path, NUL), "x"  # a NUL in a key
    elif kind == "array" and isinstance(value, list):
        yield from _body_mutations(value[0], schema.get("items", {}), spec, (*path, 0))
    else:
        for bad in _bad_values(kind, path[-1] if path else ""):
            yield path, bad


def _set(body, path, bad):
    if not path:
        return bad
    body = copy.deepcopy(body)
    target = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = bad
    return body


def _requests(spec: dict):
    """(method, url, query, body) of every mutation of every operation under /api/v1."""
    for route, operations in spec["paths"].items():
        if not route.startswith("/api/v1/"):
            continue
        for method, op in operations.items():
            params = [(p, _resolve(p.get("schema", {}), spec)) for p in op.get("parameters", [])]
            path_values = {p["name"]: _baseline(s, spec) for p, s in params if p["in"] == "path"}
            query = {p["name"]: _baseline(s, spec) for p, s in params if p["in"] == "query" and p.get("required")}
            body_schema = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            body = _baseline(body_schema, spec) if body_schema else None

            def url(values, route=route):
                return route.format(**{k: quote(str(v), safe="") for k, v in values.items()})

            for p, s in params:
                for bad in _bad_values(_kind(s), p["name"]):
                    if p["in"] == "path":
                        yield method, url({**path_values, p["name"]: bad}), query, body
                    elif p["in"] == "query":
                        yield method, url(path_values), {**query, p["name"]: bad}, body
            if body_schema:
                for field, bad in _body_mutations(body, body_schema, spec):
                    yield method, url(path_values), query, _set(body, field, bad)


def test_no_out_of_range_input_answers_5xx_on_any_admin_route(client):
    # given some rows for the walked requests to find (a store, staff member, member and tag named like baselines)
    for code in ("x", "S1"):
        client.post("/api/v1/stores", json={"code": code, "name": code}, headers=ADMIN)
    client.post("/api/v1/staff", json={"userid": "x", "name": "x", "store": "x"}, headers=ADMIN)
    with session_scope() as s:
        member = bind(s, [IdentityIn("wecom_external", "wm-x", "corp")], store_id=1, name="x").member
        tag_member(s, member.id, ensure_tag(s, "x", "x"))
    spec = client.app.openapi()
    walk = list(_requests(spec))
    # (the walk reaches ids, cursors, datetimes, path strings and bodies)
    urls = [(m, u, q) for m, u, q, _ in walk]
    assert ("get", f"/api/v1/members/{2**63}", {}) in urls
    assert any(q.get("cursor") == encode_cursor(2**64) for _, _, q in urls)
    assert any(q.get("before") == "0001-01-01T00:00:00+08:00" for _, _, q in urls)
    assert any(m == "delete" and "x%00y" in u for m, u, _ in urls)
    assert any(b and NUL in b for *_, b in walk if isinstance(b, dict))
    sent, failures = 0, []
    # when every integer, string and datetime parameter and body field of every /api/v1 route gets a bad value
    for method, url, query, body in walk:
        r = client.request(method, url, params=query, json=body, headers=ADMIN)
        sent += 1
        if r.status_code >= 500:
            failures.append(f"{method.upper()} {url} {query} {body!r} -> {r.status_code} {r.text[:120]}")
    # then none answered 5xx
    assert sent > 100  # the walk reached the routes
    assert failures == [], "\n".join(failures)
