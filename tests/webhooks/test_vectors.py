"""VECTORS.md's callback vectors, verbatim, through Siyu's crypto and its /webhooks/wecom endpoint."""
from __future__ import annotations

import pytest

from config.settings import get_settings
from webhooks import crypto

TENCENT = {"token": "QDG6eK", "aes_key": "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "corp_id": "wx5823bf96d3bd56c7"}
T_GET = {"msg_signature": "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3", "timestamp": "1409659589",
         "nonce": "263014780",
         "echostr": "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ=="}
T_ENCRYPT = ("RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sY"
             "YvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+"
             "LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw"
             "8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1p"
             "tDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q==")
T_POST = {"msg_signature": "477715d11cdb4164915debcba66cb864d751f3e6", "timestamp": "1409659813", "nonce": "1372623149"}
T_BODY = (f"<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName><Encrypt><![CDATA[{T_ENCRYPT}]]></Encrypt>"
          "<AgentID><![CDATA[218]]></AgentID></xml>")

WECHATPY = {"token": "123456", "aes_key": "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR",
            "corp_id": "wx49f0ab532d5d035a"}
W_GET = {"msg_signature": "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96", "timestamp": "1411443780", "nonce": "437374425",
         "echostr": "4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q=="}
W_ENCRYPT = ("RgqEoJj5A4EMYlLvWO1F86ioRjZfaex/gePD0gOXTxpsq5Yj4GNglrBb8I2BAJVODGajiFnXBu7mCPatfjsu6IHCrsTyeDXzF6Bv"
             "283dGymzxh6ydJRvZsryDyZbLTE7rhnus50qGPMfp2wASFlzEgMW9z1ef/RD8XzaFYgm7iTdaXpXaG4+BiYyolBug/gYNx410cvk"
             "KR2/nPwBiT+P4hIiOAQqGp/TywZBtDh1yCF2KOd0gpiMZ5jSw3e29mTvmUHzkVQiMS6td7vXUaWOMZnYZlF3So2SjHnwh4jYFxdg"
             "pkHHqIrH/54SNdshoQgWYEvccTKe7FS709/5t6NMxuGhcUGAPOQipvWTT4dShyqio7mlsl5noTrb++x6En749zCpQVhDpbV6GDnT"
             "bcX2e8K9QaNWHp91eBdCRxthuL0=")
W_POST = {"msg_signature": "74d92dfeb87ba7c714f89d98870ae5eb62dff26d", "timestamp": "1411525903", "nonce": "461056294"}
W_BODY = (f"<xml><ToUserName><![CDATA[wx49f0ab532d5d035a]]></ToUserName><Encrypt><![CDATA[{W_ENCRYPT}]]></Encrypt>"
          "<AgentID><![CDATA[1]]></AgentID></xml>")
W_REPLY = """<xml>
<MsgType><![CDATA[text]]></MsgType>
<Content><![CDATA[test]]></Content>
<FromUserName><![CDATA[wx49f0ab532d5d035a]]></FromUserName>
<ToUserName><![CDATA[messense]]></ToUserName>
<AgentID>1</AgentID>
<CreateTime>1411525903</CreateTime>
</xml>"""


def _corp(monkeypatch, v: dict) -> None:
    monkeypatch.setenv("SIYU_WECOM_CORP_ID", v["corp_id"])
    monkeypatch.setenv("SIYU_WECOM_TOKEN", v["token"])
    monkeypatch.setenv("SIYU_WECOM_AES_KEY", v["aes_key"])
    monkeypatch.setenv("SIYU_WECOM_CONTACT_SECRET", "secret")
    get_settings.cache_clear()


@pytest.fixture
def tencent(settings, monkeypatch):
    _corp(monkeypatch, TENCENT)


@pytest.fixture
def wechatpy_corp(settings, monkeypatch):
    _corp(monkeypatch, WECHATPY)


def test_tencent_url_verification_answers_the_plaintext_alone(tencent, client):
    # given Tencent's sample corp, when WeCom checks the URL
    r = client.get("/webhooks/wecom", params=T_GET)
    # then the body is exactly the decrypted echostr
    assert r.status_code == 200
    assert r.text == "1616140317555161061"


def test_tencent_post_decrypts_to_the_sample_text_message(tencent, client, enqueued):
    from tests.webhooks.conftest import inbox_rows

    # given Tencent's sample encrypted POST, when it is delivered
    r = client.post("/webhooks/wecom", params=T_POST, content=T_BODY)
    # then it is answered 200 empty, stored decrypted and enqueued
    assert r.status_code == 200 and r.text == ""
    [row] = inbox_rows()
    assert row.data["FromUserName"] == "mycreate" and row.data["Content"] == "hello"
    assert row.data["MsgId"] == "4561255354251345929" and row.data["AgentID"] == "218"
    assert row.data["CreateTime"] == "1409659813"
    assert row.content_key == "wecom:msg:4561255354251345929"
    assert enqueued == [("process_inbox", (row.id,), "default")]


def test_tencent_post_padding_is_thirty_bytes_of_a_32_byte_block():
    # given the sample ciphertext, when decrypted raw, then the PKCS#7 padding is 30 (WeCom pads to 32)
    prp = crypto.CorpPrpCrypto(crypto._cipher("wecom", TENCENT["token"], TENCENT["aes_key"], TENCENT["corp_id"]).key)
    import base64

    raw = prp.cipher.decrypt(base64.b64decode(T_ENCRYPT))
    assert raw[-1] == 30 and raw[-30:] == bytes([30]) * 30


def test_tencent_post_with_another_nonce_fails_the_signature(tencent, client, enqueued):
    from tests.webhooks.conftest import inbox_rows

    # given the sample POST with nonce 1372623148, when delivered, then 403 and nothing stored
    r = client.post("/webhooks/wecom", params={**T_POST, "nonce": "1372623148"}, content=T_BODY)
    assert r.status_code == 403
    assert inbox_rows() == [] and enqueued == []


def test_tencent_post_with_receiveid_wrongcorp_fails_the_receiveid_check():
    # given the sample ciphertext, when decrypted for receiveid "wrongcorp", then the receiveid check fails
    crypto.check_signature(T_POST["msg_signature"], TENCENT["token"], T_POST["timestamp"], T_POST["nonce"], T_ENCRYPT)
    with pytest.raises(crypto.WrongReceiver):
        crypto.decrypt("wecom", TENCENT["token"], TENCENT["aes_key"], "wrongcorp", T_ENCRYPT)


def test_tencent_post_to_a_server_configured_for_another_corp_is_refused(settings, monkeypatch, client, enqueued):
    from tests.webhooks.conftest import inbox_rows

    # given Siyu configured with Tencent's token and key but corp id "wrongcorp"
    _corp(monkeypatch, {**TENCENT, "corp_id": "wrongcorp"})
    # when the sample POST arrives, then it is refused and nothing is stored
    r = client.post("/webhooks/wecom", params=T_POST, content=T_BODY)
    assert r.status_code == 403
    assert inbox_rows() == []


def test_wechatpy_url_verification(wechatpy_corp, client):
    # given wechatpy's test corp, when the URL is checked, then the echostr decrypts to its number
    r = client.get("/webhooks/wecom", params=W_GET)
    assert r.status_code == 200 and r.text == "5927782489442352469"


def test_wechatpy_post_decrypts_to_test(wechatpy_corp, client, enqueued):
    from tests.webhooks.conftest import inbox_rows

    # given wechatpy's encrypted POST (AgentID 1), when delivered, then it is stored with Content "test"
    r = client.post("/webhooks/wecom", params=W_POST, content=W_BODY)
    assert r.status_code == 200
    [row] = inbox_rows()
    assert row.data["Content"] == "test" and row.data["MsgType"] == "text"


def test_wechatpy_reply_encryption_signature(monkeypatch):
    # given the 16 random bytes fixed to 1234567890123456
    monkeypatch.setattr(crypto.CorpPrpCrypto, "get_random_string", lambda self: "1234567890123456")
    # when the reply is encrypted with nonce 461056294 at 1411525903
    sealed = crypto.encrypt_reply("wecom", WECHATPY["token"], WECHATPY["aes_key"], WECHATPY["corp_id"], W_REPLY,
                                  "461056294", "1411525903")
    # then its MsgSignature is wechatpy's
    assert crypto.parse_xml(sealed)["MsgSignature"] == "407518b7649e86ef23978113f92d27afa9296533"


def test_signature_check_is_constant_time_compare(monkeypatch):
    # given a spy on hmac.compare_digest, when a signature is checked, then the comparison goes through it
    seen = []
    real = crypto.hmac.compare_digest
    monkeypatch.setattr(crypto.hmac, "compare_digest", lambda a, b: seen.append((a, b)) or real(a, b))
    crypto.check_signature(W_POST["msg_signature"], WECHATPY["token"], W_POST["timestamp"], W_POST["nonce"], W_ENCRYPT)
    assert seen and seen[0][0] == W_POST["msg_signature"].encode()
