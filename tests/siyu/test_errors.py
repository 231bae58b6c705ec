"""One error mapping: every package's errors derive from config.errors and are answered by one handler."""
from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient

from bot.errors import PermanentAPIError
from config.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound, Unavailable, Upstream
from segments.exceptions import EvaluationFailed, InUse, InvalidDefinition, Unevaluable

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("config", "membership", "bot", "segments", "webhooks", "campaigns", "miniprogram_api", "console", "siyu")
# Exceptions that are no domain error, and why.
NOT_DOMAIN = {
    "config.settings.SettingsError": "a configuration error: the process stops with one line, no request sees it",
    "config.metrics.MetricsDirError": "a configuration error too (SIYU_METRICS_DIR), reported like SettingsError",
    "webhooks.dispatch.HandlersNotLoaded": "a process that skipped siyu.wiring.install(): the job fails and is retried",
    "webhooks.inbox._Redo": "within one job: a batch applied without savepoints is applied again with them",
    "webhooks.wecom.sync.SyncInterrupted": "stands in for a killed run in tests",
    "siyu.body_limit.BodyTooLarge": "an HTTPException by design: FastAPI's body parsing lets only those through",
}
RAISES_HTTP = {  # modules that answer with HTTPException themselves, and why
    "membership/access.py": "401 needs its WWW-Authenticate header",
    "webhooks/intake.py": "callbacks are refused with Tencent's protocol answers, counted per reason",
}


CASES = [
    (InvalidInput("phone: not a number"), 422), (NotFound("member 7 not found"), 404),
    (Conflict("store 'S001' exists"), 409), (Forbidden("role staff may not do this"), 403),
    (Unavailable("inbox busy"), 503), (InvalidDefinition("$.all[0]", "unknown field"), 422),
    (Unevaluable(3, "too large"), 422), (InUse("segment 3 is in use by tag rule 1"), 409),
    (EvaluationFailed("segments: OperationalError"), 503), (Upstream("Pay: refused"), 502),
]


@pytest.fixture
def raising(settings):
    """An app with one extra route that raises the error it is given."""
    from siyu.app import create_app

    app, current = create_app(), []
    router = APIRouter()

    @router.get("/raise")
    def raise_it():
        raise current[0]

    app.include_router(router)
    with TestClient(app, raise_server_exceptions=False) as client:
        def ask(exc: Exception):
            current[:] = [exc]
            return client.get("/raise")
        yield ask


@pytest.mark.parametrize(("error", "status"), CASES, ids=lambda c: type(c).__name__ if isinstance(c, Exception) else "")
def test_a_domain_error_is_answered_with_its_status_and_its_message(raising, error, status):
    # when a route raises a domain error, then the one handler answers its status and {"detail": its message}
    r = raising(error)
    assert (r.status_code, r.json()) == (status, {"detail": str(error)})


def test_wechat_refusing_a_call_is_a_502_that_says_so(raising):
    r = raising(PermanentAPIError(40001, "invalid credential", "gettoken"))
    assert (r.status_code, r.json()) == (502, {"detail": "WeChat refused: gettoken: errcode 40001: invalid credential"})


def _exception_classes():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "sandbox" in path.parts or "migrations" in path.parts:
                continue
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            module = importlib.import_module(name.removesuffix(".__init__"))
            for cls in vars(module).values():
                if inspect.isclass(cls) and issubclass(cls, BaseException) and cls.__module__ == module.__name__:
                    yield f"{cls.__module__}.{cls.__qualname__}", cls


def test_every_error_a_package_defines_is_a_domain_error_with_its_status():
    # given every exception class Siyu's packages define (the sandbox imitates Tencent's errors, not Siyu's)
    found = dict(_exception_classes())
    # then each derives from config.errors.DomainError, but for the few that are no domain error at all
    assert sorted(n for n, cls in found.items() if not issubclass(cls, DomainError)) == sorted(NOT_DOMAIN)
    assert {"segments.exceptions.InvalidDefinition", "bot.errors.WeChatAPIError",
            "webhooks.crypto.BadPayload"} <= set(found)


def test_only_the_protocols_that_need_it_raise_http_errors_themselves():
    # given every module of the packages, then routes raise domain errors and leave the answer to the one handler
    raising = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            tree = ast.parse(path.read_text())
            if any(isinstance(n, ast.Raise) and "HTTPException" in ast.unparse(n) for n in ast.walk(tree)):
                raising.add(str(path.relative_to(ROOT)))
    assert raising - {"bot/sandbox/" + p.name for p in (ROOT / "bot/sandbox").glob("*.py")} == set(RAISES_HTTP)
