"""The local executor: a pool of worker processes on this machine, each running attempts.

`parallelism` slots, `per_process` of them in each process, one thread a slot. Processes are
spawned (not forked) so they inherit no threads or connections of the scheduler; each attempt
runs in a child process of its own (see worker.process and worker.warm), so a task's crash or
hang never takes its worker down. The threads of a process share its metastore transactions
(`haflow.worker.batch`): claims, heartbeats and reports of many attempts in one. All processes
die with the executor's process (PR_SET_PDEATHSIG). A pool process that dies anyway (a task
that kills its parent) is replaced; the attempts it ran stop heartbeating and are reclaimed by
the leader like any lost attempt.
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
from multiprocessing import connection as mp_connection
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from haflow.executors.base import Executor
from haflow.metastore.records import AttemptRef
from haflow.metastore.repository import Repository
from haflow.worker.batch import AttemptBatcher
from haflow.worker.listener import NO_LISTENER, AttemptListener
from haflow.worker.runner import AttemptRunner, RunnerConfig

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
    def __init__(self, cfg: PoolConfig, parallelism: int, per_process: int = 1) -> None:
        super().__init__()
        self.cfg = cfg
        self.parallelism = parallelism
        step = max(1, per_process)
        self._sizes = [min(step, parallelism - n) for n in range(0, parallelism, step)]
        self._ctx = multiprocessing.get_context("spawn")
        self._procs: list[_Proc] = []
        self._inflight = 0
        self._lock = threading.Lock()
        self._listener: threading.Thread | None = None
        self._stopping = False
        self.replaced = 0

    def start(self) -> None:
        self._procs = [self._spawn(n) for n in range(len(self._sizes))]
        self._listener = threading.Thread(target=self._listen, name="local-results", daemon=True)
        self._listener.start()

    def _listen(self) -> None:
        """Count the attempts the pool processes say are done (one pipe each: no lock is
        shared between processes, so one killed at any instant blocks no other)."""
        while not self._stopping:
            with self._lock:
                by_conn = {p.conn: p for p in self._procs if not p.conn.closed}
            for conn in mp_connection.wait(list(by_conn), timeout=0.5):
                self._receive(by_conn[conn])  # type: ignore[index]

    def _receive(self, p: _Proc) -> None:
        try:
            p.conn.recv()
        except (EOFError, OSError):  # it died: `maintain` replaces it and frees its slots
            with self._lock:
                p.conn.close()
            return
        with self._lock:
            if p.assigned > 0:
                p.assigned -= 1
                self._inflight -= 1
        self.wake.set()

    def _spawn(self, n: int) -> _Proc:
        ours, theirs = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(
            target=pool_main,
            args=(self.cfg, theirs, self._sizes[n], os.getpid()),
            name=f"haflow-local-{n}",
            daemon=True,
        )
        proc.start()
        theirs.close()
        return _Proc(proc, ours, self._sizes[n])

    def maintain(self) -> None:
        """Replace pool processes that died; the slots of the attempts one held free up (those
        it ran are reclaimed by the leader, those it had not claimed are published again)."""
        if self._stopping:
            return
        for n, p in enumerate(self._procs):
            if p.proc.is_alive():
                continue
            log.warning(
                "local worker process %s died (exit %s); replacing it",
                p.proc.name,
                p.proc.exitcode,
            )
            with self._lock:
                self._inflight -= p.assigned
                p.assigned = 0
                p.conn.close()
                self._procs[n] = self._spawn(n)
            self.replaced += 1

    def healthy(self) -> bool:
        return True

    def submit(self, refs: Sequence[AttemptRef]) -> None:
        """Hand each attempt to the process with the most free slots."""
        with self._lock:
            for ref in refs:
                self._inflight += 1
                p = max(self._procs, key=lambda p: (not p.conn.closed, p.size - p.assigned))
                p.assigned += 1
                try:
                    p.conn.send(ref)
                except OSError:  # it died: still queued, the leader publishes it again
                    log.warning("local worker process %s is gone", p.proc.name)

    def open_slots(self) -> int:
        with self._lock:
            return max(0, self.parallelism - self._inflight)

    def stop(self, grace_s: float = 10.0) -> None:
        """Let running attempts finish for `grace_s`, then kill them (reported as lost)."""
        self._stopping = True
        if not self._procs:
            return
        for p in self._procs:
            with contextlib.suppress(OSError):
                p.conn.send(None)
        deadline = _Deadline(grace_s)
        for p in self._procs:
            p.proc.join(deadline.left())
        for p in self._procs:
            if p.proc.is_alive():
                p.proc.terminate()  # SIGTERM: the runner kills its child and reports it lost
        for p in self._procs:
            p.proc.join(5.0)
            if p.proc.is_alive():
                p.proc.kill()
                p.proc.join(1.0)
        if self._listener:
            self._listener.join(2.0)
        for p in self._procs:
            p.conn.close()
        self._procs.clear()


@dataclass
class _Proc:
    """A pool process as the executor sees it: its end of their pipe, its slots, and how
    many attempts it holds (handed to it and not yet said done)."""

    proc: BaseProcess
    conn: Connection
    size: int
    assigned: int = 0


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return max(0.0, self.end - time.monotonic())


def pool_main(cfg: PoolConfig, conn: Connection, size: int, parent_pid: int) -> None:
    """Entry point of a pool process: `size` threads claim and run the attempts the executor
    sends down `conn`, until told to stop; their metastore calls share one batcher."""
    from haflow.logs import setup_logging
    from haflow.metastore.engine import create_engine
    from haflow.worker.process import set_parent_death_signal

    setup_logging(cfg.log_level)
    stopping = threading.Event()

    def on_term(_sig: int, _frame: Any) -> None:
        stopping.set()  # each thread stops its attempt (reported lost) and ends

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    signal.signal(signal.SIGTERM, on_term)
    # after the handler: a parent already gone when we got here makes us stop at once
    set_parent_death_signal(signal.SIGTERM, parent_pid=parent_pid)
    if stopping.is_set():
        return
    # a connection for each lane of the batcher, and one to spare
    engine = create_engine(
        cfg.sql_alchemy_conn, pool_size=4, idle_tx_timeout_s=cfg.idle_tx_timeout_s
    )
    repo = Repository(engine, cluster=cfg.cluster, actor=cfg.worker_id)
    batcher = AttemptBatcher(repo.attempts)
    slots = _Slots(cfg, repo, batcher, conn, stopping)
    threads = [
        threading.Thread(target=slots.serve, name=f"slot-{n}", daemon=True) for n in range(size)
    ]
    threading.Thread(target=slots.take, args=(size,), name="inbox", daemon=True).start()
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(0.5)  # in slices: the main thread must stay free to take SIGTERM
    batcher.close()
    engine.dispose()


class _Slots:
    """The slots of a pool process: one thread takes attempts from the executor's pipe, one
    thread per slot runs them and says each is done."""

    def __init__(
        self,
        cfg: PoolConfig,
        repo: Repository,
        batcher: AttemptBatcher,
        conn: Connection,
        stopping: threading.Event,
    ) -> None:
        self.cfg = cfg
        self.repo = repo
        self.batcher = batcher
        self.conn = conn
        self.stopping = stopping
        self.listener = cfg.listener() if cfg.listener else NO_LISTENER
        self.work: queue.SimpleQueue[AttemptRef | None] = queue.SimpleQueue()
        self._send = threading.Lock()

    def take(self, size: int) -> None:
        while True:
            try:
                ref = self.conn.recv()
            except (EOFError, OSError):  # the executor is gone
                ref = None
            if ref is None:
                for _ in range(size):
                    self.work.put(None)
                return
            self.work.put(ref)

    def serve(self) -> None:
        runner = AttemptRunner(
            self.repo,
            self.cfg.dags_folder,
            self.cfg.worker_id,
            self.cfg.runner,
            stopping=self.stopping.is_set,
            listener=self.listener,
            attempts=self.batcher,
        )
        try:
            while not self.stopping.is_set():
                try:
                    ref = self.work.get(timeout=1.0)
                except queue.Empty:
                    continue
                if ref is None:
                    break
                self._run(runner, ref)
        finally:
            runner.close()

    def _run(self, runner: AttemptRunner, ref: AttemptRef) -> None:
        try:
            runner.run(ref)
        except Exception:
            log.exception(
                "attempt %s of task instance %s crashed its runner", ref.attempt, ref.ti_id
            )
        finally:
            with self._send, contextlib.suppress(OSError):
                self.conn.send(ref.ti_id)
