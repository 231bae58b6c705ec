"""The shrink guard of `siyu sync wecom`: an answer that would remove more than SIYU_SYNC_MAX_SHRINK of what
Siyu holds from WeCom is refused, because an empty or truncated answer (a wrong visible range, a secret
of another app, a bad day at Tencent) looks exactly like everybody leaving at once.
"""
from __future__ import annotations

from dataclasses import dataclass

from config.errors import Conflict


@dataclass(frozen=True)
class Shrink:
    """What one kind of removal would do: `removing` of the `held` rows Siyu has from WeCom."""

    verb: str  # deactivate, end, dismiss, remove
    what: str  # active staff, relations…
    held: int
    removing: int

    def exceeds(self, share: float) -> bool:
        """True when more than `share` of what is held would go (an empty answer removes 100 %)."""
        return self.held > 0 and self.removing > share * self.held

    def __str__(self) -> str:
        return f"{self.verb} {self.removing} of {self.held} {self.what} ({round(100 * self.removing / self.held)} %)"


class ShrinkRefused(Conflict):
    """A sync refused to apply removals; the message is the one line `siyu sync wecom` prints."""

    def __init__(self, over: list[Shrink], share: float, kept: str):
        self.over = over
        super().__init__(
            f"sync wecom refused: WeCom's answer would {' and '.join(map(str, over))}, more than "
            f"SIYU_SYNC_MAX_SHRINK ({round(100 * share)} %); {kept} — check the app's visible range and "
            "secrets in WeCom, or run `siyu sync wecom --allow-shrink` if the shrink is real")


def refusal(shrinks: list[Shrink], share: float, allow: bool, kept: str) -> ShrinkRefused | None:
    """The refusal to raise when a removal exceeds `share` and `allow` is not given; None otherwise."""
    over = [s for s in shrinks if s.exceeds(share)]
    return ShrinkRefused(over, share, kept) if over and not allow else None
