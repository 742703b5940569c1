"""Parsing the DAGs folder off the scheduling loop, each file in a child process of its own.

A DAG file is user code: its top level may block, loop, exit, crash the interpreter or allocate
without end. None of that may reach the scheduler, so the loop never imports a DAG file and
never waits for a parse: it reads the last result of every file (`DagFileProcessor.view`).

- Each file is imported in a child forked from multiprocessing's fork server (a clean,
  single-threaded process with haflow's DAG modules preloaded), in a process group of its own,
  under an address-space limit of `[core] dag_file_memory_limit` MB.
- A child that runs past `[core] dag_file_import_timeout` is killed with its group; one that dies
  (`os._exit`, a segfault, the OOM killer) or runs out of memory becomes an import error naming
  the file and the cause. At most `[core] dag_parsing_processes` children run at once.
- A file is parsed again when its mtime changes, or the mtime of a helper module it imported
  from the DAGs folder (either makes a new code version); one whose last parse failed is also
  retried every `ERROR_RETRY_S` (a module missing on this node may have been installed since).
- When a parse fails, the DAGs of the file's last good parse stay, beside its import error, so
  the loop keeps scheduling them (Airflow keeps a broken file's serialized DAGs too).

What a child sends back is plain data (`ParsedDag`): the scheduler needs no DAG object, so no
user callable ever crosses into its process.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import resource
import signal
import sys
import threading
import time
import types
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from haflow.core.planner import TaskSpec
from haflow.dag import bundle
from haflow.dag.dag import DAG
from haflow.dag.fits import check_fits
from haflow.dag.loader import ImportErrorRecord, find_dag_files, importable, load_dag_file
from haflow.dag.schedule import AnySchedule
from haflow.errors import ConfigError
from haflow.metastore.records import DagCode, DagRecord, TaskDef

log = logging.getLogger(__name__)

ERROR_RETRY_S = 60.0
"""How often a file whose last parse failed is parsed again although it did not change."""

_KILL_WAIT_S = 2.0
MAX_FAILURES = 10
"""Consecutive failures of the processor's own loop (not of a DAG file: say the fork server
cannot start) after which it gives up, so that its scheduler stops rather than never parsing."""


@dataclass(frozen=True)
class ParsedDag:
    """What the scheduler needs of one DAG: its metastore record and its planner specs."""

    record: DagRecord
    tasks: dict[str, TaskSpec]
    defs: list[TaskDef]
    schedule: AnySchedule | None
    max_active_tasks: int | None = None  # the DAG's task instances in flight, all runs

    @property
    def dag_id(self) -> str:
        return self.record.dag_id


@dataclass(frozen=True)
class ParsedFile:
    """The outcome of one parse of `path` (its mtime read before the import began)."""

    path: str
    mtime: float
    dags: tuple[ParsedDag, ...]
    error: ImportErrorRecord | None
    seconds: float = 0.0
    code: DagCode | None = None  # the file's code version (haflow.dag.bundle), when parsed
    helpers: tuple[tuple[str, float], ...] = ()  # its helper modules' paths and mtimes

    def same_outcome(self, other: ParsedFile | None) -> bool:
        return other is not None and (self.dags, self.error) == (other.dags, other.error)


@dataclass(frozen=True)
class FolderView:
    """The processor's results at one moment: `generation` grows whenever they change."""

    generation: int
    files: tuple[str, ...]
    results: Mapping[str, ParsedFile]
    good: Mapping[str, tuple[ParsedDag, ...]]
    code: Mapping[str, DagCode] = field(default_factory=dict)  # the code of each good parse
    versions: Mapping[str, ParsedFile] = field(default_factory=dict)
    """Code versions from the metastore parsed on request (`parse_version`), by hash."""

    @property
    def pending(self) -> tuple[str, ...]:
        """Files listed but not parsed yet (since this process started)."""
        return tuple(f for f in self.files if f not in self.results)


