"""Credentials of each Tencent channel: from settings, or the sandbox's fixed ones when they are unset.

The sandbox's callback Token, EncodingAESKey, APIv3 key and RSA keys are generated once into
`settings.var_dir`, so the webhook side, the clients and the sandbox's callback sender agree
across processes and restarts.
"""
from __future__ import annotations

import base64
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from config.files import make_private_dir
from config.settings import Settings

SANDBOX_CORP_ID = "wwsandbox00000001"
SANDBOX_CONTACT_SECRET = "sandbox-contact-secret"
SANDBOX_AGENT_ID = "1000002"
SANDBOX_AGENT_SECRET = "sandbox-agent-secret"
SANDBOX_OA_APP_ID = "wxsandboxoa000001"
SANDBOX_OA_APP_SECRET = "sandbox-oa-secret"
SANDBOX_MP_APP_ID = "wxsandboxmp000001"
SANDBOX_MP_APP_SECRET = "sandbox-mp-secret"
SANDBOX_MCH_ID = "1900000001"
SANDBOX_PLATFORM_KEY_ID = "PUB_KEY_ID_SANDBOX0001"


@dataclass(frozen=True)
class WeComCredentials:
    corp_id: str
    token: str | None = field(repr=False)  # secrets stay out of reprs, hence out of tracebacks and logs
    aes_key: str | None = field(repr=False)
    contact_secret: str = field(repr=False)
    agent_id: str | None
    agent_secret: str | None = field(repr=False)
    api_base: str
    sandbox: bool


@dataclass(frozen=True)
class WeChatAppCredentials:
    """An official account or a mini-program."""

    app_id: str
    app_secret: str = field(repr=False)
    token: str | None = field(repr=False)
    aes_key: str | None = field(repr=False)
    api_base: str  # the host root, like https://api.weixin.qq.com/
    sandbox: bool


@dataclass(frozen=True)
class PayCredentials:
    mch_id: str
    apiv3_key: str = field(repr=False)
    private_key_path: str  # merchant API key (PEM) signing requests
    cert_serial: str
    public_key_path: str | None  # WeChat Pay public key (PEM) verifying answers and notifications
    public_key_id: str | None
    api_base: str
    sandbox: bool
    platform_cert_paths: tuple[str, ...] = ()  # platform certificates (PEM), also verifying, chosen by serial


def _generated(settings: Settings, name: str, make) -> str:
    # Written once, then read by every process that shares var/ (server, worker, `siyu sandbox`).
    path = Path(settings.var_dir) / "sandbox" / name
    if not path.exists():
        make_private_dir(path.parent)
        tmp = path.with_suffix(f".{secrets.token_hex(4)}.tmp")
        tmp.touch(mode=0o600)  # private before the secret is in it
        tmp.write_text(make())
        try:
            os.link(tmp, path)  # atomic create-if-absent: two processes racing keep one value
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip()


def _aes_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode().rstrip("=")


def _rsa_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def sandbox_file(settings: Settings, name: str) -> Path:
    """Path of a generated sandbox secret (created on first use)."""
    makers = {
        "wecom_token": lambda: secrets.token_urlsafe(12),
        "wecom_aes_key": _aes_key,
        "oa_token": lambda: secrets.token_urlsafe(12),
        "oa_aes_key": _aes_key,
        "mp_token": lambda: secrets.token_urlsafe(12),
        "mp_aes_key": _aes_key,
        "pay_apiv3_key": lambda: secrets.token_hex(16),  # 32 ASCII bytes, used as-is
        "pay_merchant_key.pem": _rsa_pem,
        "pay_platform_key.pem": _rsa_pem,
        "pay_cert_serial": lambda: secrets.token_hex(20).upper(),
    }
    _generated(settings, name, makers[name])
    return Path(settings.var_dir) / "sandbox" / name


def _secret(settings: Settings, name: str) -> str:
    return sandbox_file(settings, name).read_text().strip()


def sandbox_platform_public_key_path(settings: Settings) -> str:
    """The sandbox platform public key (PEM), derived from its private key and written next to it."""
    from cryptography.hazmat.primitives import serialization

    path = Path(settings.var_dir) / "sandbox" / "pay_platform_pub.pem"
    if not path.exists():
        key = serialization.load_pem_private_key(sandbox_file(settings, "pay_platform_key.pem").read_bytes(), None)
        pub = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        tmp = path.with_suffix(f".{secrets.token_hex(4)}.tmp")
        tmp.touch(mode=0o600)  # like every file in var/
        tmp.write_bytes(pub)
        tmp.replace(path)
    return str(path)


