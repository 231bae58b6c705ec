"""A request's transaction commits before its answer is sent: a commit that fails is never a 2xx."""
from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from config.database import request_session, session_scope
from membership.models import Store


def test_a_change_that_fails_to_commit_is_not_answered_2xx(settings):
    # given a route whose change only fails when the transaction commits (two stores with one code, unflushed)
    app = FastAPI()

    @app.post("/stores-twice")
    def stores_twice(session: Session = request_session):
        session.add_all([Store(code="DUP", name="一"), Store(code="DUP", name="二")])
        return {"ok": True}

    # when it is called
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.post("/stores-twice")
    # then the client hears of the failure (the default scope would have answered 200 and lost it)
    assert r.status_code >= 400, r.text
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Store)) == 0