def summarize(dag: DAG, code_hash: str = "") -> ParsedDag:
    """The plain data of `dag` that the scheduler and the metastore need."""
    notify = dag.notify_rules()
    for rule in notify:  # a callback runs its DAG's version: the leader's folder may differ
        if rule["target"].get("type") == "callback" and code_hash:
            rule["target"]["code_hash"] = code_hash
    record = DagRecord(
        code_hash=code_hash,
        dag_id=dag.dag_id,
        fileloc=str(dag.fileloc),
        schedule=dag.schedule,
        start_date=dag.start_date,
        end_date=dag.end_date,
        catchup=dag.catchup,
        timezone=dag.timezone,
        max_active_runs=dag.max_active_runs,
        tags=list(dag.tags),
        description=dag.description,
        fingerprint=dag.fingerprint(),
        structure=dag.structure(),
        notify=notify,
    )
    tasks = {
        tid: TaskSpec(
            tid,
            frozenset(t.upstream_task_ids),
            t.trigger_rule,
            t.depends_on_past,
            t.max_active_tis_per_dag,
        )
        for tid, t in dag.tasks.items()
    }
    defs = [
        TaskDef(
            task_id=t.task_id,
            retries=t.retries,
            retry_delay_s=t.retry_delay.total_seconds(),
            retry_backoff_cap_s=(
                None if t.retry_backoff_cap is None else t.retry_backoff_cap.total_seconds()
            ),
            timeout_s=None if t.execution_timeout is None else t.execution_timeout.total_seconds(),
            queue=t.queue,
            pool=t.pool,
            pool_slots=t.pool_slots,
        )
        for t in (dag.tasks[tid] for tid in dag.topological_order())
    ]
    check_fits(record, defs)
    return ParsedDag(record, tasks, defs, dag.schedule_obj, dag.max_active_tasks)


def parse_file(
    path: str, memory_limit_mb: int = 0, folder: str | None = None, max_code_kb: int = 0
) -> ParsedFile:
    """Import `path` in this process and summarize its DAGs, with the file's code version: its
    bytes as imported and the helper modules it imported from `folder` (default: the file's
    own folder). What a parse child does; the processor times it, fork included."""
    try:
        mtime = os.stat(path).st_mtime  # before importing: an edit during it shows next time
        source = Path(path).read_bytes()
    except OSError as exc:
        return ParsedFile(path, 0.0, (), ImportErrorRecord(path, None, _describe(exc)))
    dags, error = load_dag_file(path, source)
    if error is not None and error.message.startswith("MemoryError") and memory_limit_mb:
        note = f" (over the {memory_limit_mb} MB a parse may use: [core] dag_file_memory_limit)"
        error = replace(error, message=error.message.rstrip().rstrip(":") + note)
    if error is not None:
        return ParsedFile(path, mtime, (), error)
    try:
        root = folder if folder is not None else os.path.dirname(os.path.abspath(path))
        b = bundle.collect(root, path, source, max_bytes=max_code_kb * 1024)
        code = DagCode(b.hash, b.entry, b.size, b.pack())
        parsed = tuple(summarize(d, code.hash) for d in dags)
    except Exception as exc:  # too large, or a DAG whose attributes cannot be summarized
        return ParsedFile(path, mtime, (), ImportErrorRecord(path, None, _describe(exc)))
    return ParsedFile(path, mtime, parsed, None, code=code, helpers=_helpers(root, b))


