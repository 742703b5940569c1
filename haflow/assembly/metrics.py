"""Assembles the metrics of a scheduler or a worker from the settings.

Called before the daemon starts any child process: it switches this process to multiprocess
values in a private directory, which the children inherit through the environment.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from haflow.config import Settings
from haflow.core.clock import utcnow
from haflow.metastore.repository.metrics import MetricsQueries
from haflow.metastore.repository.pools import PoolQueries
from haflow.metrics.collectors import BuildInfo, SchedulerState, ZooKeeperState
from haflow.metrics.definitions import scheduler_metric_set
from haflow.metrics.metastore import MetastoreCollector
from haflow.metrics.process import enable_multiprocess, private_directory
from haflow.metrics.scheduler import SchedulerMetrics
from haflow.metrics.server import MetricsServer


@dataclass(frozen=True)
class SchedulerObserver:
    listener: SchedulerMetrics
    server: MetricsServer  # a helper service of the scheduler: started and stopped with it


def scheduler_observer(
    settings: Settings,
    engine: Engine,
    cluster: str,
    *,
    configured_mode: str,
    zk_state: Callable[[], str] | None = None,
) -> SchedulerObserver:
    directory = private_directory("scheduler")
    enable_multiprocess(directory)
    queries = MetricsQueries(engine, cluster=cluster, actor="metrics")
    listener = SchedulerMetrics(
        scheduler_metric_set(), queries, configured_mode=configured_mode, started_at=utcnow()
    )
    collectors = [
        BuildInfo("scheduler"),
        SchedulerState(listener, zk_state),
        MetastoreCollector(
            queries,
            lambda: listener.leading,
            worker_timeout_s=settings.worker.timeout,
            default_queue=settings.celery.default_queue,
            pools=PoolQueries(engine, cluster=cluster, actor="metrics").list,
        ),
    ]
    server = MetricsServer(
        settings.scheduler.metrics_port,
        directory,
        collectors,
        addr=settings.scheduler.metrics_host,
        setting="[scheduler] metrics_port",
    )
    return SchedulerObserver(listener, server)


def worker_observer(settings: Settings, zk_state: Callable[[], str] | None = None) -> MetricsServer:
    """The worker's /metrics; its pool processes (spawned after this call) record their
    attempts' metrics in the same directory (`attempt_metrics`)."""
    directory = private_directory("worker")
    enable_multiprocess(directory)
    collectors = [BuildInfo("worker"), *([ZooKeeperState(zk_state)] if zk_state else [])]
    return MetricsServer(
        settings.worker.metrics_port,
        directory,
        collectors,
        addr=settings.worker.metrics_host,
        setting="[worker] metrics_port",
    )
