"""Warm DAG files: a process that imported one DAG file once forks each attempt of its tasks.

Importing the DAG file in every attempt's child cost every attempt the whole file (14.7 ms
for a file of 1,000 tasks, so a fan-out of N paid O(N^2)). A warm process, a new interpreter
started with the task's environment (`haflow.worker.taskenv`) and none of the worker's
descriptors, imports the file once, within `[core] dag_file_import_timeout`. For each attempt
the runner sends it the attempt and the write end of the attempt's output pipe; it forks a
child that becomes the attempt exactly as a cold child would (a session of its own, killed
when its parent dies, output on the pipe, haflow's context variables added, bash by exec,
Python called), answers with the child's pid, waits until the runner holds a pidfd for it,
reaps it and answers with its exit code. The runner watches and kills the child by that pid,
as for a cold child.

Isolation is kept: an attempt still runs in a process of its own, so a task that crashes,
hangs or exits its interpreter ends only itself; one that kills its parent kills the warm
process, whose children die with it (the attempt fails with that reason), and the next
attempt gets a new one; warm processes die with their worker. A file whose warm import
fails, hangs past the timeout or crashes is run cold (imported by each attempt's own child,
whose log then says why) until the file changes. A warm process serves only while its DAG
file and every module it imported from the DAGs folder keep the size and mtime they had.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import select
import signal
import socket
import subprocess
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from haflow.dag.loader import importable, load_dag_file
from haflow.metastore.records import ClaimedAttempt
from haflow.worker.code import CodeLocation
from haflow.worker.files import AttemptFiles
from haflow.worker.process import fork_onto, run_python, set_parent_death_signal
from haflow.worker.taskenv import task_environ

_MAX_MESSAGE = 1 << 20
_ANSWER_S = 10.0  # how long a warm process may take to fork, or to report an exit it saw
_FileStamp = tuple[str, int, int]  # path, mtime_ns, size


@dataclass(frozen=True)
class WarmChild:
    """An attempt's child forked by a warm process: its pid, the read end of its output, and
    how to learn its exit code (from the warm process, which is its parent)."""

    pid: int
    out_fd: int
    pidfd: int  # opened before the warm process may reap it: the pid cannot be reused meanwhile
    reap: Callable[[int], int]


class WarmFiles:
    """The warm processes of one worker process, at most `size`, least recently used out."""

    def __init__(
        self,
        allow: Sequence[str],
        *,
        size: int,
        import_timeout_s: float,
    ) -> None:
        self.allow = tuple(allow)
        self.size = size
        self.import_timeout_s = import_timeout_s
        self._warm: OrderedDict[str, _Warm] = OrderedDict()
        self._cold: dict[str, _FileStamp | None] = {}  # files run cold, as they were then

    def start(
        self,
        where: CodeLocation,
        c: ClaimedAttempt,
        worker_id: str,
        tick: Callable[[], bool],
        limit_s: float | None = None,
        *,
        files: AttemptFiles,
    ) -> WarmChild | None:
        """Fork the attempt `c` from the warm process of `path`, made first if needed; None
        when the file must be run cold: its warm import failed, crashed or outlasted the
        import timeout (then the file stays cold until it changes), or it outlasted
        `limit_s` (what is left of the attempt's own timeout), or `tick` said stop. A code
        version's file never changes, so its warm process serves every run of that version."""
        path = where.path
        if self.size <= 0 or self._cold.get(path, False) == _stamp(path):
            return None
        self._cold.pop(path, None)
        warm = self._warm.pop(path, None)
        if warm is not None and not warm.usable():
            warm.close()
            warm = None
        if warm is None:
            warm = _Warm(where, self.allow)
            wait_s = min(self.import_timeout_s, limit_s or self.import_timeout_s)
            verdict = warm.wait_ready(time.monotonic() + wait_s, tick)
            if verdict != "ready":
                warm.close()
                if verdict == "broken" or wait_s == self.import_timeout_s:
                    self._cold[path] = _stamp(path)
                return None
        self._warm[path] = warm
        while len(self._warm) > self.size:
            self._warm.popitem(last=False)[1].close()
        r, w = os.pipe()
        try:
            pid, pidfd = warm.fork(c, worker_id, w, files)
        except (OSError, EOFError, ValueError):  # it died since: this attempt runs cold
            os.close(r)
            self._warm.pop(path).close()
            return None
        finally:
            os.close(w)
        return WarmChild(pid, r, pidfd, warm.reap)

    def close(self) -> None:
        while self._warm:
            self._warm.popitem()[1].close()


class _Warm:
    def __init__(self, where: CodeLocation, allow: Sequence[str]) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # a new interpreter, not a fork of this worker: a third of the memory (its pages are
        # what every attempt's fork copies: 1 ms of CPU a fork instead of 3, measured), none
        # of the worker's connections, and the task's environment from its first instruction
        args = {
            "fd": theirs.fileno(),
            "path": where.path,
            "folder": where.root,
            "first": where.versioned,
            "as_path": where.as_path,
            "parent": os.getpid(),
            "sys_path": [p for p in sys.path if p],
        }
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _BOOT, json.dumps(args)],
                env=task_environ(os.environ, allow, {}),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),),
                start_new_session=True,  # the worker's Ctrl-C is the worker's to handle
            )
        finally:
            theirs.close()
        self.pid = self.proc.pid
        self.sock = ours
        self.files: list[_FileStamp] = []
        self._alive = True

    def wait_ready(self, deadline: float, tick: Callable[[], bool]) -> str:
        """ready; broken (the import failed or the process died); late; or stopped."""
        while tick():
            left = deadline - time.monotonic()
            if left <= 0:
                return "late"
            ready, _, _ = select.select([self.sock], [], [], min(left, 0.1))
            if ready:
                answer = self._answer(0)
                if answer is None or answer[0] != "ready":
                    return "broken"
                self.files = answer[1]
                return "ready"
        return "stopped"

    def usable(self) -> bool:
        """Alive, and every file it imported from the DAGs folder unchanged."""
        if not self._alive or self.proc.poll() is not None:
            self._alive = False
            return False
        return all(_stamp(stamp[0]) == stamp for stamp in self.files)

    def fork(
        self, c: ClaimedAttempt, worker_id: str, out_fd: int, files: AttemptFiles
    ) -> tuple[int, int]:
        """The attempt's child's pid and a pidfd for it, opened before the warm process
        reaps the child (it waits for our word), so the pid names that child alone."""
        socket.send_fds(self.sock, [pickle.dumps((c, worker_id, files))], [out_fd])
        answer = self._answer(_ANSWER_S)
        if answer is None or answer[0] != "pid":
            raise EOFError("the warm process did not fork the attempt")
        pid = int(answer[1])
        pidfd = os.pidfd_open(pid)
        try:
            self.sock.send(b"watching")
        except OSError:
            os.close(pidfd)
            raise
        return pid, pidfd

    def reap(self, pid: int) -> int:
        """The exit code of child `pid`, as its warm parent saw it; SIGKILL's if the warm
        process died first (its children die with it)."""
        answer = self._answer(_ANSWER_S)
        if answer is None or answer[0] != "exit" or answer[1] != pid:
            self._alive = False
            return -signal.SIGKILL
        return int(answer[2])

    def _answer(self, timeout_s: float) -> Any:
        if timeout_s and not select.select([self.sock], [], [], timeout_s)[0]:
            return None
        try:
            data = self.sock.recv(_MAX_MESSAGE)
        except OSError:
            return None
        return pickle.loads(data) if data else None

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        self.proc.wait()
        self.sock.close()
        self._alive = False


