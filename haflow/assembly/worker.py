"""`haflow worker`: a Celery worker that claims and runs attempts, registered and heartbeating.

The worker row in the metastore (and, when ZooKeeper is configured, an ephemeral node under
`/haflow/<cluster>/workers/`) says this worker is alive; the attempts it runs heartbeat on their
own rows, which is what the leader reclaims on. A worker refuses to run as root unless told to.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from collections.abc import Sequence
from typing import Any

from celery import signals

from haflow.assembly.secrets import check_secrets_at_start
from haflow.config import Settings
from haflow.core.clock import utcnow
from haflow.dag.bundle import cache_folder, prune
from haflow.errors import ConfigError, HaflowError
from haflow.metastore.crypto import Crypto
from haflow.metastore.engine import create_engine
from haflow.metastore.repository import Repository
from haflow.metastore.schema_version import require_current
from haflow.metrics.attempts import attempt_metrics
from haflow.service import Service, Watchdog
from haflow.worker.celery_app import make_app, set_pool
from haflow.worker.pool import AttemptPool, PoolConfig
from haflow.worker.registry import ZkWorkerNode
from haflow.worker.runner import RunnerConfig

log = logging.getLogger(__name__)


class Registration:
    """The worker's own heartbeat row, renewed from the main process until the worker stops."""

    def __init__(
        self,
        repo: Repository,
        worker_id: str,
        queues: Sequence[str],
        concurrency: int,
        every_s: float,
    ) -> None:
        self.repo = repo
        self.worker_id = worker_id
        self.queues = ",".join(queues)
        self.concurrency = concurrency
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="worker-heartbeat", daemon=True)
        self.name = "worker heartbeat"

    def start(self) -> None:
        self.beat("alive")
        self._thread.start()

    def healthy(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5.0)
        self.beat("stopped")

    def beat(self, state: str) -> None:
        try:
            self.repo.members.heartbeat_worker(
                self.worker_id,
                kind="celery",
                hostname=socket.getfqdn(),
                pid=os.getpid(),
                queues=self.queues,
                concurrency=self.concurrency,
                state=state,
                now=utcnow(),
            )
        except HaflowError as exc:
            log.warning("worker heartbeat failed: %s", exc)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.beat("alive")


def run_worker(
    settings: Settings, *, concurrency: int, queues: Sequence[str], hostname: str, allow_root: bool
) -> None:
    if os.geteuid() == 0 and not allow_root:
        raise ConfigError(
            "refusing to run a worker as root: tasks would run as root too; "
            "use a dedicated user, or pass --allow-root if you really mean it"
        )
    engine = create_engine(
        settings.core.sql_alchemy_conn, idle_tx_timeout_s=settings.election.db_lock_timeout
    )
    require_current(engine)
    cache = cache_folder(settings.core.code_cache)  # refused early if unsafe
    pruned = prune(cache)
    if pruned:
        log.info("removed %d DAG code version(s) unused for a week from %s", pruned, cache)
    worker_id = hostname
    e = settings.election
    node = (
        ZkWorkerNode(
            e.zk_hosts,
            settings.scheduler.cluster,
            worker_id,
            session_timeout_s=e.zk_session_timeout,
            auth=e.zk_auth,
        )
        if e.zk_hosts
        else None
    )
    metrics = _metrics(settings, node)
    pool = AttemptPool(
        PoolConfig(
            sql_alchemy_conn=settings.core.sql_alchemy_conn,
            cluster=settings.scheduler.cluster,
            dags_folder=settings.core.dags_folder,
            worker_id=worker_id,
            runner=RunnerConfig.from_settings(settings),
            fernet_key=settings.core.fernet_key,
            log_level=settings.logging.level,
            idle_tx_timeout_s=settings.election.db_lock_timeout,
            listener=attempt_metrics if metrics else None,
        ),
        concurrency,
        settings.core.attempts_per_process,
        prefix="haflow-worker",
    )
    set_pool(pool)
    app = make_app(settings)
    repo = Repository(
        engine,
        cluster=settings.scheduler.cluster,
        actor=worker_id,
        crypto=Crypto(settings.core.fernet_key),
    )
    check_secrets_at_start(repo)
    reg = Registration(
        repo,
        worker_id,
        queues,
        concurrency,
        settings.worker.heartbeat_sec,
    )

    parts: list[Service] = [reg, pool, *([node] if node else []), *([metrics] if metrics else [])]
    watchdog = Watchdog(parts, lambda _dead: os.kill(os.getpid(), signal.SIGTERM))

    def _ready(**_kw: object) -> None:
        reg.start()
        if node is not None:
            node.start()
        watchdog.start()  # a dead part stops the worker (warm shutdown), which then exits 1

    def _shutdown(**_kw: object) -> None:
        watchdog.stop()
        if node is not None:
            node.stop()
        reg.stop()

    signals.worker_ready.connect(_ready, weak=False)
    signals.worker_shutdown.connect(_shutdown, weak=False)
    if metrics is not None:
        metrics.start()  # before the pool starts, so a taken port fails the start
    pool.start()
    try:
        _work(app, concurrency, queues, hostname, settings.logging.level)
    finally:
        pool.stop(grace_s=settings.worker.timeout)
        if metrics is not None:
            metrics.stop()
    if watchdog.died:
        raise HaflowError(f"{', '.join(watchdog.died)} died; the worker stopped")


def _metrics(settings: Settings, node: ZkWorkerNode | None) -> Any:
    """The worker's /metrics server, when [worker] metrics_port is set (the pool processes
    record theirs in the directory it serves)."""
    if not settings.worker.metrics_port:
        return None
    from haflow.assembly.metrics import worker_observer

    if node is None:
        return worker_observer(settings)
    zk = node
    return worker_observer(settings, lambda: zk.connection_state)


def _work(app: Any, concurrency: int, queues: Sequence[str], hostname: str, level: str) -> None:
    app.worker_main(
        [
            "worker",
            f"--concurrency={concurrency}",
            f"--queues={','.join(queues)}",
            f"--hostname={hostname}",
            f"--loglevel={level}",
            "--pool=threads",  # each thread waits on the attempt pool (haflow.worker.pool)
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
    )
