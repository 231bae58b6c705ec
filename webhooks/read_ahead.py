"""Reads a batch's handlers would make one after another, made at once before the first handler runs.

A job applying forty contact events re-reads forty contacts from WeCom (the callback can be stale): one after
another that is forty round trips of waiting, against Tencent from a store's server some 30–100 ms each. The
batch holds every customer's lock before any handler runs (`webhooks.inbox`), so reading them all right after
the locks are taken sees what each handler would have read itself. A handler names what it reads with
`@reads_ahead(reader)`; inside `read_ahead(...)`, `ahead(reader, key)` answers the first read of each key from
what was read ahead, and any later read of that key (after a handler of the batch changed it on WeCom) afresh.
A read ahead that failed is not kept: the handler reads again and meets the error itself.
"""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass

from config.settings import get_settings

log = logging.getLogger(__name__)
_MISSING = object()


@dataclass(frozen=True)
class Reader:
    """One kind of read: `key` says what an event reads (None: nothing), `read` reads it."""

    name: str
    key: Callable[[object], str | None]
    read: Callable[[str], object]


_read: ContextVar[dict | None] = ContextVar("read_ahead", default=None)


def reads_ahead(reader: Reader):
    """Mark a handler as reading `reader`'s key of its event first thing."""

    def mark(fn):
        fn.reads_ahead = reader
        return fn

    return mark


@contextlib.contextmanager
def read_ahead(batch: Iterable[tuple[Callable, object]]) -> Iterator[int]:
    """Within the block, the reads of these (handler, event) pairs are answered from reads made now, at once;
    yields how many were made."""
    wanted: dict[tuple[str, str], Reader] = {}
    for handler, event in batch:
        reader = getattr(handler, "reads_ahead", None)
        try:
            key = reader.key(event) if reader is not None else None
        except Exception:  # noqa: BLE001 - its handler meets the fault alone, as without reading ahead
            key = None
        if key:
            wanted.setdefault((reader.name, key), reader)
    at_once = get_settings().wechat_read_ahead  # SIYU_WECHAT_READ_AHEAD
    if len(wanted) < 2 or at_once < 2:  # one read gains nothing from going first
        yield 0
        return
    done: dict[tuple[str, str], object] = {}
    with ThreadPoolExecutor(max_workers=min(at_once, len(wanted)), thread_name_prefix="read-ahead") as pool:
        futures = {pair: pool.submit(reader.read, pair[1]) for pair, reader in wanted.items()}
    for pair, future in futures.items():
        if (error := future.exception()) is None:
            done[pair] = future.result()
        else:  # the handler reads again, and meets the error itself if it lasts
            log.info("read ahead of %s %s failed (%s), left to its handler", pair[0], pair[1], error)
    token = _read.set(done)
    try:
        yield len(done)
    finally:
        _read.reset(token)


def ahead(reader: Reader, key: str):
    """What `reader` reads for `key`: read ahead the first time within `read_ahead`, else read now."""
    done = _read.get()
    if done is not None:
        found = done.pop((reader.name, key), _MISSING)
        if found is not _MISSING:
            return found
    return reader.read(key)
