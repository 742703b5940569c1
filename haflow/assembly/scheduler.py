"""Assembles a scheduler daemon from the settings: the one place that reads them for it."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from haflow.config import Settings
from haflow.dag.bundle import cache_folder, entry_of, unpacked
from haflow.election.base import Elector
from haflow.election.database import DatabaseElector
from haflow.election.policy import FailoverElector, fallback_note
from haflow.election.sole import SoleElector
from haflow.election.zookeeper import ZooKeeperElector
from haflow.errors import ConfigError
from haflow.executors.base import Executor
from haflow.executors.local import LocalExecutor, PoolConfig
from haflow.metastore.engine import create_engine
from haflow.metastore.notify import make_wakeup
from haflow.metastore.repository import Repository
from haflow.metastore.repository.retention import TABLES
from haflow.metrics.attempts import attempt_metrics
from haflow.notify.cluster import cluster_rules, send_config
from haflow.notify.send import send
from haflow.scheduler.dags import DagRegistry
from haflow.scheduler.listener import Listeners, SchedulerListener
from haflow.scheduler.loop import LoopConfig, SchedulingLoop
from haflow.scheduler.notifications import DispatchConfig, NotificationDispatcher
from haflow.scheduler.parsing import DagFileProcessor
from haflow.scheduler.retention import RetentionConfig, RetentionPass
from haflow.scheduler.service import SchedulerService, ServiceConfig, scheduler_id
from haflow.scheduler.worker_watch import ZkWorkerWatch
from haflow.service import Service
from haflow.worker.runner import RunnerConfig
from haflow.worker.taskenv import allowed


def build_elector(settings: Settings, holder: str, cluster: str) -> Elector:
    """`none`: the only scheduler; `database`: the database lock alone; `zookeeper`: the
    failover policy (ZooKeeper orders, the database lock decides); `auto`: `zookeeper` when
    `zk_hosts` is set, else `database`."""
    e = settings.election
    mode = election_mode(settings)
    if mode == "none":
        return SoleElector()
    lock = DatabaseElector(
        settings.core.sql_alchemy_conn, cluster, holder, lock_timeout_s=e.db_lock_timeout
    )
    if mode == "database":
        return lock
    if not e.zk_hosts:
        raise ConfigError(
            "[election] mode = zookeeper needs [election] zk_hosts (host:port,...[/chroot])"
        )
    zk = ZooKeeperElector(
        e.zk_hosts,
        cluster,
        holder,
        session_timeout_s=e.zk_session_timeout,
        auth=e.zk_auth,
        fallback_note=fallback_note(e.zk_fallback_after),
    )
    return FailoverElector(zk, lock, e.zk_fallback_after)


def election_mode(settings: Settings) -> str:
    """The configured elector mode with `auto` resolved."""
    e = settings.election
    if e.mode == "auto":
        return "zookeeper" if e.zk_hosts else "database"
    return e.mode


def zk_connection_state(elector: Elector) -> Callable[[], str] | None:
    """How to read the ZooKeeper connection state of `elector`, if it has one."""
    order = getattr(elector, "order", None)
    if not isinstance(order, ZooKeeperElector):
        return None
    zk = order
    return lambda: zk.connection_state


def build_executor(settings: Settings, sid: str, *, metrics: bool = False) -> Executor:
    if settings.core.executor == "celery":
        from haflow.executors.celery import CeleryExecutor
        from haflow.worker.celery_app import make_app

        return CeleryExecutor(
            make_app(settings),
            max_in_flight=settings.scheduler.max_active_tasks,
            publish_timeout_s=settings.celery.publish_timeout,
        )
    pool = PoolConfig(
        sql_alchemy_conn=settings.core.sql_alchemy_conn,
        cluster=settings.scheduler.cluster,
        dags_folder=settings.core.dags_folder,
        worker_id=f"local:{sid}",
        runner=RunnerConfig.from_settings(settings),
        fernet_key=settings.core.fernet_key,
        log_level=settings.logging.level,
        idle_tx_timeout_s=settings.election.db_lock_timeout,
        listener=attempt_metrics if metrics else None,
    )
    return LocalExecutor(pool, settings.core.parallelism, settings.core.attempts_per_process)


def dag_processor(
    settings: Settings, folder: Path | None = None, only: Sequence[str] | None = None
) -> DagFileProcessor:
    c = settings.core
    return DagFileProcessor(
        c.dags_folder if folder is None else folder,
        interval_s=c.dag_dir_list_interval,
        timeout_s=c.dag_file_import_timeout,
        memory_limit_mb=c.dag_file_memory_limit,
        max_code_kb=c.max_dag_code_kb,
        processes=c.dag_parsing_processes,
        only=only,
    )


def parse_folder(
    settings: Settings, folder: Path | None = None, only: Sequence[str] | None = None
) -> DagRegistry:
    """The DAGs folder (or `folder`, or its files `only`) parsed once through the parse pool,
    as a scheduler would (for tools such as `haflow doctor` and `haflow dags push`: a file
    that hangs or crashes is an import error here too)."""
    processor = dag_processor(settings, folder, only)
    processor.start()
    try:
        files = len(processor.view().files)
        rounds = files // settings.core.dag_parsing_processes + 1
        processor.wait_parsed(settings.core.dag_file_import_timeout * rounds + 10.0)
        registry = DagRegistry(processor)
        registry.refresh()
        return registry
    finally:
        processor.stop()


def build_scheduler(
    settings: Settings, cluster: str | None = None, parts: Sequence[Service] = ()
) -> SchedulerService:
    """The scheduler daemon; `parts` are more background parts it starts, watches and stops
    with its own (the standalone's web UI and progress printer)."""
    cluster = cluster or settings.scheduler.cluster
    sid = scheduler_id(settings.core.effective_hostname())
    engine = create_engine(
        settings.core.sql_alchemy_conn, idle_tx_timeout_s=settings.election.db_lock_timeout
    )
    repo = Repository(engine, cluster=cluster, actor=sid)
    elector = build_elector(settings, sid, cluster)
    observer = None
    if settings.scheduler.metrics_port:  # before the executor: its processes record metrics too
        from haflow.assembly.metrics import scheduler_observer

        observer = scheduler_observer(
            settings,
            repo.engine,
            cluster,
            configured_mode=election_mode(settings),
            zk_state=zk_connection_state(elector),
        )
    executor = build_executor(settings, sid, metrics=observer is not None)
    registry = DagRegistry(
        dag_processor(settings),
        cluster_rules(settings.notifications),
        fetch_code=repo.dags.code,
        cache=cache_folder(settings.core.code_cache),
        node=settings.core.effective_hostname(),
    )
    dispatcher = notification_dispatcher(
        settings, repo, observer.listener.notified if observer else lambda state: None
    )
    extras: list[Service] = [registry, dispatcher, *parts]  # registry: parses, leader or standby
    followers: list[SchedulerListener] = [dispatcher]  # parts that work while this one leads
    retention = retention_pass(settings, repo)
    if retention is not None:
        extras.append(retention)
        followers.append(retention)
    if observer:
        extras.append(observer.server)
    listener = Listeners([observer.listener, *followers] if observer else followers)
    wakeup = make_wakeup(settings.core.sql_alchemy_conn, cluster, executor.wake)
    if wakeup is not None:
        extras.append(wakeup)
    watch = None
    if settings.election.zk_hosts and settings.core.executor == "celery":
        watch = ZkWorkerWatch(
            settings.election.zk_hosts,
            cluster,
            session_timeout_s=settings.election.zk_session_timeout,
            auth=settings.election.zk_auth,
        )
        extras.append(watch)
    loop = SchedulingLoop(
        repo,
        executor,
        registry,
        LoopConfig(
            worker_timeout_s=settings.worker.timeout,
            self_fence_s=settings.worker.self_fence_s,
            reclaim_margin_s=settings.worker.reclaim_margin_s,
            queued_timeout_s=settings.scheduler.queued_timeout,
            reclaim_consumes_retry=settings.worker.reclaim_consumes_retry,
            max_losses=settings.worker.max_losses,
            max_active_tasks=settings.scheduler.max_active_tasks,
        ),
        worker_watch=watch,
        listener=listener,
    )
    cfg = ServiceConfig(
        loop_interval_s=settings.scheduler.loop_interval,
        heartbeat_s=settings.scheduler.heartbeat_sec,
    )
    return SchedulerService(
        repo, elector, executor, loop, cfg, sid=sid, extras=extras, listener=listener
    )


def notification_dispatcher(
    settings: Settings, repo: Repository, settled: Callable[[str], None]
) -> NotificationDispatcher:
    """The leader's dispatcher; callbacks see the task environment, not the scheduler's;
    `settled` is told each try's outcome (metrics)."""
    n = settings.notifications
    cache = cache_folder(settings.core.code_cache)

    def code(h: str) -> tuple[str, str]:
        folder = unpacked(cache, h, lambda x: repo.dags.code(x).packed)
        return entry_of(folder), str(folder)

    sending = send_config(
        n, allowed(os.environ, settings.worker.task_env), str(settings.core.dags_folder), code
    )
    return NotificationDispatcher(
        repo,
        lambda row: send(row, sending),
        DispatchConfig(
            parallelism=n.parallelism,
            timeout_s=n.timeout,
            max_tries=n.max_tries,
            retry_delay_s=n.retry_delay,
        ),
        settled=settled,
    )


def retention_pass(settings: Settings, repo: Repository) -> RetentionPass | None:
    """The leader's pruning, when `[retention] older_than_days` is set."""
    r = settings.retention
    if r.older_than_days <= 0:
        return None
    unknown = [t for t in r.table_list if t not in TABLES]
    if unknown:
        raise ConfigError(f"[retention] tables: unknown {unknown}; choose from {list(TABLES)}")
    return RetentionPass(
        repo,
        RetentionConfig(
            older_than_days=r.older_than_days,
            tables=r.table_list,
            interval_s=r.interval,
            batch_size=r.batch_size,
        ),
    )


def run_until_signalled(service: SchedulerService) -> None:
    """Run `service`; SIGTERM or Ctrl-C stops it gracefully (a second one is not needed)."""

    def on_signal(signum: int, _frame: Any) -> None:
        print(
            f"\n{signal.Signals(signum).name} received: stopping (resign, let running "
            "attempts finish up to 10 s, then stop them)",
            file=sys.stderr,
        )
        service.stop_requested.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    service.run()
