"""The local executor: a pool of worker processes on this machine, each running one attempt.

Processes are spawned (not forked) so they inherit no threads or connections of the scheduler;
each forks a child per attempt (see worker.process), so a task's crash or hang never takes its
worker down. All of them die with the executor's process (PR_SET_PDEATHSIG). A pool process
that dies anyway (a task that kills its parent) is replaced; the attempt it ran stops
heartbeating and is reclaimed by the leader like any lost attempt.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from haflow.executors.base import Executor
from haflow.metastore.records import AttemptRef
from haflow.worker.listener import NO_LISTENER, AttemptListener
from haflow.worker.runner import RunnerConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PoolConfig:
    sql_alchemy_conn: str
    cluster: str
    dags_folder: Path
    worker_id: str
    runner: RunnerConfig
    log_level: str = "INFO"
    idle_tx_timeout_s: float | None = None  # see metastore.engine.create_engine
    listener: Callable[[], AttemptListener] | None = None
    """Makes each pool process's attempt listener (the assembly passes the metrics' one, a
    module-level function so that it pickles by name for the spawned processes)."""


class LocalExecutor(Executor):
    def __init__(self, cfg: PoolConfig, parallelism: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.parallelism = parallelism
        self._ctx = multiprocessing.get_context("spawn")
        self._inbox: Any = None
        self._done: Any = None
        self._procs: list[BaseProcess] = []
        self._inflight = 0
        self._lock = threading.Lock()
        self._listener: threading.Thread | None = None
        self._stopping = False
        self._busy: Any = None  # shared flags: pool process n is running an attempt
        self.replaced = 0

    def start(self) -> None:
        self._inbox = self._ctx.Queue()
        self._done = self._ctx.Queue()
        self._busy = self._ctx.Array("b", self.parallelism, lock=False)
        self._procs = [self._spawn(n) for n in range(self.parallelism)]
        self._listener = threading.Thread(target=self._listen, name="local-results", daemon=True)
        self._listener.start()

    def _listen(self) -> None:
        while True:
            item = self._done.get()
            if item is None:
                return
            with self._lock:
                self._inflight -= 1
            self.wake.set()

    def _spawn(self, n: int) -> BaseProcess:
        proc = self._ctx.Process(
            target=pool_main,
            args=(self.cfg, self._inbox, self._done, self._busy, n, os.getpid()),
            name=f"haflow-local-{n}",
            daemon=True,
        )
        proc.start()
        return proc

    def maintain(self) -> None:
        """Replace pool processes that died; the slot of an attempt one was running frees up."""
        if self._stopping:
            return
        for n, proc in enumerate(self._procs):
            if proc.is_alive():
                continue
            log.warning(
                "local worker process %s died (exit %s); replacing it", proc.name, proc.exitcode
            )
            if self._busy[n]:
                self._busy[n] = 0
                with self._lock:
                    self._inflight -= 1
            self._procs[n] = self._spawn(n)
            self.replaced += 1

    def healthy(self) -> bool:
        return True

    def submit(self, refs: Sequence[AttemptRef]) -> None:
        with self._lock:
            self._inflight += len(refs)
        for ref in refs:
            self._inbox.put(ref)

    def open_slots(self) -> int:
        with self._lock:
            return max(0, self.parallelism - self._inflight)

    def stop(self, grace_s: float = 10.0) -> None:
        """Let running attempts finish for `grace_s`, then kill them (reported as lost)."""
        self._stopping = True
        if not self._procs:
            return
        for _ in self._procs:
            self._inbox.put(None)
        deadline = _Deadline(grace_s)
        for proc in self._procs:
            proc.join(deadline.left())
        for proc in self._procs:
            if proc.is_alive():
                proc.terminate()  # SIGTERM: the runner kills its child and reports it lost
        for proc in self._procs:
            proc.join(5.0)
            if proc.is_alive():
                proc.kill()
                proc.join(1.0)
        self._done.put(None)
        if self._listener:
            self._listener.join(2.0)
        for q in (self._inbox, self._done):
            q.close()
            q.join_thread()
        self._procs.clear()


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return max(0.0, self.end - time.monotonic())


def pool_main(
    cfg: PoolConfig, inbox: Any, done: Any, busy: Any, slot: int, parent_pid: int
) -> None:
    """Entry point of a pool process: claim and run attempts until told to stop."""
    from haflow.logs import setup_logging
    from haflow.metastore.engine import create_engine
    from haflow.metastore.repository import Repository
    from haflow.worker.process import set_parent_death_signal
    from haflow.worker.runner import AttemptRunner

    setup_logging(cfg.log_level)
    state = {"stopping": False, "busy": False}

    def on_term(_sig: int, _frame: Any) -> None:
        state["stopping"] = True
        if not state["busy"]:
            raise SystemExit(0)

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    signal.signal(signal.SIGTERM, on_term)
    # after the handler: a parent already gone when we got here makes us stop at once
    with contextlib.suppress(SystemExit):
        set_parent_death_signal(signal.SIGTERM, parent_pid=parent_pid)
    if state["stopping"]:
        return
    repo = Repository(
        create_engine(cfg.sql_alchemy_conn, pool_size=2, idle_tx_timeout_s=cfg.idle_tx_timeout_s),
        cluster=cfg.cluster,
        actor=cfg.worker_id,
    )
    runner = AttemptRunner(
        repo,
        cfg.dags_folder,
        cfg.worker_id,
        cfg.runner,
        stopping=lambda: state["stopping"],
        listener=cfg.listener() if cfg.listener else NO_LISTENER,
    )
    with contextlib.suppress(SystemExit):
        while not state["stopping"]:
            try:
                ref = inbox.get(timeout=1.0)
            except queue.Empty:
                continue
            if ref is None:
                break
            state["busy"] = True
            busy[slot] = 1
            try:
                runner.run(ref)
            except Exception:
                log.exception(
                    "attempt %s of task instance %s crashed its runner", ref.attempt, ref.ti_id
                )
            finally:
                state["busy"] = False
                busy[slot] = 0
                done.put(ref.ti_id)
    runner.close()
    repo.engine.dispose()
