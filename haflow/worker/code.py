"""Where an attempt's code comes from: its run's code version, from the metastore, unpacked
once per node into a cache folder keyed by its hash (`haflow.dag.bundle`).

A worker never reads its own DAGs folder for a run that has a version: it needs none, and an
edit to the folder, or a stale copy of it, cannot change what a run executes. A run made
before versions were kept (no hash) still runs from the folder, found as before.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from haflow.dag import bundle
from haflow.dag.loader import locate
from haflow.errors import HaflowError
from haflow.metastore.records import ClaimedAttempt, DagCode

_HASH = re.compile(r"[0-9a-f]{64}")
_TOUCH_EVERY_S = 3600.0


class CodeUnavailable(HaflowError):
    """An attempt's code version cannot be had on this node: the attempt fails, saying why."""


@dataclass(frozen=True)
class CodeLocation:
    """The DAG file an attempt imports, and the folder its helper modules are imported from:
    first on the import path for a version (whose helpers are the ones its parse imported),
    last for the DAGs folder (as Airflow puts it)."""

    path: str
    root: str
    versioned: bool = False
    as_path: str | None = None  # a version's file runs as this file of the DAGs folder


class CodeSource:
    """Thread-safe; `fetch` reads a version from the metastore by hash."""

    def __init__(
        self, fetch: Callable[[str], DagCode], cache: str | Path, dags_folder: Path
    ) -> None:
        self.fetch = fetch
        self.base = bundle.cache_folder(cache)  # refused if unsafe
        self.dags_folder = Path(dags_folder)
        self._known: dict[tuple[str, str], CodeLocation] = {}  # (hash, fileloc) -> where
        self._touched: dict[str, float] = {}
        self._lock = threading.Lock()

    def locate(self, c: ClaimedAttempt) -> CodeLocation:
        """The code attempt `c` runs: its run's version, unpacked here if it is not yet."""
        if c.code_hash is None:
            return CodeLocation(locate(c.fileloc, self.dags_folder), str(self.dags_folder))
        h = c.code_hash
        if not _HASH.fullmatch(h):
            raise CodeUnavailable(f"run {c.run_id!r} names a malformed code version {h!r}")
        with self._lock:
            known = self._known.get((h, c.fileloc))
            if known is None:
                as_path = locate(c.fileloc, self.dags_folder)  # what it runs as (`__file__`)
                known = self._known[(h, c.fileloc)] = replace(self._unpack(h), as_path=as_path)
            now = time.monotonic()
            if now - self._touched.get(h, -_TOUCH_EVERY_S) >= _TOUCH_EVERY_S:
                bundle.touch(Path(known.root))  # in use: the cache keeps it
                self._touched[h] = now
            return known

    def _unpack(self, h: str) -> CodeLocation:
        try:
            folder = bundle.unpacked(self.base, h, lambda x: self.fetch(x).packed)
        except HaflowError as exc:
            raise CodeUnavailable(f"cannot have DAG code version {h[:12]}: {exc}") from exc
        except OSError as exc:
            why = f"{type(exc).__name__}: {exc}"
            raise CodeUnavailable(
                f"cannot unpack DAG code version {h[:12]} into {self.base}: {why}"
            ) from exc
        return CodeLocation(bundle.entry_of(folder), str(folder), versioned=True)