def _stamp(path: str) -> _FileStamp | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (path, st.st_mtime_ns, st.st_size)


_BOOT = (
    "import json, sys; a = json.loads(sys.argv[1]); sys.path[:0] = a['sys_path']; "
    "from haflow.worker.warm import serve; serve(a)"
)


def serve(args: dict[str, Any]) -> None:
    """The warm process's entry point (`_BOOT`): import the file, say so, then fork one
    attempt at a time; it ends when the worker closes the socket or dies."""
    sock = socket.socket(fileno=args["fd"])
    parent = int(args["parent"])
    set_parent_death_signal(signal.SIGKILL, parent_pid=parent)
    where = (args["path"], Path(args["folder"]), bool(args.get("first")), args.get("as_path"))
    _serve(sock, where, parent)


def _serve(sock: socket.socket, where: tuple[str, Path, bool, str | None], parent: int) -> None:
    path, folder, first, as_path = where
    keep = sock.fileno()
    importable(folder, first=first)
    dags, error = load_dag_file(path, as_path=as_path)
    if error is not None:
        sock.send(pickle.dumps(("error", error.message)))
        return
    sock.send(pickle.dumps(("ready", _imported(folder, path))))
    from haflow.worker.child import context_env, pick_task, run_task

    while True:
        data, fds, _, _ = socket.recv_fds(sock, _MAX_MESSAGE, 1)
        if not data or not fds:
            return
        c, worker_id, files = pickle.loads(data)

        go_r, go_w = os.pipe()

        def attempt(
            c: ClaimedAttempt = c,
            worker_id: str = worker_id,
            files: AttemptFiles = files,
            go_r: int = go_r,
        ) -> object:
            _await_go(go_r)
            os.environ.update(context_env(c, worker_id, parent, files))
            return run_task(pick_task(dags, None, c, path), c, dict(os.environ), files)

        pid = fork_onto(fds[0], lambda: run_python(attempt), close=(keep, go_w))
        os.close(fds[0])
        os.close(go_r)
        try:
            sock.send(pickle.dumps(("pid", pid)))
            if sock.recv(16) != b"watching":  # the worker is gone: so are we
                return
            os.write(go_w, b"g")
        finally:
            os.close(go_w)
        _, status = os.waitpid(pid, 0)
        sock.send(pickle.dumps(("exit", pid, os.waitstatus_to_exitcode(status))))


def _await_go(go_r: int) -> None:
    """In the attempt's child: run nothing of the task until the worker holds its pidfd (the
    warm parent then writes the go-ahead). Should the parent die first, the worker runs the
    attempt cold: this child must not have started it (it dies too, by its parent-death
    signal, or here on the pipe's end)."""
    if os.read(go_r, 1) != b"g":
        os._exit(1)
    os.close(go_r)


def _imported(folder: Path, path: str) -> list[_FileStamp]:
    """The DAG file and every module imported from the DAGs folder, with their stamps."""
    root = os.path.abspath(folder) + os.sep
    files = {path}
    for module in list(sys.modules.values()):
        f = getattr(module, "__file__", None)
        if isinstance(f, str) and os.path.abspath(f).startswith(root):
            files.add(os.path.abspath(f))
    return [s for s in map(_stamp, sorted(files)) if s is not None]
