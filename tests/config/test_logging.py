"""Log lines: every record redacted (tracebacks too); the access log without webhook queries, phones or identities."""
import io
import json
import logging

import pytest
from uvicorn.logging import AccessFormatter

from config.logging import install_log_redaction, setup_logging
from config.settings import get_settings

SECRET = "s3cretValue0123456789"
PHONE = "+8613800138000"


@pytest.fixture
def root_logging(monkeypatch, tmp_path):
    """setup_logging() on clean settings; the root logger's handlers and level restored afterwards."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    monkeypatch.setenv("SIYU_VAR_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    yield monkeypatch
    root.handlers[:], _ = saved
    root.setLevel(saved[1])
    get_settings.cache_clear()


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_log_line_and_its_traceback_carry_no_secret_or_phone(root_logging, capsys, fmt):
    # given Siyu's logging in either format
    root_logging.setenv("SIYU_LOG_FORMAT", fmt)
    get_settings.cache_clear()
    setup_logging()
    log = logging.getLogger("bot.transport")
    # when a library logs a URL with a token, and Siyu logs a failure whose traceback names a secret and a phone
    logging.getLogger("urllib3.connectionpool").warning('"GET /cgi-bin/user/get?access_token=%s HTTP/1.1" 200', SECRET)
    try:
        raise RuntimeError(f"gettoken?corpsecret={SECRET} for {PHONE}")
    except RuntimeError:
        log.exception("wecom gettoken: failed for %s", PHONE)
    # then every line says what happened, without the secret or the full phone
    err = capsys.readouterr().err
    assert SECRET not in err and PHONE not in err, err
    assert "access_token=***" in err and "corpsecret=***" in err and "+86138****8000" in err
    if fmt == "json":
        lines = [json.loads(line) for line in err.splitlines()]
        assert "RuntimeError" in lines[-1]["exc"]


def _access_line(path: str) -> str:
    logger = logging.getLogger("uvicorn.access")
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s', use_colors=False))
    saved = logger.handlers[:], logger.level, logger.propagate
    logger.handlers[:], logger.propagate = [handler], False
    logger.setLevel(logging.INFO)
    try:
        # exactly as uvicorn's h11 and httptools protocols log a request
        logger.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:50000", "POST", path, "1.1", 200)
    finally:
        logger.handlers[:], logger.level, logger.propagate = saved
    return out.getvalue().strip()


@pytest.mark.parametrize(("path", "line"), [
    # a webhook's query is its signature (plain mode signs only Token, timestamp and nonce): never written
    ("/webhooks/official-account?signature=abc&timestamp=1700000000&nonce=n1&openid=oAbCdEfGhIjKlMn",
     '"POST /webhooks/official-account HTTP/1.1" 200'),
    ("/webhooks/wecom?msg_signature=abc&timestamp=1&nonce=2&echostr=xyz", '"POST /webhooks/wecom HTTP/1.1" 200'),
    # elsewhere phones and customer identities are masked, other parameters kept
    ("/api/v1/members?phone=%2B8613800138000&store=S001", "/api/v1/members?phone=+86138****8000&store=S001"),
    ("/api/v1/members?phone=13800138000", "/api/v1/members?phone=138****8000"),
    ("/api/v1/members?external_userid=wmEXT0001abcdef&openid=oAbCdEfGhIjKlMn&unionid=uX1",
     "/api/v1/members?external_userid=wmEX***&openid=oAbC***&unionid=***"),
    ("/api/v1/tasks?staff=zhangsan&status=open", "/api/v1/tasks?staff=zhangsan&status=open"),
    # and secrets in any query (the in-process sandbox's gettoken) are scrubbed
    (f"/sandbox/wecom/cgi-bin/gettoken?corpid=ww1&corpsecret={SECRET}",
     "/sandbox/wecom/cgi-bin/gettoken?corpid=ww1&corpsecret=***"),
    ("/healthz", '"POST /healthz HTTP/1.1" 200'),
])
def test_the_access_log_drops_webhook_queries_and_masks_phones_identities_and_secrets(path, line):
    # given the redaction `siyu serve` and the embedded server install
    install_log_redaction()
    install_log_redaction()  # idempotent: a second install filters once, not twice
    # when uvicorn logs a request, then the line as written
    written = _access_line(path)
    assert line in written, written
    assert SECRET not in written and "13800138000" not in written and "oAbCdEfGhIjKlMn" not in written
