"""The request guards in front of every route: NUL and 64-bit overflows are 422, so is a value the database refuses."""
from __future__ import annotations

import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from config import guards
from config.database import get_session
from config.inputs import Timestamp
from config.pagination import decode_cursor, encode_cursor


@pytest.fixture
def app(settings) -> FastAPI:
    """A small app with the guards installed and routes that hand their input straight to the database."""
    app = FastAPI()

    @app.get("/api/v1/cast")
    def cast(v: int, session: Session = Depends(get_session)):  # deliberately unbounded: the backstop's case
        return {"v": session.execute(text("SELECT CAST(:v AS INTEGER)"), {"v": v}).scalar()}

    @app.get("/api/v1/broken")
    def broken(session: Session = Depends(get_session)):
        session.execute(text("SELECT * FROM no_such_table"))

    @app.api_route("/api/v1/echo/{name}", methods=["GET", "POST"])
    async def echo(name: str, request: Request):
        return {"name": name, "query": dict(request.query_params), "body": (await request.body()).decode()}

    @app.post("/webhooks/echo")
    async def webhook(request: Request):
        return {"body": (await request.body()).decode()}

    guards.install(app)
    return app


@pytest.fixture
def client(app):
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def test_a_value_the_database_refuses_is_422_on_both_databases_and_other_errors_stay_500(client):
    # given a route without a bound, when it passes 2^63 to the database (SQLite overflows, PostgreSQL is out of range)
    r = client.get("/api/v1/cast", params={"v": 2**63})
    # then the answer is 422, without the value or the statement in it
    assert r.status_code == 422, r.text
    assert str(2**63) not in r.text and "SELECT" not in r.text
    # while a value in range works, and a bug (a missing table) is still a 500, not the caller's fault
    assert client.get("/api/v1/cast", params={"v": 7}).json() == {"v": 7}
    assert client.get("/api/v1/broken").status_code == 500


REFUSED = [
    ("get", "/api/v1/echo/a%00b", {}, ["path"]),
    ("get", "/api/v1/echo/a", {"params": {"q": "a\x00b"}}, ["query", "q"]),
    ("post", "/api/v1/echo/a", {"json": {"name": {"deep": ["ok", "a\x00b"]}}}, ["body", "name", "deep", 1]),
    ("post", "/api/v1/echo/a", {"json": {"a\x00b": 1}}, ["body", "a\x00b"]),
    ("post", "/api/v1/echo/a", {"json": {"n": 2**63}}, ["body", "n"]),
    ("post", "/api/v1/echo/a", {"json": [-(2**63) - 1]}, ["body", 0]),
    ("post", "/api/v1/echo/a", {"data": {"name": "a\x00b"}}, ["body", "name"]),
    ("post", "/api/v1/echo/a", {"content": '{"name": "a\\u0000b"}', "headers": {"content-type": ""}}, ["body", "name"]),
]


def test_nul_and_64_bit_overflows_are_422_wherever_they_hide_and_the_rest_passes_intact(client):
    # when a NUL or an integer past 64 bits hides in the path, the query, a JSON or form body (values and keys)
    for method, url, kwargs, loc in REFUSED:
        r = client.request(method, url, **kwargs)
        # then it is 422, pointing at where it was
        assert r.status_code == 422, (url, kwargs, r.text)
        assert [d["loc"] for d in r.json()["detail"]] == [loc]
    # and a clean request reaches its route with the body intact (an escaped backslash-u is text, not NUL)
    r = client.post("/api/v1/echo/名字", params={"q": "值"}, json={"n": 2**63 - 1, "s": "\\u0000 is text here"})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "名字" and r.json()["query"] == {"q": "值"}
    assert str(2**63 - 1) in r.json()["body"]
    # and a body nested too deep to parse is left to the route's parser (4xx, never 5xx); webhooks are not guarded
    deep = client.post("/api/v1/echo/a", content="[" * 100_000 + "]" * 100_000,
                       headers={"content-type": "application/json"})
    assert deep.status_code < 500
    assert client.post("/webhooks/echo", content=b'{"a": "\\u0000"}').status_code == 200


def test_a_cursor_decodes_only_to_a_row_id_in_its_canonical_form():
    from config.errors import InvalidInput

    # given cursors past the id range or not in the form the API hands out, then each is 422
    for cursor in [encode_cursor(2**63), encode_cursor(2**64), encode_cursor(0), encode_cursor(-1), "IDAx", "MV8w",
                   "x\x00"]:
        with pytest.raises(InvalidInput) as exc:
            decode_cursor(cursor)
        assert exc.value.status_code == 422, cursor
    # while the largest id still round-trips
    assert decode_cursor(encode_cursor(2**63 - 1)) == 2**63 - 1


def test_a_timestamp_is_aware_within_the_years_1900_to_2999_and_normalised_to_utc():
    from pydantic import TypeAdapter, ValidationError

    adapter = TypeAdapter(Timestamp)
    for value in ["1900-01-01T00:00:00Z", "2999-12-31T23:59:59Z", "2026-01-01T08:00:00+08:00"]:
        assert adapter.validate_python(value).utcoffset().total_seconds() == 0, value
    for value in ["1899-12-31T23:59:59Z", "3000-01-01T00:00:00Z", "0001-01-01T00:00:00+08:00",
                  "9999-12-31T23:59:59-08:00", "2026-01-01T08:00:00"]:
        with pytest.raises(ValidationError):
            adapter.validate_python(value)
