"""Runs one task attempt in a child process: output captured, timeout and cancellation enforced.

The child is forked (Python tasks) or forked then exec'd (bash), in its own session so the
whole process group can be killed; it dies with its parent (PR_SET_PDEATHSIG). The parent waits
on a pidfd and the output pipe together, so it notices the end of the child at once.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

from haflow.core.secrets import Masker

_PR_SET_PDEATHSIG = 1


class Outcome(Enum):
    SUCCESS = "success"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"  # the attempt was taken away from us (reclaimed) or we stopped
    RESCHEDULED = "rescheduled"  # a sensor's poke found nothing yet: poke again later


@dataclass
class Result:
    outcome: Outcome
    reason: str
    exit_code: int | None


class LogSink:
    """Collects a child's output up to `cap` bytes and hands it out in chunks for streaming.

    Once a secret is added (`mask`: the values the attempt read, `haflow.worker.secrets`), every
    chunk handed out has them replaced by `***`, and an unfinished last line is held back
    (up to HOLD_BYTES) until its end arrives, so a value split across two reads of the pipe
    is masked too."""

    HOLD_BYTES = 65536

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.kept = 0
        self.dropped = 0
        self._pending: list[bytes] = []
        self._masker = Masker()
        self._lock = threading.Lock()  # fed by the supervising loop, taken by the heartbeat

    def feed(self, data: bytes) -> None:
        with self._lock:
            room = self.cap - self.kept
            if room > 0:
                self._pending.append(data[:room])
                self.kept += min(room, len(data))
            self.dropped += max(0, len(data) - max(room, 0))

    def mask(self, values: list[str]) -> None:
        with self._lock:
            self._masker.add(values)

    def take(self, final: bool = False) -> str:
        with self._lock:
            data = b"".join(self._pending)
            self._pending.clear()
            if self._masker and not final:
                end = data.rfind(b"\n") + 1
                if len(data) - end < self.HOLD_BYTES and end < len(data):
                    self._pending.append(data[end:])
                    data = data[:end]
            out = self._masker.mask(data.decode("utf-8", "replace"))
        if final and self.dropped:
            out += f"\n[haflow: log truncated, {self.dropped} bytes over the cap dropped]\n"
        return out


def set_parent_death_signal(sig: int = signal.SIGKILL, parent_pid: int | None = None) -> None:
    """Ask Linux to send `sig` to this process when its parent dies, so no attempt or pool
    process outlives its worker. A parent that died before the request was made (the child was
    already handed to init) is caught by comparing with `parent_pid`: the signal comes at once."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
    except OSError:  # not Linux: the heartbeat/reclaim path still bounds the damage
        return
    if parent_pid is not None and os.getppid() != parent_pid:
        os.kill(os.getpid(), sig)


def spawn_python(fn: Callable[[], object]) -> tuple[int, int]:
    """Fork a child that runs `fn`; returns (pid, read end of its output pipe)."""
    return _fork(lambda: run_python(fn))


def _fork(body: Callable[[], None]) -> tuple[int, int]:
    r, w = os.pipe()
    pid = fork_onto(w, body, close=(r,))
    os.close(w)
    return pid, r


def fork_onto(w: int, body: Callable[[], None], close: Sequence[int] = ()) -> int:
    """Fork a child in a session of its own, killed when this process dies, whose output
    goes to `w`, that closes the descriptors `close` and runs `body`; returns its pid."""
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # child: never return into the caller's stack
        code = 1
        try:
            os.setsid()
            set_parent_death_signal(parent_pid=parent)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            for fd in close:
                os.close(fd)
            os.dup2(w, 1)
            os.dup2(w, 2)
            body()
            code = 0
        except SystemExit as exc:
            code = 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    return pid


def run_python(fn: Callable[[], object]) -> None:
    """In a forked child: line-buffered stdout and stderr on fds 1 and 2, then `fn`."""
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
    result = fn()
    if result is not None:
        print(f"[haflow: returned {result!r}]"[:2000])


def supervise(
    pid: int,
    out_fd: int,
    sink: LogSink,
    *,
    timeout_s: float | None,
    tick_every_s: float,
    on_tick: Callable[[], bool],
    monotonic: Callable[[], float] = time.monotonic,
    reap: Callable[[int], int] | None = None,
    pidfd: int | None = None,
    timeout_named_s: float | None = None,
) -> Result:
    """Wait for the child, collecting output; call `on_tick` every `tick_every_s`.

    `on_tick` returning False cancels the attempt (it was reclaimed, or the worker stops).
    `reap` waits for the ended child and returns its exit code (negative: the signal that
    killed it); by default `waitpid`, for a child of this process. `pidfd`, when given, is
    the child's (then closed here); otherwise one is opened. `timeout_named_s` is the timeout
    the reason names when it is not `timeout_s` (what was left of it when the child started).
    """
    reap = reap or _waitpid
    pidfd = os.pidfd_open(pid) if pidfd is None else pidfd
    start = monotonic()
    deadline = None if timeout_s is None else start + timeout_s
    next_tick = start + tick_every_s
    watched = [out_fd, pidfd]
    try:
        while True:
            now = monotonic()
            if deadline is not None and now >= deadline:
                return _kill(
                    pid,
                    out_fd,
                    sink,
                    Outcome.TIMED_OUT,
                    f"execution timeout of {timeout_named_s or timeout_s:g} s exceeded",
                    reap,
                )
            if now >= next_tick:
                next_tick = now + tick_every_s
                if not on_tick():
                    return _kill(pid, out_fd, sink, Outcome.CANCELLED, "attempt cancelled", reap)
            wait = min(next_tick, deadline or next_tick) - now
            ready, _, _ = select.select(watched, [], [], max(wait, 0.0))
            if out_fd in ready and not _drain(out_fd, sink):
                watched.remove(out_fd)  # EOF: the child closed its output, keep waiting on it
            if pidfd in ready:
                return _reap(pid, out_fd, sink, reap)
    finally:
        os.close(pidfd)
        _close(out_fd)


def _drain(fd: int, sink: LogSink) -> bool:
    try:
        data = os.read(fd, 65536)
    except BlockingIOError:
        return True
    if data:
        sink.feed(data)
    return bool(data)


def _waitpid(pid: int) -> int:
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def _reap(pid: int, out_fd: int, sink: LogSink, reap: Callable[[int], int]) -> Result:
    code = reap(pid)
    _drain_rest(out_fd, sink)
    if code == 0:
        return Result(Outcome.SUCCESS, "", 0)
    if code < 0:
        return Result(Outcome.FAILED, f"killed by signal {signal.Signals(-code).name}", code)
    return Result(Outcome.FAILED, f"exited with code {code}", code)


def _drain_rest(fd: int, sink: LogSink) -> None:
    """Read what the child left in the pipe, without waiting on grandchildren that keep it open."""
    os.set_blocking(fd, False)
    while True:
        ready, _, _ = select.select([fd], [], [], 0.05)
        if not ready or not _drain(fd, sink):
            return
        if not _readable_now(fd):
            return


def _readable_now(fd: int) -> bool:
    ready, _, _ = select.select([fd], [], [], 0)
    return bool(ready)


def _kill(
    pid: int,
    out_fd: int,
    sink: LogSink,
    outcome: Outcome,
    reason: str,
    reap: Callable[[int], int],
) -> Result:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    reap(pid)
    _drain_rest(out_fd, sink)
    return Result(outcome, reason, None)


def _close(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)
