"""The sandbox's state: what Tencent would know about one corp, one official account, one
mini-program and one merchant, plus the rules Tencent enforces on them.

Tests and `make demo` seed it in Python (`add_staff`, `add_external_contact`, `new_welcome_code`…);
the HTTP routes in this package read and change it under one lock.
"""
from __future__ import annotations

import secrets
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field

from bot import credentials as C
from bot.limiter import LocalLimiter, parse_bands
from bot.sandbox.errors import err, err_code
from bot.sandbox.pay_state import PayState
from bot.sandbox.transfer_state import TransferState
from bot.sandbox.wechat_state import WeChatState
from bot.sandbox.wecom_state import WeComState

TOKEN_TTL = 7200


@dataclass
class IssuedToken:
    app: str  # corp id or app id
    secret: str
    expires_at: float


@dataclass
class SandboxState(WeComState, TransferState, WeChatState, PayState):
    """Everything the sandbox knows; every public method is safe to call from tests while it serves."""

    corp_id: str = C.SANDBOX_CORP_ID
    wecom_secrets: set[str] = field(default_factory=lambda: {C.SANDBOX_CONTACT_SECRET, C.SANDBOX_AGENT_SECRET})
    agent_id: str = C.SANDBOX_AGENT_ID  # the one app that may send app messages and task cards
    agent_secret: str = C.SANDBOX_AGENT_SECRET
    oa_app_id: str = C.SANDBOX_OA_APP_ID
    oa_secret: str = C.SANDBOX_OA_APP_SECRET
    mp_app_id: str = C.SANDBOX_MP_APP_ID
    mp_secret: str = C.SANDBOX_MP_APP_SECRET
    rate_limits: str = "10000/60,150000/3600"  # Tencent's per-corp, per-API rule
    monthly_mass_quota: int = 4  # mass messages one customer may receive from the corp per month
    reject_all_tokens: bool = False  # every token is invalid (tests of bounded refresh)
    latency: float = 0.0  # seconds every API call takes before it is answered (Tencent across the internet)
    lock: threading.RLock = field(default_factory=threading.RLock)
    calls: Counter = field(default_factory=Counter)  # API path -> calls received
    tokens: dict[str, IssuedToken] = field(default_factory=dict)
    faults: dict[str, deque] = field(default_factory=dict)  # API path -> errcodes to answer next
    lost_answers: Counter = field(default_factory=Counter)  # API path -> calls to carry out, then answer HTTP 504
    clock_offset: float = 0.0
    _limiter: LocalLimiter | None = None

    def __post_init__(self) -> None:
        self._init_wecom()
        self._init_transfers()
        self._init_wechat()
        self._init_pay()

    # -- pickling (bot/sandbox/store.py shares the state between processes) ----------------------------
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("lock", None)  # a lock and token buckets belong to one process
        state.pop("_limiter", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.lock = threading.RLock()
        self._limiter = None

    # -- time ---------------------------------------------------------------------------------
    def now(self) -> float:
        """The sandbox's clock (wall time plus whatever `advance` added)."""
        return time.time() + self.clock_offset

    def advance(self, seconds: float) -> None:
        """Move the sandbox's clock forward: codes and tokens expire as if that time had passed."""
        with self.lock:
            self.clock_offset += seconds

    # -- faults and limits ------------------------------------------------------------------------
    def inject(self, api: str, *errcodes: int) -> None:
        """Answer the next calls to `api` (e.g. `externalcontact/get`) with these errcodes, in order."""
        with self.lock:
            self.faults.setdefault(api, deque()).extend(errcodes)

    def lose_answer(self, api: str, times: int = 1) -> None:
        """The next `times` calls to `api` are carried out, then answered HTTP 504 (outcome unknown to the caller)."""
        with self.lock:
            self.lost_answers[api] += times

    def take_lost_answer(self, api: str) -> bool:
        """Whether this call's answer is to be lost (consuming one)."""
        if self.lost_answers[api] <= 0:
            return False
        self.lost_answers[api] -= 1
        return True

    def set_rate_limits(self, spec: str) -> None:
        """Change the per-scope, per-API limit ("calls/seconds,…"); buckets start full."""
        with self.lock:
            self.rate_limits = spec
            self._limiter = None

    def gate(self, scope: str, api: str) -> dict | None:
        """Count the call; an error answer when a fault is queued or the rate limit is exceeded."""
        self.calls[api] += 1
        queued = self.faults.get(api)
        if queued:
            return err_code(queued.popleft())
        if self._limiter is None:
            self._limiter = LocalLimiter(parse_bands(self.rate_limits))
        if not self._limiter.try_acquire(scope, api):
            return err("freq_limit")
        return None

    # -- tokens -----------------------------------------------------------------------------------
    def issue_token(self, app: str, secret: str) -> tuple[str, int]:
        """The app's current token for `secret`, or a new one (Tencent answers the same token until expiry)."""
        now = self.now()
        for value, tok in self.tokens.items():
            if tok.app == app and tok.secret == secret and tok.expires_at > now:
                return value, int(tok.expires_at - now)
        value = "sbx_" + secrets.token_urlsafe(24)
        self.tokens[value] = IssuedToken(app, secret, now + TOKEN_TTL)
        return value, TOKEN_TTL

    def check_token(self, app: str, token: str | None) -> dict | None:
        """An error answer unless `token` is a live token of `app`."""
        if not token:
            return err("missing_token")
        tok = self.tokens.get(token)
        if tok is None or tok.app != app or self.reject_all_tokens:
            return err("invalid_token")
        if tok.expires_at <= self.now():
            return err("expired_token")
        return None

    def expire_tokens(self) -> None:
        """Expire every issued token now (the next call answers 42001)."""
        with self.lock:
            for tok in self.tokens.values():
                tok.expires_at = self.now() - 1

    def new_id(self, prefix: str, n: int = 24) -> str:
        """A random id in Tencent's style."""
        return prefix + secrets.token_urlsafe(n)[:n].replace("-", "A").replace("_", "B")


_state: SandboxState | None = None
_state_lock = threading.Lock()


def get_state() -> SandboxState:
    """The process's sandbox state."""
    global _state
    with _state_lock:
        if _state is None:
            _state = SandboxState()
        return _state


def reset_state(**options) -> SandboxState:
    """Start over with an empty sandbox (tests)."""
    global _state
    with _state_lock:
        _state = SandboxState(**options)
        return _state
