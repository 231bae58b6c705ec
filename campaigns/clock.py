"""The campaign engine's clock: now, aware UTC; tests and the bench move it by hand (`frozen`)."""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import datetime

from config.types import utcnow

_source: list[Callable[[], datetime]] = []


def now() -> datetime:
    """The current instant as the engine sees it."""
    return _source[-1]() if _source else utcnow()


@contextlib.contextmanager
def using(source: Callable[[], datetime]) -> Iterator[None]:
    """Within the block, `now()` asks `source` (every thread)."""
    _source.append(source)
    try:
        yield
    finally:
        _source.remove(source)


class Manual:
    """A clock that stands still until `advance` or `set` moves it."""

    def __init__(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("clock: an aware instant, please")
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, **delta) -> datetime:
        """Move forward by timedelta keyword arguments (minutes=30…)."""
        from datetime import timedelta

        self.at += timedelta(**delta)
        return self.at

    def set(self, at: datetime) -> None:
        """Jump to `at`."""
        self.at = at