def _helpers(root: str, b: bundle.Bundle) -> tuple[tuple[str, float], ...]:
    """The mtimes of the bundle's helper modules: a change to one is a new version too."""
    out = []
    for name, _ in b.files:
        if name != b.entry:
            p = os.path.join(root, name)
            with contextlib.suppress(OSError):
                out.append((p, os.stat(p).st_mtime))
    return tuple(out)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _child(
    path: str,
    conn: Connection,
    folder: str,
    memory_limit_mb: int,
    max_code_kb: int,
    version: bool,
) -> None:
    """Body of a parse child: own process group, memory cap, parse, send, exit at once (so
    threads or atexit hooks a DAG file left behind cannot keep it alive)."""
    try:
        os.setsid()
        if memory_limit_mb:
            limit = memory_limit_mb * 1024 * 1024
            _, hard = resource.getrlimit(resource.RLIMIT_AS)
            if hard != resource.RLIM_INFINITY:
                limit = min(limit, hard)
            resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
        importable(Path(folder), first=version)
        result = parse_file(path, memory_limit_mb, folder, max_code_kb)
        try:
            conn.send(result)
        except Exception as exc:  # e.g. a DAG attribute that cannot be pickled
            message = f"{_describe(exc)} (while sending the parse result)"
            conn.send(ParsedFile(path, result.mtime, (), ImportErrorRecord(path, None, message)))
        conn.close()
    finally:
        os._exit(0)


@dataclass(frozen=True)
class _Job:
    """A file to parse: one of the DAGs folder (`key` is its path) or a code version
    unpacked from the metastore (`key` is its hash, `folder` its unpacked folder)."""

    key: str
    path: str
    folder: str
    version: bool = False


@dataclass
class _Child:
    job: _Job
    path: str
    proc: BaseProcess
    conn: Connection
    started: float
    deadline: float


@dataclass
class _State:
    generation: int = 0
    files: tuple[str, ...] = ()
    results: dict[str, ParsedFile] = field(default_factory=dict)
    good: dict[str, tuple[ParsedDag, ...]] = field(default_factory=dict)
    code: dict[str, DagCode] = field(default_factory=dict)
    failed_at: dict[str, float] = field(default_factory=dict)
    versions: dict[str, ParsedFile] = field(default_factory=dict)
    wanted: dict[str, _Job] = field(default_factory=dict)  # versions asked for, not queued yet


