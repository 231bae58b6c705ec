"""Secrets Siyu generates once into var/ (the embedded admin token, the session key)."""
from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path


def read_or_create(path: Path, generate: Callable[[], str]) -> str:
    """The secret kept at `path`, generated there first if missing: mode 0600 from its first byte, one value for all."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written whole under a private name, then linked into place: nobody else can read it at any moment,
        # nobody reads it half-written, and of concurrent starters the first link wins (the others read it).
        draft = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(generate())
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(draft, path)
            except FileExistsError:
                pass
        finally:
            draft.unlink(missing_ok=True)
    if stat.S_IMODE(path.stat().st_mode) & 0o077:  # written by an older Siyu, readable by others
        os.chmod(path, 0o600)
    return path.read_text().strip()
