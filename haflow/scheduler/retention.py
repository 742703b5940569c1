"""The leader's retention pass: every `[retention] interval`, while this scheduler leads,
delete what is older than `[retention] older_than_days` (`RetentionQueries.clean`), batch by
batch with a short pause between, on a thread of its own so scheduling never waits for it."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from haflow.core.clock import Clock, utcnow
from haflow.errors import HaflowError
from haflow.metastore.repository import Repository
from haflow.scheduler.leader_part import LeaderPart

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetentionConfig:
    older_than_days: float
    tables: Sequence[str]
    interval_s: float = 3600.0
    batch_size: int = 1000
    pause_s: float = 0.05  # between batches: room for the scheduler's own transactions
    first_delay_s: float = 60.0  # after taking over: the takeover's own work goes first


class RetentionPass(LeaderPart):
    """A part of the scheduler daemon that prunes while this scheduler leads."""

    name = "retention"

    def __init__(self, repo: Repository, cfg: RetentionConfig, *, clock: Clock = utcnow) -> None:
        super().__init__()
        self.repo = repo
        self.cfg = cfg
        self.clock = clock
        self._due = 0.0

    def _lead(self, epoch: int) -> None:
        self._due = time.monotonic() + self.cfg.first_delay_s

    def _leading(self) -> bool:
        return self.epoch is not None

    def _run(self) -> None:
        while not self._stop.is_set():
            wait = self._due - time.monotonic()
            if self._leading() and wait <= 0:
                try:
                    self.run_once()
                except Exception:  # a bug here must not end the thread (and the scheduler)
                    log.exception("retention pass")
                self._due = time.monotonic() + self.cfg.interval_s
                continue
            self._wake.wait(wait if self._leading() else None)
            self._wake.clear()

    def run_once(self) -> dict[str, int]:
        """One pass; stops early when leadership ends. Returns the rows deleted per table."""
        cutoff = self.clock() - timedelta(days=self.cfg.older_than_days)

        def before_batch() -> None:
            if not self._leading():
                raise _StandDown
            self._stop.wait(self.cfg.pause_s)

        try:
            deleted = self.repo.retention.clean(
                cutoff, self.cfg.tables, batch=self.cfg.batch_size, before_batch=before_batch
            )
        except _StandDown:
            return {}
        except HaflowError as exc:
            log.warning("retention pass failed (tried again in %s s): %s", self.cfg.interval_s, exc)
            return {}
        if any(deleted.values()):
            log.info("retention: deleted %s (older than %s)", deleted, cutoff.isoformat())
        return deleted


class _StandDown(Exception):
    """Leadership ended mid-pass."""
