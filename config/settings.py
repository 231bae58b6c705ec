"""Settings from SIYU_* environment variables (CONTRACT §2); a `.env` file is read too."""
from __future__ import annotations

import base64
import functools
import secrets
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

from config.quiet_hours import QuietHours
from config.secret_files import read_or_create


class SettingsError(Exception):
    """A misconfiguration, described in one line that names the variable."""


def _check_aes_key(name: str, value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if len(value) != 43:
        raise ValueError(f"{name}: EncodingAESKey must be 43 characters, got {len(value)}")
    try:
        base64.b64decode(value + "=", validate=True)
    except ValueError as exc:
        raise ValueError(f"{name}: EncodingAESKey is not base64 ({exc})") from None
    return value


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("text", "json")
MIN_ADMIN_TOKEN = 24  # a bearer token that grants everything must not be guessable


class Settings(BaseSettings):
    """Every knob of CONTRACT §2, plus Siyu's own extensions recorded in CHANGELOG.md."""

    model_config = SettingsConfigDict(env_prefix="SIYU_", env_file=".env", extra="ignore")

    database_url: str = "sqlite:///var/siyu.db"
    redis_url: str | None = None
    timezone: str = "Asia/Shanghai"
    admin_token: str | None = None
    secret_key: str | None = None
    var_dir: Path = Path("var")
    log_format: str = "text"
    log_level: str = "INFO"

    wecom_corp_id: str | None = None
    wecom_token: str | None = None
    wecom_aes_key: str | None = None
    wecom_contact_secret: str | None = None
    wecom_agent_id: str | None = None
    wecom_agent_secret: str | None = None
    wecom_api_base: str = "https://qyapi.weixin.qq.com/cgi-bin/"

    oa_app_id: str | None = None
    oa_app_secret: str | None = None
    oa_token: str | None = None
    oa_aes_key: str | None = None

    mp_app_id: str | None = None
    mp_app_secret: str | None = None
    mp_token: str | None = None
    mp_aes_key: str | None = None

    wechat_api_base: str = "https://api.weixin.qq.com/"

    pay_mch_id: str | None = None
    pay_apiv3_key: str | None = None
    pay_private_key_path: str | None = None
    pay_cert_serial: str | None = None
    pay_public_key_path: str | None = None
    pay_public_key_id: str | None = None
    # WeChat Pay platform certificates (PEM files, comma-separated) beside the public key: a merchant migrating
    # between the two is signed by either, and `Wechatpay-Serial` says which.
    pay_platform_cert_paths: str | None = None
    pay_api_base: str = "https://api.mch.weixin.qq.com/"

    sandbox: str = "auto"
    public_url: str = "http://127.0.0.1:8000/"  # where Siyu (and the in-process sandbox) is reachable
    inbox_retention_days: int = 30  # decrypted callback payloads are emptied after this; rows and keys stay
    quiet_hours: str = "21:00-09:00"  # business time in which nothing is sent to customers ('' for none)
    groupbuy_hold_minutes: int = 15  # an unpaid group-buy seat is released this long after it was taken
    mp_session_ttl_hours: int = 168  # a /mp/v1 session token lives this long (the mini-program logs in again)
    booking_no_show_grace_minutes: int = 30  # after its start, a booking nobody checked in becomes `no_show`

    # Tencent API calls: every call has a timeout; limits are "calls/seconds" bands per corp and API.
    wechat_http_timeout: float = 10.0
    wechat_rate_limits: str = "10000/60,150000/3600"
    wechat_rate_overrides: dict[str, str] = {}  # API path -> bands, e.g. {"externalcontact/get": "100/1"}
    wechat_backoff_base: float = 1.0  # seconds; 45009/45033/-1 wait base·2^n plus jitter
    wechat_read_ahead: int = 8  # re-reads a batch of callbacks has in flight at once (1: one after another)

    max_body_bytes: int = 1 << 20  # a request body above this answers 413 before it is read whole
    # Operations: one active scheduler (a lease renewed every third of it), and syncs that never mass-remove.
    scheduler_lease_seconds: float = 15.0
    # schedule id -> APScheduler trigger kwargs, e.g. {"trigger": "cron", "hour": 4}
    schedule_overrides: dict[str, dict] = {}
    sync_max_shrink: float = 0.2  # share of what Siyu holds from WeCom one sync may remove without --allow-shrink
    # Campaigns: WeCom's per-customer mass-message quota per natural month, the default frequency cap across
    # campaigns (0: no cap), how late a scheduled run may fire, and how long a worker's claim on a chunk lasts.
    mass_message_monthly_quota: int = 4
    campaign_frequency_cap: int = 0  # messages per member within campaign_frequency_days, 0 for no cap
    campaign_frequency_days: int = 7
    campaign_max_lateness_minutes: int = 30  # a scheduled run later than this is recorded `missed`, not fired
    campaign_lease_seconds: float = 300.0
    campaign_confirm_hours: int = 72  # a mass message the staff member has not confirmed by then is not_confirmed
    campaign_remind_after_hours: int = 4  # remind_groupmsg_send once a message waits this long (≤ 3 a day)

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, v: str) -> str:
        try:
            make_url(v)
        except Exception:
            raise ValueError(f"SIYU_DATABASE_URL: not a database URL: {v!r}") from None
        return v

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        if not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"SIYU_REDIS_URL: must start with redis://, rediss:// or unix://, got {v!r}")
        return v

    @field_validator("admin_token")
    @classmethod
    def _admin_token(cls, v: str | None) -> str | None:
        v = (v or "").strip()
        if v and len(v) < MIN_ADMIN_TOKEN:  # the value itself never goes into the message
            raise ValueError(f"SIYU_ADMIN_TOKEN: must be at least {MIN_ADMIN_TOKEN} characters, got {len(v)}")
        return v or None

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"SIYU_TIMEZONE: unknown time zone {v!r}") from None
        return v

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, v: str) -> str:
        if v.strip().upper() not in LOG_LEVELS:
            raise ValueError(f"SIYU_LOG_LEVEL: one of {', '.join(LOG_LEVELS)}, got {v!r}")
        return v.strip().upper()

    @field_validator("log_format")
    @classmethod
    def _log_format(cls, v: str) -> str:
        if v.strip().lower() not in LOG_FORMATS:
            raise ValueError(f"SIYU_LOG_FORMAT: 'text' or 'json', got {v!r}")
        return v.strip().lower()

    @field_validator("scheduler_lease_seconds")
    @classmethod
    def _lease(cls, v: float) -> float:
        if v < 1:
            raise ValueError(f"SIYU_SCHEDULER_LEASE_SECONDS: at least 1 second, got {v}")
        return v

    @field_validator("mass_message_monthly_quota", "campaign_frequency_days", "campaign_max_lateness_minutes",
                     "campaign_confirm_hours", "campaign_remind_after_hours")
    @classmethod
    def _positive(cls, v: int, info) -> int:
        if v < 1:
            raise ValueError(f"SIYU_{info.field_name.upper()}: at least 1, got {v}")
        return v

    @field_validator("campaign_frequency_cap")
    @classmethod
    def _cap(cls, v: int) -> int:
        if v < 0:
            raise ValueError(f"SIYU_CAMPAIGN_FREQUENCY_CAP: 0 (no cap) or more, got {v}")
        return v

    @field_validator("campaign_lease_seconds")
    @classmethod
    def _campaign_lease(cls, v: float) -> float:
        if v < 1:
            raise ValueError(f"SIYU_CAMPAIGN_LEASE_SECONDS: at least 1 second, got {v}")
        return v

    @field_validator("sync_max_shrink")
    @classmethod
    def _max_shrink(cls, v: float) -> float:
        if not 0 <= v <= 1:
            raise ValueError(f"SIYU_SYNC_MAX_SHRINK: a share between 0 and 1 (0.2 is 20 %), got {v}")
        return v

    @field_validator("schedule_overrides")
    @classmethod
    def _overrides(cls, v: dict) -> dict:
        for job_id, trigger in v.items():
            if not isinstance(trigger, dict) or trigger.get("trigger") not in ("cron", "interval", "date"):
                raise ValueError(f"SIYU_SCHEDULE_OVERRIDES: {job_id!r} needs trigger kwargs with "
                                 "\"trigger\": \"cron\" | \"interval\" | \"date\"")
        return v

    @field_validator("sandbox")
    @classmethod
    def _sandbox(cls, v: str) -> str:
        if v not in ("auto", "off"):
            raise ValueError(f"SIYU_SANDBOX: must be 'auto' or 'off', got {v!r}")
        return v

    @field_validator("max_body_bytes")
    @classmethod
    def _max_body_bytes(cls, v: int) -> int:
        if v < 1:
            raise ValueError(f"SIYU_MAX_BODY_BYTES: must be a positive number of bytes, got {v}")
        return v

    @field_validator("wecom_aes_key")
    @classmethod
    def _wecom_aes(cls, v):
        return _check_aes_key("SIYU_WECOM_AES_KEY", v)

    @field_validator("oa_aes_key")
    @classmethod
    def _oa_aes(cls, v):
        return _check_aes_key("SIYU_OA_AES_KEY", v)

    @field_validator("mp_aes_key")
    @classmethod
    def _mp_aes(cls, v):
        return _check_aes_key("SIYU_MP_AES_KEY", v)

    @field_validator("wecom_api_base", "wechat_api_base", "pay_api_base", "public_url")
    @classmethod
    def _base_url(cls, v: str, info) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"SIYU_{info.field_name.upper()}: not an http(s) URL: {v!r}")
        return v if v.endswith("/") else v + "/"

    @field_validator("pay_apiv3_key")
    @classmethod
    def _apiv3_key(cls, v: str | None) -> str | None:
        if v and len(v.encode()) != 32:
            raise ValueError(f"SIYU_PAY_APIV3_KEY: the APIv3 key is 32 bytes, got {len(v.encode())}")
        return v or None

    @field_validator("pay_private_key_path", "pay_public_key_path")
    @classmethod
    def _key_file(cls, v: str | None, info) -> str | None:
        if v and not Path(v).is_file():
            raise ValueError(f"SIYU_{info.field_name.upper()}: no file at {v}")
        return v or None

    @field_validator("pay_platform_cert_paths")
    @classmethod
    def _cert_files(cls, v: str | None) -> str | None:
        paths = [p.strip() for p in (v or "").split(",") if p.strip()]
        for path in paths:
            if not Path(path).is_file():
                raise ValueError(f"SIYU_PAY_PLATFORM_CERT_PATHS: no file at {path}")
        return ",".join(paths) or None

    @field_validator("groupbuy_hold_minutes")
    @classmethod
    def _hold(cls, v: int) -> int:
        if v < 1:
            raise ValueError(f"SIYU_GROUPBUY_HOLD_MINUTES: at least 1 minute, got {v}")
        return v

    @field_validator("mp_session_ttl_hours")
    @classmethod
    def _mp_session_ttl(cls, v: int) -> int:
        if not 1 <= v <= 24 * 365:
            raise ValueError(f"SIYU_MP_SESSION_TTL_HOURS: 1 to 8760 hours, got {v}")
        return v

    @field_validator("booking_no_show_grace_minutes")
    @classmethod
    def _no_show_grace(cls, v: int) -> int:
        if not 0 <= v <= 24 * 60:
            raise ValueError(f"SIYU_BOOKING_NO_SHOW_GRACE_MINUTES: 0 to 1440 minutes, got {v}")
        return v

    @field_validator("quiet_hours")
    @classmethod
    def _quiet_hours(cls, v: str) -> str:
        try:
            QuietHours.parse(v)
        except ValueError as exc:
            raise ValueError(f"SIYU_QUIET_HOURS: {exc}") from None
        return v.strip()

    @field_validator("inbox_retention_days")
    @classmethod
    def _retention(cls, v: int) -> int:
        if v < 1:
            raise ValueError(f"SIYU_INBOX_RETENTION_DAYS: at least 1 day, got {v}")
        return v

    @model_validator(mode="after")
    def _channels_complete(self) -> Settings:
        # A channel is configured completely or not at all: half a channel would otherwise start, fall back to
        # the sandbox or fail every callback at run time. SIYU_SANDBOX=off wants every channel configured.
        for rule in CHANNELS.values():
            given = [n for n in rule.variables if getattr(self, n)]
            if not given and self.sandbox != "off":
                continue
            for name, why in rule.required:
                if not getattr(self, name):
                    cause = f"once SIYU_{given[0].upper()} is set" if given else "when SIYU_SANDBOX=off"
                    raise ValueError(f"SIYU_{name.upper()}: required {cause} ({rule.label}: {why})")
            for pair in rule.together:
                have = [n for n in pair if getattr(self, n)]
                if have and len(have) < len(pair):
                    name = next(n for n in pair if not getattr(self, n))
                    raise ValueError(f"SIYU_{name.upper()}: required once SIYU_{have[0].upper()} is set "
                                     f"({rule.label}: the two go together)")
        return self

    # -- derived --------------------------------------------------------------
    @property
    def tz(self) -> ZoneInfo:
        """The business time zone."""
        return ZoneInfo(self.timezone)

    @property
    def quiet(self) -> QuietHours | None:
        """The default quiet hours of every send to a customer (a campaign may tighten them)."""
        return QuietHours.parse(self.quiet_hours)

    @property
    def embedded(self) -> bool:
        """True when no Redis is configured: jobs and schedules run inside the server process."""
        return self.redis_url is None

    def uses_sandbox(self, channel: str) -> bool:
        """True when `channel` (wecom, official_account, miniprogram, pay) is unconfigured and the sandbox stands in."""
        if self.sandbox == "off":
            return False
        return not any(getattr(self, n) for n in CHANNELS[channel].variables)

    def __repr_args__(self):
        # Settings hold every secret: a repr in a log line or an error must not print them.
        return [(k, "***" if k in SECRET_SETTINGS and v else v) for k, v in super().__repr_args__()]

    def secret(self) -> str:
        """The key signing mini-program sessions: SIYU_SECRET_KEY, or one generated once into var/."""
        if self.secret_key:
            return self.secret_key
        return read_or_create(self.var_dir / "secret_key", lambda: secrets.token_urlsafe(48))


