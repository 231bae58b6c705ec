"""Prometheus metrics of a whole deployment: every Siyu process counts into one directory, /metrics adds them up.

`siyu serve --workers N`, `siyu worker`, `siyu scheduler` and `siyu sync wecom` are separate processes. With
prometheus_client's multiprocess mode each keeps its samples in memory-mapped files of one directory
(`PROMETHEUS_MULTIPROC_DIR`) and a scrape of any server process reads them all, so the counters of four
uvicorn workers and of the RQ workers add up instead of answering for whichever process took the scrape.
The mode is fixed per process when its first metric is made: metric modules take `Counter` and `Histogram`
from here, and the CLI calls `enable` before anything that defines a metric is imported.

Files are named by host and pid, so containers sharing the directory as a volume never write one file.
"""
from __future__ import annotations

import atexit
import hashlib
import os
import re
import socket
import stat
import tempfile
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest, values
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

__all__ = ["Counter", "Histogram", "clean_dead", "enable", "exposition", "process_id"]

ENV = "PROMETHEUS_MULTIPROC_DIR"
HOST = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname()) or "host"  # '_' separates the parts of a file name


class MetricsDirError(Exception):
    """The metrics directory cannot be used, in one line that names the variable."""


def process_id() -> str:
    """This process in the directory's file names: host and pid (distinct across containers on one volume)."""
    return f"{HOST}-{os.getpid()}"


def _install() -> None:
    # prometheus_client picks its value class when it is first imported; replace it (before any metric is made)
    # with one naming files by host and pid. Idempotent.
    if not os.environ.get(ENV) or getattr(values.ValueClass, "siyu_multiprocess", False):
        return
    value_class = values.MultiProcessValue(process_identifier=process_id)
    value_class.siyu_multiprocess = True
    values.ValueClass = value_class
    # Live gauges of a process that is gone must not be summed; counters and histograms stay (they are totals).
    atexit.register(lambda: mark_process_dead(process_id(), os.environ.get(ENV)))


def default_dir(var_dir: Path) -> Path:
    """The deployment's directory when none is given: private, in the temporary directory, one per var/."""
    digest = hashlib.sha1(str(Path(var_dir).resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"siyu-metrics-{os.getuid()}-{digest}"


def enable(var_dir: Path) -> Path:
    """Turn multiprocess mode on for this process and those it starts; the directory in use (given, or the default)."""
    given = os.environ.get(ENV)
    path = Path(given) if given else default_dir(var_dir)
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = path.lstat()
        if not stat.S_ISDIR(info.st_mode):
            raise MetricsDirError(f"{ENV}: {path} is not a directory")
        if not given:  # ours, in a shared temporary directory: nobody else may own it or read it
            if info.st_uid != os.getuid():
                raise MetricsDirError(f"{ENV}: {path} belongs to another user; set {ENV} to a directory of yours")
            path.chmod(0o700)
        if not os.access(path, os.W_OK | os.X_OK):
            raise MetricsDirError(f"{ENV}: {path} is not writable")
    except OSError as exc:
        raise MetricsDirError(f"{ENV}: {path}: {exc.strerror}") from None
    os.environ[ENV] = str(path)
    _install()
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_dead(path: Path | None = None) -> list[str]:
    """Remove the files of this host's processes that are gone (at `siyu serve` start); the names removed.

    Files of live processes (workers still running) and of other hosts (containers on the same volume) stay.
    `path` defaults to the directory in use.
    """
    path = path or os.environ.get(ENV)
    removed = []
    if not path:
        return removed
    for file in Path(path).glob("*.db"):
        host, _, pid = file.stem.rpartition("_")[2].rpartition("-")
        if host in (HOST, "") and pid.isdigit() and not _alive(int(pid)):
            file.unlink(missing_ok=True)
            removed.append(file.name)
    return removed


def exposition() -> bytes:
    """Prometheus text: the sum over every process's files in multiprocess mode, else this process's registry."""
    path = os.environ.get(ENV)
    if not path or not os.path.isdir(path):
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=path)
    return generate_latest(registry)


_install()  # a process started by one that enabled the mode (uvicorn's workers) inherits the variable
