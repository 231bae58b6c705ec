"""Cross-checks with `wechatpayv3` (the maintained Pay v3 SDK) as the other side, and platform certificates."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from sqlalchemy import select
from wechatpayv3 import WeChatPay, WeChatPayType
from wechatpayv3.utils import rsa_sign as sdk_rsa_sign

from bot import pay_crypto as pc
from bot.credentials import mp_credentials, sandbox_file, sandbox_pay_credentials
from bot.sandbox.callbacks import pay_notification
from bot.sandbox.state import get_state
from config.database import session_scope
from config.settings import get_settings
from campaigns.groupbuy import seats
from campaigns.groupbuy.models import Offer
from tests.campaigns.groupbuy.conftest import consumer, drain, make_offer, order_row, signed_notification


def _sdk() -> WeChatPay:
    settings = get_settings()
    creds = sandbox_pay_credentials(settings)
    return WeChatPay(wechatpay_type=WeChatPayType.MINIPROG, mchid=creds.mch_id,
                     private_key=Path(creds.private_key_path).read_text(), cert_serial_no=creds.cert_serial,
                     appid=mp_credentials(settings).app_id, apiv3_key=creds.apiv3_key,
                     public_key=Path(creds.public_key_path).read_text(), public_key_id=creds.public_key_id)


def test_pay_params_are_what_wechatpayv3_signs_for_wx_request_payment(http):
    # given a seat just taken, with its pay_params
    offer = make_offer(http)
    _, headers = consumer(1)
    params = http.post(f"/mp/v1/groupbuy/offers/{offer['id']}/groups", headers=headers).json()["order"]["pay_params"]
    # then they are exactly the five fields wx.requestPayment takes
    assert set(params) == {"timeStamp", "nonceStr", "package", "signType", "paySign"}
    assert params["signType"] == "RSA" and params["timeStamp"].isdigit()
    # and wechatpayv3, signing the same fields with the merchant key, gets the very same paySign (PKCS#1 v1.5)
    appid = mp_credentials(get_settings()).app_id
    assert _sdk().sign([appid, params["timeStamp"], params["nonceStr"], params["package"]]) == params["paySign"]
    # and the package names the prepay id the sandbox issued for the order
    prepay_ids = {o["_prepay_id"] for o in get_state().pay_orders.values()}
    assert params["package"].removeprefix("prepay_id=") in prepay_ids


def test_wechatpayv3_accepts_the_sandbox_s_notifications_and_siyu_accepts_one_signed_by_the_sdk(http):
    # given a paid sandbox order
    offer = make_offer(http)
    _, headers = consumer(1)
    no = http.post(f"/mp/v1/groupbuy/offers/{offer['id']}/groups", headers=headers).json()["order"]["out_trade_no"]
    resource = {k: v for k, v in get_state().pay_order(no).items() if not k.startswith("_")}
    settings = get_settings()
    creds = sandbox_pay_credentials(settings)
    # when the sandbox builds its notification, then wechatpayv3 verifies and decrypts it to the same resource
    note_headers, body = pay_notification(creds, str(sandbox_file(settings, "pay_platform_key.pem")), resource)
    opened = _sdk().callback({k.lower(): v for k, v in note_headers.items()}, body)
    assert opened["event_type"] == "TRANSACTION.SUCCESS" and opened["resource"] == resource
    # when the signature comes from wechatpayv3's own signer instead, then Siyu takes it and pays the order
    key = pc.load_private_key(str(sandbox_file(settings, "pay_platform_key.pem")))
    ts, nonce = note_headers["Wechatpay-Timestamp"], note_headers["Wechatpay-Nonce"]
    note_headers["Wechatpay-Signature"] = sdk_rsa_sign(key, f"{ts}\n{nonce}\n{body.decode()}\n")
    assert http.post("/webhooks/wechatpay", content=body, headers=note_headers).status_code == 200
    drain()
    assert order_row(no).status == "paid"


def _certificate(tmp_path: Path, serial: int) -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tenpay.com Root CA")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(serial).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=365)).sign(key, hashes.SHA256()))
    key_path, cert_path = tmp_path / f"platform_{serial}.key", tmp_path / f"platform_{serial}.pem"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(key_path), str(cert_path)


def test_a_merchant_with_the_public_key_and_a_platform_certificate_takes_notifications_signed_by_either(
        http, tmp_path, monkeypatch):
    # given a configured merchant (not the sandbox) holding both WeChat Pay's public key and a platform certificate
    sandbox = sandbox_pay_credentials(get_settings())
    cert_key, cert_path = _certificate(tmp_path, 0x5157F09EFDC096DE15EBE81A47057A7232F1B8E1)
    for name, value in {"MCH_ID": "1900000109", "APIV3_KEY": sandbox.apiv3_key,
                        "PRIVATE_KEY_PATH": sandbox.private_key_path, "CERT_SERIAL": sandbox.cert_serial,
                        "PUBLIC_KEY_PATH": sandbox.public_key_path, "PUBLIC_KEY_ID": "PUB_KEY_ID_0114232",
                        "PLATFORM_CERT_PATHS": cert_path}.items():
        monkeypatch.setenv(f"SIYU_PAY_{name}", value)
    get_settings.cache_clear()
    # and two unpaid orders (taken through the service: this merchant's API is not reachable from a test)
    offer = make_offer(http)
    member_id, _ = consumer(1)
    other_id, _ = consumer(2)
    with session_scope() as s:
        first = seats.open_group(s, offer_id=offer["id"], member_id=member_id)
        second = seats.open_group(s, offer_id=offer["id"], member_id=other_id)
        price = s.scalar(select(Offer.price_fen).where(Offer.id == offer["id"]))
    appid = mp_credentials(get_settings()).app_id

    def paid(no: str) -> dict:
        return {"mchid": "1900000109", "appid": appid, "out_trade_no": no, "transaction_id": "4200" + no[-20:],
                "trade_state": "SUCCESS", "amount": {"total": price, "payer_total": price, "currency": "CNY"}}

    # when one is notified under the public key id and the other under the certificate's serial
    by_key = signed_notification(paid(first.out_trade_no), serial="PUB_KEY_ID_0114232",
                                 key_path=str(sandbox_file(get_settings(), "pay_platform_key.pem")))
    by_cert = signed_notification(paid(second.out_trade_no), serial="5157F09EFDC096DE15EBE81A47057A7232F1B8E1",
                                  key_path=cert_key)
    # then both are taken
    for headers, body in (by_key, by_cert):
        assert http.post("/webhooks/wechatpay", content=body, headers=headers).status_code == 200
    drain()
    assert order_row(first.out_trade_no).status == order_row(second.out_trade_no).status == "paid"
    # and a body signed by the certificate's key but named by the public key id is refused
    wrong = signed_notification(paid(first.out_trade_no), serial="PUB_KEY_ID_0114232", key_path=cert_key)
    answer = http.post("/webhooks/wechatpay", content=wrong[1], headers=wrong[0])
    assert answer.status_code == 403 and json.loads(answer.text)["code"] == "FAIL"
    # and the certificate really is the one that verifies what it signed
    cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    ts, nonce = by_cert[0]["Wechatpay-Timestamp"], by_cert[0]["Wechatpay-Nonce"]
    import base64

    cert.public_key().verify(base64.b64decode(by_cert[0]["Wechatpay-Signature"]),
                             f"{ts}\n{nonce}\n{by_cert[1].decode()}\n".encode(), padding.PKCS1v15(), hashes.SHA256())


def test_wechatpayv3_opens_the_sandbox_s_refund_notification_and_siyu_settles_the_refund_by_it(http, clock):
    from bot.sandbox.callbacks import notify_refunded
    from campaigns.groupbuy.models import Refund
    from tests.campaigns.groupbuy.conftest import pay, time_passes

    # given a paid seat of a failed group, its refund PROCESSING at WeChat Pay
    offer = make_offer(http)
    _, headers = consumer(1)
    no = http.post(f"/mp/v1/groupbuy/offers/{offer['id']}/groups", headers=headers).json()["order"]["out_trade_no"]
    pay(no)
    drain()
    time_passes(deadlines=True)
    clock.run_delayed("deadline_job")
    drain()
    # when WeChat Pay's REFUND.SUCCESS notification is built, then wechatpayv3 verifies and decrypts it
    state = get_state()
    state.settle_refund(f"R{no}")
    resource = state.refund_resource(f"R{no}")
    settings = get_settings()
    note_headers, body = pay_notification(sandbox_pay_credentials(settings),
                                          str(sandbox_file(settings, "pay_platform_key.pem")), resource,
                                          event_type="REFUND.SUCCESS", original_type="refund")
    opened = _sdk().callback({k.lower(): v for k, v in note_headers.items()}, body)
    assert opened["event_type"] == "REFUND.SUCCESS" and opened["resource"] == resource
    assert opened["resource"]["out_refund_no"] == f"R{no}" and opened["resource"]["refund_status"] == "SUCCESS"
    # and Siyu, taking the same notification, settles its ledger
    assert notify_refunded(f"R{no}").status_code == 200
    drain()
    with session_scope() as s:
        assert s.scalar(select(Refund.status)) == "succeeded"
    assert order_row(no).status == "refunded"
