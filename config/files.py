"""Files Siyu keeps on disk (var/: the SQLite database, tokens.db, sandbox keys, admin token, secret key): private.

The directory is what keeps other users out: it is created 0700 and tightened at every start if it was
left looser, so a file's brief default mode between its creation and its chmod exposes nothing. Each
file is 0600 besides, so a copy of the tree (a backup, a container layer) keeps them private.
Explicit modes rather than a process umask: a umask would also apply to whatever else the process
writes and would do nothing for a var/ an older release left readable.
"""
from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

DIR_MODE = 0o700
FILE_MODE = 0o600


def make_private_dir(path: Path) -> Path:
    """Create `path` and its missing parents 0700 (an existing directory is left as it is)."""
    missing = []
    for parent in [path, *path.parents]:
        if parent.exists():
            break
        missing.append(parent)
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=DIR_MODE)
        except FileExistsError:  # another process made it first
            pass
        else:
            directory.chmod(DIR_MODE)  # mkdir's mode passes through the umask
    return path


def make_private(path: Path, mode: int = FILE_MODE) -> None:
    """Take group and other permissions off `path` when it exists and has any."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    current = stat.S_IMODE(st.st_mode)
    if current & 0o077 and not stat.S_ISLNK(st.st_mode):
        os.chmod(path, current & mode)


def secure_var_dir(var_dir: Path) -> Path:
    """Create var/ 0700, or tighten it and everything in it (directories 0700, files 0600)."""
    make_private_dir(var_dir)
    try:
        make_private(var_dir, DIR_MODE)
        for root, dirs, files in os.walk(var_dir):  # os.walk does not follow symlinks
            for name in dirs:
                make_private(Path(root) / name, DIR_MODE)
            for name in files:
                make_private(Path(root) / name, FILE_MODE)
    except PermissionError as exc:  # someone else's directory: say so, the operator decides
        log.warning("var dir %s: cannot make it private (%s)", var_dir, exc)
    return var_dir
