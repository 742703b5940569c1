"""prometheus-client's multiprocess mode, as every haflow daemon uses it.

A scheduler (with the local executor) and a Celery worker run attempts in child processes, and
gunicorn runs the web app in several; counters recorded there must reach the daemon's /metrics.
prometheus-client does this with one mmap file per process and metric type in a directory named
by PROMETHEUS_MULTIPROC_DIR, chosen before the first metric is made. Each scheduler and worker
gets a private directory, made at start and removed at stop, so daemons on one host never mix
their files.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from prometheus_client import values

ENV = "PROMETHEUS_MULTIPROC_DIR"


def enable_multiprocess(directory: Path) -> None:
    """Record metrics made from now on in `directory` (this process and its children)."""
    os.environ[ENV] = str(directory)
    if not getattr(values.ValueClass, "_multiprocess", False):
        values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]


def private_directory(daemon: str) -> Path:
    """A fresh directory for one daemon's metric files."""
    return Path(tempfile.mkdtemp(prefix=f"haflow-{daemon}-metrics-"))


def empty_directory(directory: Path) -> None:
    """Remove the files of an earlier run: their counters would be added to this run's."""
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()


def remove_directory(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)


def multiprocess_enabled() -> bool:
    return bool(os.environ.get(ENV))
