"""Gauges read from the metastore at scrape time: task instances, runs, queued attempts, workers.

They describe the whole cluster, so only the leader exports them (a standby yields nothing):
summing over every scheduler never counts anything twice, and the series move to the new
leader's instance on a failover. A metastore that cannot be read yields `haflow_metastore_up 0`
and none of the other gauges, rather than stale numbers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from haflow.core.clock import Clock, utcnow
from haflow.core.states import RunState, TaskState
from haflow.errors import HaflowError
from haflow.metastore.records import PoolRow
from haflow.metastore.repository.metrics import MetricsQueries

log = logging.getLogger(__name__)

WORKER_STATES = ("alive", "dead", "stopped")


class MetastoreCollector(Collector):
    def __init__(
        self,
        queries: MetricsQueries,
        leading: Callable[[], bool],
        *,
        worker_timeout_s: float,
        default_queue: str = "default",
        horizon_s: float = 86400.0,
        clock: Clock = utcnow,
        pools: Callable[[], list[PoolRow]] | None = None,
    ) -> None:
        self.queries = queries
        self.leading = leading
        self.worker_timeout_s = worker_timeout_s
        self.default_queue = default_queue
        self.horizon_s = horizon_s  # workers silent for longer are forgotten, not "dead"
        self.clock = clock
        self.pools = pools
        self._failing = False

    def collect(self) -> Iterator[Metric]:
        if not self.leading():
            return
        try:
            families = self._read(self.clock())
        except HaflowError as exc:
            if not self._failing:
                log.warning("metastore metrics unavailable: %s", exc)
            self._failing = True
            yield _up(0)
            return
        self._failing = False
        yield _up(1)
        yield from families

    def _read(self, now: datetime) -> list[Metric]:
        q = self.queries
        return [
            _by_state(
                "haflow_task_instances",
                "Task instances of unfinished runs, by state (exported by the leader).",
                [s.value for s in TaskState],
                q.active_task_instance_states(),
            ),
            _by_state(
                "haflow_dag_runs",
                "Unfinished runs, by state (exported by the leader).",
                [RunState.QUEUED.value, RunState.RUNNING.value],
                q.active_run_states(),
            ),
            *self._queued(now),
            *self._workers(now),
            *self._pools(),
            GaugeMetricFamily(
                "haflow_dag_import_errors",
                "DAG files that failed to import at the leader's last parse (exported by the "
                "leader).",
                value=q.import_errors(),
            ),
        ]

    def _queued(self, now: datetime) -> list[Metric]:
        count = GaugeMetricFamily(
            "haflow_executor_queued",
            "Attempts committed as queued and not yet claimed by a worker, by queue "
            "(exported by the leader).",
            labels=["queue"],
        )
        oldest = GaugeMetricFamily(
            "haflow_executor_queued_oldest_seconds",
            "Age of the oldest attempt waiting to be claimed; 0 when none waits "
            "(exported by the leader).",
        )
        rows = {r.queue: r for r in self.queries.queued_attempts()}
        for queue in sorted({self.default_queue, *rows}):
            count.add_metric([queue], rows[queue].count if queue in rows else 0)
        times = [r.oldest for r in rows.values() if r.oldest is not None]
        oldest.add_metric([], max(0.0, (now - min(times)).total_seconds()) if times else 0.0)
        return [count, oldest]

    def _pools(self) -> list[Metric]:
        if self.pools is None:
            return []
        slots = GaugeMetricFamily(
            "haflow_pool_slots",
            "Slots of each pool by state: running and queued (held by task instances in "
            "flight) and open (+Inf for a pool without a cap; negative when the pool was "
            "shrunk below what is in use) (exported by the leader).",
            labels=["pool", "state"],
        )
        for p in self.pools():
            free = float("inf") if p.unlimited else p.open
            for state, value in (("running", p.running), ("queued", p.queued), ("open", free)):
                slots.add_metric([p.name, state], value)
        return [slots]

    def _workers(self, now: datetime) -> list[Metric]:
        states = GaugeMetricFamily(
            "haflow_workers",
            "Workers heard from in the last day, by state: alive, dead (silent for longer "
            "than [worker] timeout without stopping), stopped (exported by the leader).",
            labels=["state"],
        )
        ages = GaugeMetricFamily(
            "haflow_worker_heartbeat_age_seconds",
            "Seconds since each worker's last heartbeat, for workers not stopped "
            "(exported by the leader).",
            labels=["worker"],
        )
        counts = dict.fromkeys(WORKER_STATES, 0)
        for wid, state, beat in self.queries.worker_beats(now - timedelta(seconds=self.horizon_s)):
            age = max(0.0, (now - beat).total_seconds())
            if state == "stopped":
                counts["stopped"] += 1
                continue
            counts["dead" if age > self.worker_timeout_s else "alive"] += 1
            ages.add_metric([wid], age)
        for state, n in counts.items():
            states.add_metric([state], n)
        return [states, ages]


def _by_state(name: str, doc: str, known: list[str], found: dict[str, int]) -> GaugeMetricFamily:
    g = GaugeMetricFamily(name, doc, labels=["state"])
    for state in sorted({*known, *found}):
        g.add_metric([state], found.get(state, 0))
    return g


def _up(value: int) -> GaugeMetricFamily:
    return GaugeMetricFamily(
        "haflow_metastore_up",
        "1 when the leader could read the metastore for this scrape (exported by the leader).",
        value=value,
    )
