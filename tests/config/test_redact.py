"""The redactor: secret values, tokens and phones go; what a reader needs to diagnose stays."""
import pytest

from config.redact import redact

SECRET = "s3cretValue0123456789"
TOKEN = "sQPRxzSNuk5SU3o3--YN6ry0ZgK4XwxIXNAtSXIO_PAeU1wJ2x"  # an access token's shape


@pytest.mark.parametrize(("text", "kept"), [
    (f"Max retries exceeded with url: /cgi-bin/gettoken?corpid=ww1&corpsecret={SECRET} (Caused by …)",
     "/cgi-bin/gettoken?corpid=ww1&corpsecret=***"),
    (f"/cgi-bin/token?grant_type=client_credential&appid=wx1&secret={SECRET}", "appid=wx1&secret=***"),
    (f"/sns/jscode2session?appid=wx1&secret={SECRET}&js_code={SECRET}&grant_type=authorization_code",
     "secret=***&js_code=***&grant_type=authorization_code"),
    (f"/sns/oauth2/access_token?appid=wx1&secret={SECRET}&code={SECRET}", "secret=***&code=***"),
    (f"GET /cgi-bin/user/get?access_token={SECRET}&userid=zhangsan", "access_token=***&userid=zhangsan"),
    (f"suite_secret={SECRET}&suite_ticket={SECRET}&permanent_code={SECRET}", "suite_secret=***&suite_ticket=***"),
    (f'{{"code": "{SECRET}", "session_key": "{SECRET}", "openid": "oAbc"}}', '"openid": "oAbc"'),
    (f"{{'secret': '{SECRET}', 'appid': 'wx1'}}", "'secret': '***'"),
    (f"Settings(wecom_contact_secret='{SECRET}', pay_apiv3_key='{SECRET}', timezone='Asia/Shanghai')",
     "timezone='Asia/Shanghai'"),
    (f"Authorization: Bearer sy_{SECRET}", "Authorization: Bearer ***"),
    (f"postgresql+psycopg://siyu:{SECRET}@db:5432/siyu", "postgresql+psycopg://siyu:***@db:5432/siyu"),
    (f"token fetched: {TOKEN} (7200 s)", "token fetched: *** (7200 s)"),
])
def test_secret_values_are_replaced_and_the_rest_of_the_text_kept(text, kept):
    # when text carrying a secret is redacted, then the secret is gone and the context remains
    clean = redact(text)
    assert SECRET not in clean and TOKEN not in clean
    assert kept in clean


@pytest.mark.parametrize(("text", "masked"), [
    ("DETAIL:  Key (type, scope, value)=(phone, , +8613800138000) already exists.", "(phone, , +86138****8000)"),
    ("called 13800138000 twice", "called 138****8000 twice"),
    ("a US number +14155552671", "+141****2671"),
])
def test_phone_numbers_are_masked_as_the_api_shows_them(text, masked):
    assert redact(text).endswith(masked) or masked in redact(text)


@pytest.mark.parametrize("text", [
    "gettoken: errcode 40001: invalid credential, access_token is invalid or not latest",
    "wecom:sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 duplicate",
    "msgid 6861234567890123456 at 1700000000123, HTTP status_code=502, line 42",
    "contact wmEXT0001: zhangsan does not follow any more",
    'File "/srv/siyu/webhooks/jobs.py", line 55, in process_inbox',
])
def test_text_without_secrets_or_phones_is_left_alone(text):
    assert redact(text) == text


def test_redaction_is_idempotent_and_keeps_none():
    once = redact(f"/x?access_token={SECRET}&phone=+8613800138000")
    assert redact(once) == once and redact(None) is None
