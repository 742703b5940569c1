"""Runs one claimed attempt end to end: claim, execute, heartbeat, stream logs, report.

The same path serves the local executor's processes and the Celery workers. Invariants: a
worker runs only an attempt it claimed; it heartbeats from the claim on; the DAG's own file
(and no other) is imported inside the attempt's child process, so an import that hangs or
crashes counts against that attempt's execution timeout and fails that attempt alone, never
the worker or other DAGs' attempts; it stops the attempt as soon as a heartbeat says the
attempt is no longer its own, or when no heartbeat has succeeded for its self-fence window
`timeout - self_fence_margin`, counted from when the last good one (or the claim) was sent.
The leader reclaims no sooner than that window plus a margin after the metastore stamped it
(`haflow.core.reclamation`), so a worker never runs an attempt concurrently with the one that
replaced it. Losing ZooKeeper never stops an attempt.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from haflow.config import Settings
from haflow.config.schema import DEFAULT_TASK_ENV
from haflow.config.settings import env_patterns
from haflow.core.attempt_end import DEFAULT_POLICY, Ending, EndPolicy
from haflow.core.clock import Clock, utcnow
from haflow.dag.dag import DAG
from haflow.dag.loader import ImportErrorRecord, importable, load_dag_file
from haflow.dag.tasks import BaseTask, BashTask, PythonTask
from haflow.errors import BackendUnavailable, HaflowError
from haflow.metastore.records import AttemptRef, ClaimedAttempt
from haflow.metastore.repository import Repository
from haflow.worker.listener import NO_LISTENER, AttemptListener
from haflow.worker.process import LogSink, Outcome, Result, spawn_python, supervise
from haflow.worker.taskenv import become_task
from haflow.worker.warm import WarmFiles

log = logging.getLogger(__name__)

_ENDINGS = {
    Outcome.SUCCESS: Ending.SUCCESS,
    Outcome.FAILED: Ending.FAILED,
    Outcome.TIMED_OUT: Ending.TIMED_OUT,
    Outcome.CANCELLED: Ending.ABANDONED,  # the worker stopped while the attempt ran
}


@dataclass(frozen=True)
class RunnerConfig:
    heartbeat_sec: float = 1.0
    timeout: float = 8.0
    self_fence_margin: float = 2.0
    max_log_bytes: int = 1 << 20
    end_policy: EndPolicy = DEFAULT_POLICY
    task_env: tuple[str, ...] = env_patterns(DEFAULT_TASK_ENV)  # what a task sees of ours
    warm_files: int = 4  # DAG files kept imported in warm processes (haflow.worker.warm)
    import_timeout_s: float = 30.0  # how long a warm process may take to import its file

    @classmethod
    def from_settings(cls, settings: Settings) -> RunnerConfig:
        w = settings.worker
        return cls(
            heartbeat_sec=w.heartbeat_sec,
            timeout=w.timeout,
            self_fence_margin=w.self_fence_margin,
            max_log_bytes=w.max_log_bytes,
            end_policy=EndPolicy(w.max_losses, w.reclaim_consumes_retry),
            task_env=w.task_env,
            warm_files=w.warm_dag_files,
            import_timeout_s=settings.core.dag_file_import_timeout,
        )

    @property
    def self_fence_s(self) -> float:
        return self.timeout - self.self_fence_margin


class AttemptRunner:
    def __init__(
        self,
        repo: Repository,
        dags_folder: Path,
        worker_id: str,
        cfg: RunnerConfig,
        *,
        clock: Clock = utcnow,
        stopping: Callable[[], bool] = lambda: False,
        monotonic: Callable[[], float] = time.monotonic,
        listener: AttemptListener = NO_LISTENER,
    ) -> None:
        self.repo = repo
        self.dags_folder = Path(dags_folder)
        self.worker_id = worker_id
        self.cfg = cfg
        self.clock = clock
        self.stopping = stopping
        self.monotonic = monotonic
        self.listener = listener  # observes claims and ends (metrics)
        self.warm = WarmFiles(
            self.dags_folder,
            cfg.task_env,
            size=cfg.warm_files,
            import_timeout_s=cfg.import_timeout_s,
        )

    def run(self, ref: AttemptRef) -> str:
        """Run `ref` if the claim succeeds; returns what happened, for counting."""
        sent, claimed = self._claim(ref)
        if claimed is None:
            self.listener.claim_rejected(ref)
            return "rejected"
        self.listener.claimed(claimed)
        sink = LogSink(self.cfg.max_log_bytes)
        watch = _Watch(self, claimed, sink, sent)
        watch.start()
        try:
            result = self._execute(claimed, sink, watch)
        finally:
            watch.close()
        if result.outcome is Outcome.CANCELLED and not watch.ours:
            why = "reclaimed" if watch.taken else "self_fenced"
            self.listener.abandoned(claimed, why, self.monotonic() - sent)
            return "cancelled"  # reclaimed or self-fenced: the attempt is not ours to report
        if result.outcome is Outcome.CANCELLED:
            result.reason = "worker stopped while the attempt ran"
        accepted = self._report(claimed, result, sink)
        ending = _ENDINGS[result.outcome]
        self.listener.finished(claimed, ending.attempt_state, self.monotonic() - sent, accepted)
        return result.outcome.value

    def _claim(self, ref: AttemptRef) -> tuple[float, ClaimedAttempt | None]:
        """The claim, made a second time if the first found its pooled connection broken
        (the pool then holds only new ones; a claim is conditional, so trying again is
        safe); with when it was sent: it stamps the first heartbeat no sooner than that."""
        try:
            sent = self.monotonic()
            return sent, self.repo.attempts.claim(ref, self.worker_id, self.clock())
        except BackendUnavailable as exc:
            log.warning("claim of attempt %s failed (%s); trying once more", ref.attempt, exc)
        sent = self.monotonic()
        return sent, self.repo.attempts.claim(ref, self.worker_id, self.clock())

    def _execute(self, claimed: ClaimedAttempt, sink: LogSink, watch: _Watch) -> Result:
        """Start the attempt's child (which loads the task itself) and run it under `watch`;
        an attempt that may no longer be ours (taken, or silent past the self-fence window)
        is not started at all."""
        cancelled = Result(Outcome.CANCELLED, "attempt cancelled before it started", None)
        if not watch.tick():
            return cancelled
        folder, worker_id, allow = self.dags_folder, self.worker_id, self.cfg.task_env
        began, limit_s = time.monotonic(), claimed.timeout_s
        try:
            path = locate(claimed.fileloc, folder)
            warm = self.warm.start(path, claimed, worker_id, watch.tick, limit_s)
            if warm is None and not watch.tick():
                return cancelled  # stopped or taken while the file was imported
            timeout_s = None if limit_s is None else limit_s - (time.monotonic() - began)
            if timeout_s is not None and timeout_s <= 0:  # the import counts, warm or cold
                return Result(
                    Outcome.TIMED_OUT, f"execution timeout of {limit_s:g} s exceeded", None
                )
            if warm is None:
                pid, fd = spawn_python(lambda: run_from_file(claimed, folder, worker_id, allow))
        except OSError as exc:  # no fork: out of processes or memory on this node
            return Result(Outcome.FAILED, f"could not start: {type(exc).__name__}: {exc}", None)
        return supervise(
            warm.pid if warm else pid,
            warm.out_fd if warm else fd,
            sink,
            timeout_s=timeout_s,
            tick_every_s=min(0.1, self.cfg.heartbeat_sec),
            on_tick=watch.tick,
            reap=warm.reap if warm else None,
            pidfd=warm.pidfd if warm else None,
        )

    def close(self) -> None:
        """Stop the warm processes (they would die with this process anyway)."""
        self.warm.close()

    def _report(self, c: ClaimedAttempt, result: Result, sink: LogSink) -> bool | None:
        """Report the end, retrying while the metastore is away; the reaper does the rest.
        False: the report was rejected (a zombie's); None: it could not be made."""
        deadline = self.monotonic() + self.cfg.timeout
        delay = 0.1
        while True:
            try:
                return self.repo.attempts.finish(
                    c.ti_id,
                    c.attempt,
                    self.worker_id,
                    _ENDINGS[result.outcome],
                    result.reason,
                    self.clock(),
                    log=sink.take(final=True),
                    policy=self.cfg.end_policy,
                )
            except HaflowError as exc:
                if self.monotonic() + delay > deadline:
                    log.error(
                        "could not report attempt %s of %s.%s: %s",
                        c.attempt,
                        c.dag_id,
                        c.task_id,
                        exc,
                    )
                    return None
                time.sleep(delay)
                delay = min(delay * 2, 1.0)


class _Watch:
    """Heartbeats and streams logs from a thread of its own while an attempt runs.

    `tick` (called by the supervising loop many times a second) only reads the verdict, so a
    metastore call that hangs in a partition cannot delay stopping the attempt: it is killed
    once no heartbeat has succeeded for the self-fence window `timeout - self_fence_margin`,
    counted from when the last good heartbeat (at first, the claim) was *sent*: the metastore
    stamps it later, and the leader's reclaim clock starts from that stamp.
    """

    def __init__(
        self, runner: AttemptRunner, claimed: ClaimedAttempt, sink: LogSink, sent: float
    ) -> None:
        self.r = runner
        self.c = claimed
        self.sink = sink
        self.last_ok = sent
        self.taken = False
        self.ours = True
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="attempt-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(1.0)  # a call stuck in a partition is left to its own timeout

    def tick(self) -> bool:
        if self.r.stopping():
            return False
        if self.taken:
            log.warning(
                "attempt %s of %s was taken away; killing it", self.c.attempt, self.c.task_id
            )
            self.ours = False
            return False
        silent = self.r.monotonic() - self.last_ok
        if silent >= self.r.cfg.self_fence_s:
            log.error("self-fencing: no heartbeat for %.1f s, killing %s", silent, self.c.task_id)
            self.ours = False
            return False
        return True

    def _beat(self) -> None:
        while not self._stop.wait(self.r.cfg.heartbeat_sec):
            sent = self.r.monotonic()
            try:
                self.r.repo.attempts.append_log(
                    self.c.ti_id, self.c.attempt, self.sink.take(), self.r.clock()
                )
                alive = self.r.repo.attempts.heartbeat(
                    self.c.ti_id, self.c.attempt, self.r.worker_id
                )
            except HaflowError as exc:
                log.warning("heartbeat of %s failed: %s", self.c.task_id, exc)
                continue
            if not alive:
                self.taken = True
                return
            self.last_ok = sent


def run_from_file(c: ClaimedAttempt, folder: Path, worker_id: str, allow: Sequence[str]) -> object:
    """The attempt's child: trade the worker's environment for the task's (the `allow`ed
    variables and haflow's context; `haflow.worker.taskenv`), import the DAG's own file, then
    run the task (bash replaces this process). A file that cannot be loaded fails the attempt
    with the reason in its log."""
    env = become_task(allow, context_env(c, worker_id, os.getppid()))
    return run_task(load_task(c, folder), c, env)


def run_task(task: BaseTask, c: ClaimedAttempt, env: Mapping[str, str]) -> object:
    """Run `task` in this (the attempt's own) process: bash replaces it, Python is called."""
    if isinstance(task, BashTask):
        sys.stdout.flush()
        os.execvpe("bash", ["bash", "-c", task.bash_command], {**env, **(task.env or {})})
    if isinstance(task, PythonTask):
        return python_call(task, c)()
    _cannot_load(f"task {c.task_id!r} has unsupported kind {type(task).__name__}")


def load_task(c: ClaimedAttempt, folder: Path) -> BaseTask:
    """Task `c.task_id` of DAG `c.dag_id`, from the file the scheduler found it in."""
    importable(folder)
    path = locate(c.fileloc, folder)
    dags, error = load_dag_file(path)
    return pick_task(dags, error, c, path)


def pick_task(
    dags: Sequence[DAG], error: ImportErrorRecord | None, c: ClaimedAttempt, path: str
) -> BaseTask:
    """The task `c` names among the DAGs loaded from `path`; a load error, or a DAG or task
    that is gone, fails the attempt with the reason in its log."""
    if error is not None:
        where = f", line {error.line}" if error.line else ""
        _cannot_load(f"cannot load DAG file {path}{where}: {error.message}")
    dag = next((d for d in dags if d.dag_id == c.dag_id), None)
    if dag is None:
        _cannot_load(f"DAG {c.dag_id!r} is no longer defined in {path}")
    if c.task_id not in dag.tasks:
        _cannot_load(f"DAG {c.dag_id!r} in {path} has no task {c.task_id!r} any more")
    return dag.tasks[c.task_id]


def locate(fileloc: str, folder: Path) -> str:
    """`fileloc` as recorded by the scheduler, or, when this node keeps its DAGs folder
    elsewhere, the same file under `folder` (matched by its longest existing path tail)."""
    if os.path.exists(fileloc):
        return fileloc
    parts = Path(fileloc).parts[1:]
    for i in range(len(parts)):
        candidate = Path(folder).joinpath(*parts[i:])
        if candidate.is_file():
            return str(candidate)
    return fileloc


def _cannot_load(message: str) -> NoReturn:
    print(f"[haflow: {message}]", file=sys.stderr)
    raise SystemExit(1)


def context_env(c: ClaimedAttempt, worker_id: str = "", worker_pid: int = 0) -> dict[str, str]:
    """haflow's variables in an attempt's environment; HAFLOW_WORKER_PID is the process that
    claimed the attempt (a pool process of the local executor, a Celery pool process)."""
    return {
        "HAFLOW_WORKER_ID": worker_id,
        "HAFLOW_WORKER_PID": str(worker_pid or ""),
        "HAFLOW_DAG_ID": c.dag_id,
        "HAFLOW_RUN_ID": c.run_id,
        "HAFLOW_TASK_ID": c.task_id,
        "HAFLOW_ATTEMPT": str(c.attempt),
        "HAFLOW_CONF": json.dumps(c.conf),
        "HAFLOW_DATA_INTERVAL_START": _iso(c.data_interval_start),
        "HAFLOW_DATA_INTERVAL_END": _iso(c.data_interval_end),
    }


def _iso(value: Any) -> str:
    return "" if value is None else value.isoformat()


def python_call(task: PythonTask, c: ClaimedAttempt) -> Callable[[], object]:
    kwargs = dict(task.op_kwargs or {})
    if "context" in inspect.signature(task.python_callable).parameters:
        kwargs["context"] = {**context_env(c), "conf": c.conf, "attempt": c.attempt}
    fn = task.python_callable
    return lambda: fn(**kwargs)
