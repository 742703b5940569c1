"""Runs one claimed attempt end to end: claim, execute, heartbeat, stream logs, report.

The same path serves the local executor's processes and the Celery workers. Invariants: a
worker runs only an attempt it claimed; it heartbeats from the claim on; the DAG's own file
(and no other) is imported outside the worker's process (once in a warm process that forks the
attempts, `haflow.worker.warm`, or in the attempt's own child, `haflow.worker.child`), so an
import that hangs or crashes counts against that attempt's execution timeout and fails that
attempt alone, never the worker or other DAGs' attempts; it stops the attempt as soon as a
heartbeat says the attempt is no longer its own, or when no heartbeat has succeeded for its
self-fence window `timeout - self_fence_margin`, counted from when the last good one (or the
claim) was sent. The leader reclaims no sooner than that window plus a margin after the
metastore stamped it (`haflow.core.reclamation`), so a worker never runs an attempt
concurrently with the one that replaced it. Losing ZooKeeper never stops an attempt.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

from haflow.config import Settings
from haflow.config.schema import DEFAULT_TASK_ENV
from haflow.config.settings import env_patterns
from haflow.core.attempt_end import DEFAULT_POLICY, Ending, EndPolicy
from haflow.core.clock import Clock, utcnow
from haflow.errors import BackendUnavailable, HaflowError
from haflow.metastore.records import AttemptRef, ClaimedAttempt
from haflow.metastore.repository import Repository
from haflow.worker.batch import AttemptCalls
from haflow.worker.child import run_from_file
from haflow.worker.code import CodeSource, CodeUnavailable
from haflow.worker.files import AttemptFiles, ResultRefused, collect, prepare, remove
from haflow.worker.listener import NO_LISTENER, AttemptListener
from haflow.worker.process import LogSink, Outcome, Result, spawn_python, supervise
from haflow.worker.secrets import SecretServer, repository_source
from haflow.worker.sensing import SensorFailed, judge, read_poke
from haflow.worker.warm import WarmFiles

log = logging.getLogger(__name__)

_ENDINGS = {
    Outcome.SUCCESS: Ending.SUCCESS,
    Outcome.FAILED: Ending.FAILED,
    Outcome.TIMED_OUT: Ending.TIMED_OUT,
    Outcome.CANCELLED: Ending.ABANDONED,  # the worker stopped while the attempt ran
    Outcome.RESCHEDULED: Ending.RESCHEDULED,
}


@dataclass(frozen=True)
class _End:
    """How an attempt ended: its result, and what a successful one returned or a
    rescheduled sensor asks for (when to poke again, since when it pokes)."""

    result: Result
    value: str | None = None
    poke_at: datetime | None = None
    since: datetime | None = None


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
    max_result_bytes: int = 65536  # the largest result an attempt may return
    code_cache: str = ""  # where code versions are unpacked ("": haflow.dag.bundle's default)

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
            max_result_bytes=w.max_result_bytes,
            code_cache=settings.core.code_cache,
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
        attempts: AttemptCalls | None = None,
    ) -> None:
        self.repo = repo
        # claims, heartbeats and reports: the repository's, or a batcher shared by threads
        self.attempts: AttemptCalls = attempts if attempts is not None else repo.attempts
        self.dags_folder = Path(dags_folder)
        self.worker_id = worker_id
        self.cfg = cfg
        self.clock = clock
        self.stopping = stopping
        self.monotonic = monotonic
        self.listener = listener  # observes claims and ends (metrics)
        self.files_base = Path(tempfile.mkdtemp(prefix="haflow-attempts-"))
        self.secrets = SecretServer(self.files_base, repository_source(repo))
        self.code = CodeSource(lambda h: repo.dags.code(h), cfg.code_cache, self.dags_folder)
        self.warm = WarmFiles(
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
        files = prepare(self.files_base, claimed.ti_id, claimed.attempt, claimed.results)
        self.secrets.admit(files.folder, sink)  # what it reads is masked in its log
        watch.start()
        try:
            end = self._attempt(claimed, sink, watch, files)
        finally:
            watch.close()
            self.secrets.forget(files.folder)
            remove(files)
        result = end.result
        if result.outcome is Outcome.CANCELLED and not watch.ours:
            why = "reclaimed" if watch.taken else "self_fenced"
            self.listener.abandoned(claimed, why, self.monotonic() - sent)
            return "cancelled"  # reclaimed or self-fenced: the attempt is not ours to report
        if result.outcome is Outcome.CANCELLED:
            result.reason = "worker stopped while the attempt ran"
        accepted = self._report(claimed, end, sink)
        ending = _ENDINGS[result.outcome]
        self.listener.finished(claimed, ending.attempt_state, self.monotonic() - sent, accepted)
        return result.outcome.value

    def _claim(self, ref: AttemptRef) -> tuple[float, ClaimedAttempt | None]:
        """The claim, made a second time if the first found its pooled connection broken
        (the pool then holds only new ones; a claim is conditional, so trying again is
        safe); with when it was sent: it stamps the first heartbeat no sooner than that."""
        try:
            sent = self.monotonic()
            return sent, self.attempts.claim(ref, self.worker_id, self.clock())
        except BackendUnavailable as exc:
            log.warning("claim of attempt %s failed (%s); trying once more", ref.attempt, exc)
        sent = self.monotonic()
        return sent, self.attempts.claim(ref, self.worker_id, self.clock())

    def _attempt(
        self, claimed: ClaimedAttempt, sink: LogSink, watch: _Watch, files: AttemptFiles
    ) -> _End:
        """Run the attempt's process. A sensor's poke is judged here (`haflow.worker.sensing`):
        in poke mode its process runs again after each `poke_interval` (the slot held), in
        reschedule mode the attempt ends `rescheduled` and the leader queues the next."""
        slim = replace(claimed, results={})  # the results travel in `files`
        since = claimed.sensing_since or self.clock()

        def say(line: str) -> None:
            sink.feed((line + "\n").encode())

        while True:
            result = self._execute(slim, sink, watch, files)
            poke = read_poke(files) if result.outcome is Outcome.SUCCESS else None
            if poke is None:
                return _End(result, self._result(result, files, sink))
            now = self.clock()
            try:
                if judge(poke, claimed, since, now, self._external_state, say):
                    return _End(result)
            except SensorFailed as exc:
                say(f"[haflow: {exc}]")
                return _End(Result(Outcome.FAILED, str(exc), 0))
            if poke.reschedules:
                at = now + timedelta(seconds=poke.poke_interval_s)
                why = f"poking again at {at.isoformat()}"
                return _End(Result(Outcome.RESCHEDULED, why, 0), poke_at=at, since=since)
            if not self._pause(poke.poke_interval_s, watch):
                return _End(Result(Outcome.CANCELLED, "attempt cancelled", None))

    def _pause(self, seconds: float, watch: _Watch) -> bool:
        """Wait `seconds` between pokes, heartbeats going on; False if the attempt was taken
        away or the worker stops meanwhile."""
        until = self.monotonic() + seconds
        while (left := until - self.monotonic()) > 0:
            if not watch.tick():
                return False
            time.sleep(min(left, 0.1))
        return watch.tick()

    def _external_state(
        self, dag_id: str, task_id: str | None, start: datetime, end: datetime
    ) -> str | None:
        return self.repo.runs.external_state(dag_id, task_id, start, end)

    def _result(self, result: Result, files: AttemptFiles, sink: LogSink) -> str | None:
        """A successful attempt's result (JSON text), None without one. One that cannot be
        kept (too large, not JSON) fails the attempt, saying why in its log."""
        if result.outcome is not Outcome.SUCCESS:
            return None
        try:
            return collect(files, self.cfg.max_result_bytes)
        except ResultRefused as exc:
            sink.feed(f"[haflow: {exc}]\n".encode())
            result.outcome, result.reason = Outcome.FAILED, str(exc)
            return None

    def _execute(
        self, claimed: ClaimedAttempt, sink: LogSink, watch: _Watch, files: AttemptFiles
    ) -> Result:
        """Start the attempt's child (which loads the task itself) and run it under `watch`;
        an attempt that may no longer be ours (taken, or silent past the self-fence window)
        is not started at all."""
        cancelled = Result(Outcome.CANCELLED, "attempt cancelled before it started", None)
        if not watch.tick():
            return cancelled
        worker_id, allow = self.worker_id, self.cfg.task_env
        began, limit_s = time.monotonic(), claimed.timeout_s
        try:
            where = self.code.locate(claimed)
        except CodeUnavailable as exc:  # the attempt fails, saying why; its retries apply
            sink.feed(f"[haflow: {exc}]\n".encode())
            return Result(Outcome.FAILED, str(exc), None)
        try:
            warm = self.warm.start(where, claimed, worker_id, watch.tick, limit_s, files=files)
            if warm is None and not watch.tick():
                return cancelled  # stopped or taken while the file was imported
            timeout_s = None if limit_s is None else limit_s - (time.monotonic() - began)
            if timeout_s is not None and timeout_s <= 0:  # the import counts, warm or cold
                if warm is None:
                    reason = f"execution timeout of {limit_s:g} s exceeded"
                    return Result(Outcome.TIMED_OUT, reason, None)
                timeout_s = 0.0  # forked at the very end: supervise kills it at once
            if warm is None:
                pid, fd = spawn_python(
                    lambda: run_from_file(claimed, where, worker_id, allow, files)
                )
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
            timeout_named_s=limit_s,
        )

    def close(self) -> None:
        """Stop the warm processes (they would die with this process anyway)."""
        self.warm.close()
        self.secrets.close()
        shutil.rmtree(self.files_base, ignore_errors=True)

    def _report(self, c: ClaimedAttempt, end: _End, sink: LogSink) -> bool | None:
        """Report the end, retrying while the metastore is away; the reaper does the rest.
        False: the report was rejected (a zombie's); None: it could not be made."""
        deadline = self.monotonic() + self.cfg.timeout
        delay = 0.1
        while True:
            try:
                return self.attempts.finish(
                    c.ti_id,
                    c.attempt,
                    self.worker_id,
                    _ENDINGS[end.result.outcome],
                    end.result.reason,
                    self.clock(),
                    log=sink.take(final=True),
                    policy=self.cfg.end_policy,
                    result=end.value,
                    poke_at=end.poke_at,
                    sensing_since=end.since,
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
                alive = self.r.attempts.heartbeat(
                    self.c.ti_id,
                    self.c.attempt,
                    self.r.worker_id,
                    log=self.sink.take(),
                    now=self.r.clock(),
                )
            except HaflowError as exc:
                log.warning("heartbeat of %s failed: %s", self.c.task_id, exc)
                continue
            if not alive:
                self.taken = True
                return
            self.last_ok = sent
