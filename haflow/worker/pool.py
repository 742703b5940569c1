"""The attempt pool: worker processes on this machine that claim and run attempts, one thread
an attempt, used by the local executor and by `haflow worker` alike.

`size` slots, `per_process` of them in each process. Processes are spawned (not forked), so
they inherit no threads or connections of their parent; each attempt runs in a child process
of its own (worker.process, worker.warm), so a task's crash or hang never takes its worker
down. The threads of a process share its metastore transactions (worker.batch): claims,
heartbeats and reports of many attempts in one. Each process has a pipe of its own to the
pool (no lock shared between processes, so one killed at any instant blocks no other): the
pool sends it attempts, it answers with each one's outcome. All processes die with the
pool's (PR_SET_PDEATHSIG). One that dies anyway (a task that kills its parent) is replaced by
the pool's own listener thread; the attempts it held end as "lost" here, and in the
metastore they stop heartbeating and are reclaimed by the leader like any lost attempt.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing import connection as mp_connection
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from haflow.errors import BackendUnavailable
from haflow.metastore.crypto import Crypto
from haflow.metastore.records import AttemptRef
from haflow.metastore.repository import Repository
from haflow.worker.batch import AttemptBatcher
from haflow.worker.listener import NO_LISTENER, AttemptListener
from haflow.worker.runner import AttemptRunner, RunnerConfig

log = logging.getLogger(__name__)

LOST = "lost"  # the process running it died
UNREACHABLE = "unreachable"  # the claim could not reach the metastore
CRASHED = "crashed"  # the runner itself failed (logged in the pool process)


@dataclass(frozen=True)
class PoolConfig:
    sql_alchemy_conn: str
    cluster: str
    dags_folder: Path
    worker_id: str
    runner: RunnerConfig
    log_level: str = "INFO"
    fernet_key: str = field(default="", repr=False)  # decrypts what tasks read (secrets)
    idle_tx_timeout_s: float | None = None  # see metastore.engine.create_engine
    listener: Callable[[], AttemptListener] | None = None
    """Makes each pool process's attempt listener (the assembly passes the metrics' one, a
    module-level function so that it pickles by name for the spawned processes)."""


class AttemptPool:
    """`submit` hands attempts over and returns; `run` hands one over and waits for its
    outcome (the runner's: success, failed, timed_out, cancelled, rejected; or LOST,
    UNREACHABLE, CRASHED). `on_done` is called (from the pool's thread) after each end."""

    def __init__(
        self,
        cfg: PoolConfig,
        size: int,
        per_process: int,
        on_done: Callable[[], None] = lambda: None,
        prefix: str = "haflow-pool",
    ) -> None:
        self.cfg = cfg
        self.size = size
        self.on_done = on_done
        self.prefix = prefix  # of the processes' names
        self.name = "attempt pool"
        step = max(1, per_process)
        self._sizes = [min(step, size - n) for n in range(0, size, step)]
        self._ctx = multiprocessing.get_context("spawn")
        self._procs: list[_Proc] = []
        self._inflight = 0
        self._lock = threading.Lock()
        self._tokens = itertools.count(1)
        self._waiting: dict[int, _Wait] = {}
        self._listener: threading.Thread | None = None
        self._stopping = False
        self.replaced = 0

    def start(self) -> None:
        self._procs = [self._spawn(n) for n in range(len(self._sizes))]
        self._listener = threading.Thread(target=self._listen, name=self.prefix, daemon=True)
        self._listener.start()

    def submit(self, refs: Sequence[AttemptRef]) -> None:
        with self._lock:
            for ref in refs:
                self._hand(ref, next(self._tokens))

    def run(self, ref: AttemptRef) -> str:
        """Run `ref` in the pool and wait for its outcome."""
        wait = _Wait()
        with self._lock:
            token = next(self._tokens)
            self._waiting[token] = wait
            self._hand(ref, token)
        wait.done.wait()
        return wait.outcome

    def healthy(self) -> bool:
        """False once the thread that hears the processes and replaces dead ones has died."""
        return self._listener is not None and self._listener.is_alive()

    def open_slots(self) -> int:
        with self._lock:
            return max(0, self.size - self._inflight)

    def _hand(self, ref: AttemptRef, token: int) -> None:
        """To the process with the most free slots (under the lock)."""
        self._inflight += 1
        p = max(self._procs, key=lambda p: (not p.conn.closed, p.size - len(p.held)))
        p.held.add(token)
        try:
            p.conn.send((token, ref))
        except OSError:  # it died: the listener replaces it and ends what it held as lost
            log.warning("worker process %s is gone", p.proc.name)

    def _listen(self) -> None:
        while not self._stopping:
            with self._lock:
                by_conn = {p.conn: p for p in self._procs if not p.conn.closed}
            for conn in mp_connection.wait(list(by_conn), timeout=0.5):
                self._receive(by_conn[conn])  # type: ignore[index]
            self.maintain()

    def _receive(self, p: _Proc) -> None:
        try:
            token, outcome = p.conn.recv()
        except (EOFError, OSError):  # it died: `maintain` replaces it
            with self._lock:
                p.conn.close()
            return
        with self._lock:
            self._end(p, token, outcome)
        self.on_done()

    def _end(self, p: _Proc, token: int, outcome: str) -> None:
        if token in p.held:
            p.held.discard(token)
            self._inflight -= 1
        wait = self._waiting.pop(token, None)
        if wait is not None:
            wait.outcome = outcome
            wait.done.set()

    def maintain(self) -> None:
        """Replace processes that died; what they held ends as lost. Called by the pool's
        listener thread, and by whoever owns the pool."""
        if self._stopping:
            return
        for n in range(len(self._procs)):
            with self._lock:
                p = self._procs[n]
                if p.proc.is_alive() or self._stopping:
                    continue
                log.warning(
                    "worker process %s died (exit %s); replacing it", p.proc.name, p.proc.exitcode
                )
                for token in list(p.held):
                    self._end(p, token, LOST)
                p.conn.close()
                self._procs[n] = self._spawn(n)
                self.replaced += 1
            self.on_done()

    def _spawn(self, n: int) -> _Proc:
        ours, theirs = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(
            target=pool_main,
            args=(self.cfg, theirs, self._sizes[n], os.getpid()),
            name=f"{self.prefix}-{n}",
            daemon=True,
        )
        proc.start()
        theirs.close()
        return _Proc(proc, ours, self._sizes[n])

    def stop(self, grace_s: float = 10.0) -> None:
        """Let running attempts finish for `grace_s`, then kill them (reported as lost)."""
        self._stopping = True
        if not self._procs:
            return
        for p in self._procs:
            with contextlib.suppress(OSError):
                p.conn.send(None)
        deadline = time.monotonic() + grace_s
        for p in self._procs:
            p.proc.join(max(0.0, deadline - time.monotonic()))
        for p in self._procs:
            _end_process(p.proc)
        if self._listener:
            self._listener.join(2.0)
        with self._lock:
            for p in self._procs:
                for token in list(p.held):
                    self._end(p, token, LOST)
                p.conn.close()
            self._procs.clear()


def _end_process(proc: BaseProcess) -> None:
    if proc.is_alive():
        proc.terminate()  # SIGTERM: the runner kills its child and reports it lost
        proc.join(5.0)
    if proc.is_alive():
        proc.kill()
        proc.join(1.0)


@dataclass
class _Proc:
    """A pool process as the pool sees it: its end of their pipe, its slots, and the tokens
    of the attempts it holds (handed to it and not yet ended)."""

    proc: BaseProcess
    conn: Connection
    size: int
    held: set[int] = field(default_factory=set)


@dataclass
class _Wait:
    done: threading.Event = field(default_factory=threading.Event)
    outcome: str = LOST


def pool_main(cfg: PoolConfig, conn: Connection, size: int, parent_pid: int) -> None:
    """Entry point of a pool process: `size` threads claim and run the attempts the pool
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
    crypto = Crypto(cfg.fernet_key)
    repo = Repository(engine, cluster=cfg.cluster, actor=cfg.worker_id, crypto=crypto)
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
    """The slots of a pool process: one thread takes attempts from the pool's pipe, one
    thread per slot runs them and answers with each one's outcome."""

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
        self.work: queue.SimpleQueue[tuple[int, AttemptRef] | None] = queue.SimpleQueue()
        self._send = threading.Lock()

    def take(self, size: int) -> None:
        while True:
            try:
                item = self.conn.recv()
            except (EOFError, OSError):  # the pool is gone
                item = None
            if item is None:
                for _ in range(size):
                    self.work.put(None)
                return
            self.work.put(item)

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
                    item = self.work.get(timeout=1.0)
                except queue.Empty:
                    continue
                if item is None:
                    break
                self._run(runner, *item)
        finally:
            runner.close()

    def _run(self, runner: AttemptRunner, token: int, ref: AttemptRef) -> None:
        outcome = CRASHED
        try:
            outcome = runner.run(ref)
        except BackendUnavailable as exc:  # the claim, made twice, could not be made
            log.warning("could not claim attempt %s of %s: %s", ref.attempt, ref.ti_id, exc)
            outcome = UNREACHABLE
        except Exception:
            log.exception(
                "attempt %s of task instance %s crashed its runner", ref.attempt, ref.ti_id
            )
        finally:
            with self._send, contextlib.suppress(OSError):
                self.conn.send((token, outcome))
