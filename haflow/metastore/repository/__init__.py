"""Every query haflow runs against the metastore lives in this package, and nowhere else.

`Repository` is the one object the rest of haflow talks to. It holds no query of its own: each
concern is a small query group on the same engine, named after what it reads and writes
(`repo.attempts.claim(...)`, `repo.runs.trigger(...)`, `repo.leadership.take(...)`), so a
reader finds `repo.X.y` in module `X`. The invariants every group keeps are stated in `_base`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from haflow.metastore.crypto import Crypto
from haflow.metastore.repository._base import _Base, _event
from haflow.metastore.repository.attempts import AttemptQueries
from haflow.metastore.repository.backfills import BackfillQueries
from haflow.metastore.repository.connections import ConnectionQueries
from haflow.metastore.repository.dags import DagQueries
from haflow.metastore.repository.history import HistoryQueries
from haflow.metastore.repository.leadership import LeadershipQueries
from haflow.metastore.repository.members import MemberQueries
from haflow.metastore.repository.metrics import MetricsQueries
from haflow.metastore.repository.notifications import NotificationQueries
from haflow.metastore.repository.overview import OverviewQueries
from haflow.metastore.repository.pools import PoolQueries
from haflow.metastore.repository.retention import RetentionQueries
from haflow.metastore.repository.runs import RunQueries
from haflow.metastore.repository.scheduling import SchedulingQueries
from haflow.metastore.repository.users import UserQueries
from haflow.metastore.repository.variables import VariableQueries


class Repository(_Base):
    """The metastore seen through haflow's operations. `actor` names the writer in events;
    `crypto` holds this node's `[core] fernet_key` (variables and connections need it)."""

    def __init__(
        self,
        engine: Engine,
        *,
        cluster: str = "default",
        actor: str = "cli",
        crypto: Crypto | None = None,
    ) -> None:
        super().__init__(engine, cluster=cluster, actor=actor)
        on = dict(cluster=cluster, actor=actor)
        self.leadership = LeadershipQueries(engine, **on)
        self.members = MemberQueries(engine, **on)
        self.scheduling = SchedulingQueries(engine, **on)
        self.attempts = AttemptQueries(engine, **on)
        self.dags = DagQueries(engine, **on)
        self.runs = RunQueries(engine, **on)
        self.history = HistoryQueries(engine, **on)
        self.overview = OverviewQueries(engine, **on)
        self.users = UserQueries(engine, **on)
        self.metrics = MetricsQueries(engine, **on)
        self.notifications = NotificationQueries(engine, **on)
        self.retention = RetentionQueries(engine, **on)
        self.pools = PoolQueries(engine, **on)
        self.backfills = BackfillQueries(engine, **on)
        crypto = crypto if crypto is not None else Crypto("")
        self.variables = VariableQueries(engine, crypto=crypto, **on)
        self.connections = ConnectionQueries(engine, crypto=crypto, **on)

    def ping(self) -> None:
        """A round trip to the metastore; BackendUnavailable when it cannot be reached."""
        with self._tx() as conn:
            conn.execute(select(1))

    def unreadable_secrets(self) -> list[str]:
        """The variables and connections this node's `[core] fernet_key` cannot decrypt."""
        return [f"variable {k!r}" for k in self.variables.unreadable()] + [
            f"connection {c!r}" for c in self.connections.unreadable()
        ]

    def check_secrets(self) -> None:
        """At a daemon's start: SecretKeyError unless every secret stored decrypts here."""
        bad = self.unreadable_secrets()
        if bad:
            shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
            raise self.variables.crypto.cannot_decrypt(shown)

    def record_event(self, kind: str, now: datetime, **fields: Any) -> None:
        with self._tx() as conn:
            self._emit(conn, [_event(kind, self.actor, now, **fields)])


__all__ = ["Repository"]