class DagFileProcessor:
    """Parses the files of `folder` in child processes from a thread of its own; thread-safe."""

    def __init__(
        self,
        folder: Path,
        *,
        interval_s: float,
        timeout_s: float = 30.0,
        memory_limit_mb: int = 0,
        max_code_kb: int = 0,
        processes: int = 2,
        only: Sequence[str] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """`only`: these files of `folder` alone, not every one (`haflow dags push FILE`)."""
        self.folder = Path(folder)
        self.only = None if only is None else {os.path.abspath(p) for p in only}
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.memory_limit_mb = memory_limit_mb
        self.max_code_kb = max_code_kb
        self.processes = processes
        self.monotonic = monotonic
        self._ctx: Any = multiprocessing.get_context("forkserver")
        self._ctx.set_forkserver_preload(["haflow.scheduler.parsing"])
        self._state = _State()
        self._changed = threading.Condition()
        self._queue: deque[_Job] = deque()
        self._running: dict[str, _Child] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- what the scheduler reads ---------------------------------------------------------------

    @property
    def generation(self) -> int:
        return self._state.generation

    def view(self) -> FolderView:
        with self._changed:
            s = self._state
            return FolderView(
                s.generation,
                s.files,
                dict(s.results),
                dict(s.good),
                dict(s.code),
                dict(s.versions),
            )

    def parse_version(self, code_hash: str, path: str, folder: str) -> None:
        """Parse code version `code_hash`, unpacked at `path` in `folder`, unless it was
        parsed already (or failed less than `ERROR_RETRY_S` ago); the result shows in
        `view().versions`. Thread-safe and cheap: the scheduling loop asks at every tick."""
        with self._changed:
            s = self._state
            failed = self._state.failed_at.get(code_hash)
            if code_hash in s.versions and (
                failed is None or self.monotonic() - failed < ERROR_RETRY_S
            ):
                return
            if code_hash not in self._running:
                s.wanted.setdefault(code_hash, _Job(code_hash, path, folder, version=True))

    def wait_parsed(self, timeout_s: float) -> bool:
        """Block until every listed file has a result (tests, CLI); False on timeout."""
        deadline = self.monotonic() + timeout_s
        with self._changed:
            while not self._all_parsed():
                left = deadline - self.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 0.5))
        return True

    def _all_parsed(self) -> bool:
        return all(f in self._state.results for f in self._state.files)

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        self._scan()  # the file list at once, so the first view knows what is pending
        self._thread = threading.Thread(target=self._run, name="dag-processor", daemon=True)
        self._thread.start()

    def healthy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10.0)
        for child in list(self._running.values()):
            _kill(child)
        self._running.clear()

    def _run(self) -> None:
        next_scan = self.monotonic() + self.interval_s
        failed = 0
        while not self._stop.is_set():
            try:
                if self.monotonic() >= next_scan:
                    next_scan = self.monotonic() + self.interval_s
                    self._scan()
                self._launch()
                self._collect(max(0.0, min(0.5, next_scan - self.monotonic())))
                failed = 0
            except Exception:  # log, back off, retry; give up (unhealthy) when it persists
                failed += 1
                log.exception("the DAG file processor failed (%d in a row)", failed)
                if failed >= MAX_FAILURES:
                    log.error("the DAG file processor gives up: its daemon stops")
                    return  # healthy() turns False: the scheduler stops, naming it
                self._stop.wait(1.0)

    # -- scanning and launching -----------------------------------------------------------------

    def _scan(self) -> None:
        try:
            files = tuple(os.path.abspath(p) for p in find_dag_files(self.folder))
            if self.only is not None:
                files = tuple(f for f in files if f in self.only)
        except ConfigError as exc:
            log.error("cannot scan the DAGs folder: %s", exc)
            return
        now = self.monotonic()
        busy = {j.key for j in self._queue} | set(self._running)
        with self._changed:
            s = self._state
            gone = [p for p in s.results if p not in files]
            for path in gone:
                s.results.pop(path, None)
                s.good.pop(path, None)
                s.code.pop(path, None)
                s.failed_at.pop(path, None)
            if gone or files != s.files:
                s.files = files
                s.generation += 1
                self._changed.notify_all()
            stale = [p for p in files if p not in busy and self._stale(p, now)]
        self._queue.extend(_Job(p, p, str(self.folder)) for p in stale)

    def _stale(self, path: str, now: float) -> bool:
        last = self._state.results.get(path)
        if last is None:
            return True
        try:
            if os.stat(path).st_mtime != last.mtime:
                return True
            if any(os.stat(p).st_mtime != t for p, t in last.helpers):
                return True  # a helper module changed: the file's code version did
        except OSError:
            return True
        failed = self._state.failed_at.get(path)
        return failed is not None and now - failed >= ERROR_RETRY_S

    def _launch(self) -> None:
        with self._changed:
            wanted, self._state.wanted = self._state.wanted, {}
        queued = {j.key for j in self._queue}
        self._queue.extend(j for j in wanted.values() if j.key not in queued)
        while self._queue and len(self._running) < self.processes and not self._stop.is_set():
            job = self._queue.popleft()
            if job.key in self._running:
                continue
            recv, send = self._ctx.Pipe(duplex=False)
            args = (job.path, send, job.folder, self.memory_limit_mb, self.max_code_kb, job.version)
            proc = self._ctx.Process(
                target=_child,
                args=args,
                name=f"haflow-parse {os.path.basename(job.path)}",
                daemon=True,
            )
            with _main_hidden():
                proc.start()
            send.close()
            now = self.monotonic()
            self._running[job.key] = _Child(job, job.path, proc, recv, now, now + self.timeout_s)

    # -- collecting -----------------------------------------------------------------------------

    def _collect(self, timeout_s: float) -> None:
        if not self._running:
            self._stop.wait(timeout_s)
            return
        soonest = min(c.deadline for c in self._running.values()) - self.monotonic()
        waitables: list[Any] = []
        for c in self._running.values():
            waitables += [c.conn, c.proc.sentinel]
        wait(waitables, max(0.0, min(timeout_s, soonest)))
        for child in list(self._running.values()):
            result = self._outcome(child)
            if result is not None:
                del self._running[child.job.key]
                if child.job.version:
                    self._record_version(child.job.key, result)
                else:
                    self._record(result)

    def _outcome(self, c: _Child) -> ParsedFile | None:
        """The result of `c` if it ended (sent one, died, or ran out of time), else None."""
        elapsed = self.monotonic() - c.started
        # whether it exited is read *before* the pipe: whatever it sent before exiting is in
        # the pipe by then. The other order races: nothing yet, then the child sends and exits,
        # and a good parse would be taken for a death (found by benchmarks/parse.py).
        exited = not c.proc.is_alive()
        if c.conn.poll():
            try:
                result: ParsedFile = c.conn.recv()
            except (EOFError, OSError):
                pass  # closed without a result: it died, judged below
            else:
                _kill(c)
                return replace(result, seconds=elapsed)
        if exited:
            _kill(c)
            return self._error(c, _death(c.proc.exitcode), elapsed)
        if self.monotonic() >= c.deadline:
            _kill(c)
            why = (
                f"import timed out after {self.timeout_s:g} s ([core] dag_file_import_timeout); "
                "its parse was killed"
            )
            return self._error(c, why, elapsed)
        return None

    def _error(self, c: _Child, message: str, elapsed: float) -> ParsedFile:
        try:
            mtime = os.stat(c.path).st_mtime
        except OSError:
            mtime = 0.0
        return ParsedFile(c.path, mtime, (), ImportErrorRecord(c.path, None, message), elapsed)

    def _record_version(self, code_hash: str, result: ParsedFile) -> None:
        if result.error is not None:
            log.warning("DAG code version %s: %s", code_hash[:12], result.error.message)
        with self._changed:
            s = self._state
            if result.error is None:
                s.failed_at.pop(code_hash, None)
            else:
                s.failed_at[code_hash] = self.monotonic()
            s.versions[code_hash] = replace(result, code=None)  # its bytes are in the cache
            s.generation += 1
            self._changed.notify_all()

    def _record(self, result: ParsedFile) -> None:
        if result.error is not None:
            log.warning("DAG file %s: %s", result.path, result.error.message)
        with self._changed:
            s = self._state
            if result.path not in s.files:
                return  # removed while it was parsed
            if result.error is None:
                s.good[result.path] = result.dags
                if result.code is not None:
                    s.code[result.path] = result.code
                s.failed_at.pop(result.path, None)
            else:
                s.failed_at[result.path] = self.monotonic()
            previous = s.results.get(result.path)
            s.results[result.path] = result
            if not result.same_outcome(previous):
                s.generation += 1
            self._changed.notify_all()