@dataclass(frozen=True)
class ChannelRule:
    """What a channel needs once any of its variables is set."""

    label: str
    required: tuple[tuple[str, str], ...]  # (setting, what Siyu needs it for)
    optional: tuple[str, ...] = ()
    together: tuple[tuple[str, ...], ...] = ()  # optional settings that are set together or not at all

    @property
    def variables(self) -> tuple[str, ...]:
        """Every setting of the channel."""
        return (*(n for n, _ in self.required), *self.optional)


_SIGNED = "callbacks are signed with it"
CHANNELS: dict[str, ChannelRule] = {
    "wecom": ChannelRule("WeCom", (
        ("wecom_corp_id", "API calls and callbacks name the corp"), ("wecom_token", _SIGNED),
        ("wecom_aes_key", "callbacks are encrypted with it"),
        ("wecom_contact_secret", "the 客户联系 APIs are called with it"),
    ), optional=("wecom_agent_id", "wecom_agent_secret"), together=(("wecom_agent_id", "wecom_agent_secret"),)),
    "official_account": ChannelRule("official account", (
        ("oa_app_id", "API calls and callbacks name the account"), ("oa_app_secret", "API calls need its token"),
        ("oa_token", _SIGNED),
    ), optional=("oa_aes_key",)),
    "miniprogram": ChannelRule("mini-program", (
        ("mp_app_id", "API calls and callbacks name the mini-program"),
        ("mp_app_secret", "logins and API calls need it"), ("mp_token", _SIGNED),
    ), optional=("mp_aes_key",)),
    # Siyu verifies answers and notifications with WeChat Pay's public key (it downloads no platform
    # certificates): without the key and its id no payment could ever be confirmed.
    "pay": ChannelRule("WeChat Pay", (
        ("pay_mch_id", "every call names the merchant"),
        ("pay_apiv3_key", "notifications are decrypted with it"),
        ("pay_private_key_path", "requests are signed with the merchant key"),
        ("pay_cert_serial", "requests name the merchant certificate"),
        ("pay_public_key_path", "answers and notifications are verified with it"),
        ("pay_public_key_id", "answers and notifications name the public key by it"),
    ), optional=("pay_platform_cert_paths",)),
}
SECRET_SETTINGS = frozenset({
    "admin_token", "secret_key", "database_url", "redis_url", "wecom_token", "wecom_aes_key",
    "wecom_contact_secret", "wecom_agent_secret", "oa_app_secret", "oa_token", "oa_aes_key", "mp_app_secret",
    "mp_token", "mp_aes_key", "pay_apiv3_key",
})


def load_settings(**overrides) -> Settings:
    """Build settings from the environment, turning a validation failure into one SettingsError line."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        msg = str(err.get("msg", "")).removeprefix("Value error, ")
        if not msg.startswith("SIYU_"):
            loc = "_".join(str(p) for p in err.get("loc", ())).upper()
            msg = f"SIYU_{loc}: {msg}"
        raise SettingsError(msg) from None


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; tests call `get_settings.cache_clear()`)."""
    return load_settings()