def sandbox_base(settings: Settings, channel: str) -> str:
    """The in-process sandbox's base URL of `channel` (wecom, wechat, pay)."""
    suffix = {"wecom": "sandbox/wecom/cgi-bin/", "wechat": "sandbox/wechat/", "pay": "sandbox/pay/",
              "open": "sandbox/open/"}[channel]
    return f"{settings.public_url}{suffix}"


OPEN_BASE = "https://open.weixin.qq.com/"  # WeCom's web sign-in page (网页授权) lives on this host


def wecom_oauth_base(settings: Settings) -> str:
    """Where staff's browsers go to sign in with WeCom: open.weixin.qq.com, or the sandbox's page."""
    return sandbox_base(settings, "open") if settings.uses_sandbox("wecom") else OPEN_BASE


def wecom_credentials(settings: Settings) -> WeComCredentials:
    """WeCom credentials: configured, or the sandbox corp's."""
    if settings.uses_sandbox("wecom"):
        return WeComCredentials(
            corp_id=SANDBOX_CORP_ID,
            token=_secret(settings, "wecom_token"),
            aes_key=_secret(settings, "wecom_aes_key"),
            contact_secret=SANDBOX_CONTACT_SECRET,
            agent_id=SANDBOX_AGENT_ID,
            agent_secret=SANDBOX_AGENT_SECRET,
            api_base=sandbox_base(settings, "wecom"),
            sandbox=True,
        )
    return WeComCredentials(
        corp_id=settings.wecom_corp_id,
        token=settings.wecom_token,
        aes_key=settings.wecom_aes_key,
        contact_secret=settings.wecom_contact_secret,
        agent_id=settings.wecom_agent_id,
        agent_secret=settings.wecom_agent_secret,
        api_base=settings.wecom_api_base,
        sandbox=False,
    )


def _app_credentials(settings: Settings, channel: str, prefix: str, sandbox_id: str, sandbox_secret: str
                     ) -> WeChatAppCredentials:
    if settings.uses_sandbox(channel):
        return WeChatAppCredentials(sandbox_id, sandbox_secret, _secret(settings, f"{prefix}_token"),
                                    _secret(settings, f"{prefix}_aes_key"), sandbox_base(settings, "wechat"), True)
    app_id, secret, token, aes_key = (getattr(settings, f"{prefix}_{f}") for f in ("app_id", "app_secret", "token",
                                                                                   "aes_key"))
    return WeChatAppCredentials(app_id, secret, token, aes_key, settings.wechat_api_base, False)


def oa_credentials(settings: Settings) -> WeChatAppCredentials:
    """Official-account credentials: configured, or the sandbox account's."""
    return _app_credentials(settings, "official_account", "oa", SANDBOX_OA_APP_ID, SANDBOX_OA_APP_SECRET)


def mp_credentials(settings: Settings) -> WeChatAppCredentials:
    """Mini-program credentials: configured, or the sandbox mini-program's."""
    return _app_credentials(settings, "miniprogram", "mp", SANDBOX_MP_APP_ID, SANDBOX_MP_APP_SECRET)


def sandbox_pay_credentials(settings: Settings) -> PayCredentials:
    """The sandbox merchant's credentials (also what the sandbox itself checks signatures with)."""
    return PayCredentials(
        mch_id=SANDBOX_MCH_ID,
        apiv3_key=_secret(settings, "pay_apiv3_key"),
        private_key_path=str(sandbox_file(settings, "pay_merchant_key.pem")),
        cert_serial=_secret(settings, "pay_cert_serial"),
        public_key_path=sandbox_platform_public_key_path(settings),
        public_key_id=SANDBOX_PLATFORM_KEY_ID,
        api_base=sandbox_base(settings, "pay"),
        sandbox=True,
    )


def pay_credentials(settings: Settings) -> PayCredentials:
    """Pay v3 merchant credentials: configured, or the sandbox merchant's."""
    if settings.uses_sandbox("pay"):
        return sandbox_pay_credentials(settings)
    return PayCredentials(
        mch_id=settings.pay_mch_id,
        apiv3_key=settings.pay_apiv3_key,
        private_key_path=settings.pay_private_key_path,
        cert_serial=settings.pay_cert_serial,
        public_key_path=settings.pay_public_key_path,
        public_key_id=settings.pay_public_key_id,
        api_base=settings.pay_api_base,
        sandbox=False,
        platform_cert_paths=tuple(p for p in (settings.pay_platform_cert_paths or "").split(",") if p),
    )