@contextlib.contextmanager
def _main_hidden() -> Iterator[None]:
    """multiprocessing re-imports the parent's `__main__` in every child it starts (functions
    pickled by reference may live there). A scheduler's `__main__` is the whole `haflow` CLI, so
    each parse would first import it: seconds on a busy node (found by the browser test: a DAG
    not shown after 5 s). The parse child needs nothing from it (`_child` lives here, preloaded
    in the fork server), so `__main__` is a bare stand-in while a child is started."""
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


def _death(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        why = {
            "SIGSEGV": " (the interpreter crashed)",
            "SIGKILL": " (killed from outside: the kernel's OOM killer?)",
            "SIGABRT": " (the interpreter aborted)",
        }.get(name, "")
        return f"its parse process died of {name}{why} before reporting"
    return (
        f"its parse process exited with code {exitcode} before reporting "
        "(does the file call os._exit?)"
    )


def _kill(c: _Child) -> None:
    """Kill the child's whole process group (a DAG file may have started processes)."""
    if c.proc.pid:  # its own group since its setsid; never killpg(0), our own group
        with contextlib.suppress(OSError):
            os.killpg(c.proc.pid, signal.SIGKILL)
    with contextlib.suppress(OSError, ValueError, AttributeError):
        c.proc.kill()
    c.proc.join(_KILL_WAIT_S)
    c.conn.close()
