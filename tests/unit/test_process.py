"""Running one attempt in a child process: output, exit codes, timeout, cancellation, log cap."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import sys
import time
from collections.abc import Callable

from haflow.worker.process import LogSink, Outcome, Result, spawn_python, supervise

TICK = 0.05
ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}


def run(
    spawned: tuple[int, int],
    *,
    timeout_s: float | None = 10,
    on_tick: Callable[[], bool] = lambda: True,
    cap: int = 1 << 20,
) -> tuple[Result, str, float]:
    pid, fd = spawned
    sink = LogSink(cap)
    t0 = time.monotonic()
    result = supervise(pid, fd, sink, timeout_s=timeout_s, tick_every_s=TICK, on_tick=on_tick)
    return result, sink.take(final=True), time.monotonic() - t0


def spawn_bash(command: str, env: dict[str, str]) -> tuple[int, int]:
    """A bash task as the attempt's child runs one: bash replaces the forked process."""
    return spawn_python(lambda: os.execvpe("bash", ["bash", "-c", command], env))


def bash(command: str, **kw: object) -> tuple[Result, str, float]:
    return run(spawn_bash(command, ENV), **kw)  # type: ignore[arg-type]


def alive(pid: int) -> bool:
    """Whether `pid` runs; a zombie left for an init that does not reap counts as dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


# --- bash -------------------------------------------------------------------------------


def test_bash_success_captures_stdout_and_stderr() -> None:
    result, log, _ = bash("echo out; echo err >&2")
    assert result == Result(Outcome.SUCCESS, "", 0)
    assert "out\n" in log
    assert "err\n" in log


def test_bash_nonzero_exit_fails_with_the_code() -> None:
    result, log, _ = bash("echo before; exit 3")
    assert result == Result(Outcome.FAILED, "exited with code 3", 3)
    assert "before" in log


def test_bash_gets_exactly_the_given_environment() -> None:
    result, log, _ = run(spawn_bash('echo "v=$HAFLOW_X"', {**ENV, "HAFLOW_X": "42"}))
    assert result.outcome is Outcome.SUCCESS
    assert "v=42" in log


def test_bash_killed_by_signal_is_reported() -> None:
    result, _, _ = bash("kill -TERM $$")
    assert result == Result(Outcome.FAILED, "killed by signal SIGTERM", -signal.SIGTERM)


def test_large_output_is_collected_whole() -> None:
    result, log, _ = bash("head -c 300000 /dev/zero | tr '\\0' x")
    assert result.outcome is Outcome.SUCCESS
    assert log == "x" * 300000


# --- python -----------------------------------------------------------------------------


def _prints_and_returns() -> object:
    print("hello from the task")
    print("to stderr", file=sys.stderr)
    return {"rows": 7}


def _raises() -> object:
    print("about to fail")
    raise RuntimeError("boom in task")


def _exits_with(code: int | None) -> Callable[[], object]:
    def fn() -> object:
        sys.exit(code)

    return fn


def test_python_prints_and_return_value_are_logged() -> None:
    result, log, _ = run(spawn_python(_prints_and_returns))
    assert result == Result(Outcome.SUCCESS, "", 0)
    assert "hello from the task" in log
    assert "to stderr" in log
    assert "[haflow: returned {'rows': 7}]" in log


def test_python_exception_fails_with_its_traceback_in_the_log() -> None:
    result, log, _ = run(spawn_python(_raises))
    assert result == Result(Outcome.FAILED, "exited with code 1", 1)
    assert "about to fail" in log
    assert "Traceback (most recent call last)" in log
    assert "RuntimeError: boom in task" in log


def test_python_sys_exit_code_is_the_exit_code() -> None:
    result, _, _ = run(spawn_python(_exits_with(4)))
    assert result == Result(Outcome.FAILED, "exited with code 4", 4)


def test_python_bare_sys_exit_is_success() -> None:
    result, _, _ = run(spawn_python(_exits_with(None)))
    assert result.outcome is Outcome.SUCCESS


# --- timeout and cancellation ------------------------------------------------------------


def test_timeout_kills_the_child_quickly() -> None:
    result, _, elapsed = bash("echo started; sleep 30", timeout_s=0.3)
    assert result == Result(Outcome.TIMED_OUT, "execution timeout of 0.3 s exceeded", None)
    assert 0.3 <= elapsed < 5


def test_timeout_kills_the_whole_process_group() -> None:
    pid, fd = spawn_bash("sleep 30 & echo bg=$!; wait", ENV)
    try:
        result, log, elapsed = run((pid, fd), timeout_s=0.5)
        assert result.outcome is Outcome.TIMED_OUT
        assert elapsed < 5
        bg = int(log.split("bg=", 1)[1].split()[0])
        deadline = time.monotonic() + 2
        while alive(bg) and time.monotonic() < deadline:
            time.sleep(0.01)  # SIGKILL delivery is asynchronous
        assert not alive(bg)
    finally:
        kill_group(pid)


def test_on_tick_false_cancels_the_attempt() -> None:
    ticks: list[float] = []

    def on_tick() -> bool:
        ticks.append(time.monotonic())
        return len(ticks) < 3

    result, _, elapsed = bash("sleep 30", timeout_s=None, on_tick=on_tick)
    assert result == Result(Outcome.CANCELLED, "attempt cancelled", None)
    assert len(ticks) == 3
    assert elapsed < 5


def test_on_tick_is_called_while_the_child_runs() -> None:
    ticks: list[float] = []

    def on_tick() -> bool:
        ticks.append(time.monotonic())
        return True

    result, _, _ = bash("sleep 0.5", on_tick=on_tick)
    assert result.outcome is Outcome.SUCCESS
    assert len(ticks) >= 3


# --- pipes: early close, lingering grandchildren -----------------------------------------


def test_child_closing_its_output_early_is_still_waited_for() -> None:
    result, log, elapsed = bash("echo bye; exec >&- 2>&-; sleep 0.5; exit 4")
    assert result == Result(Outcome.FAILED, "exited with code 4", 4)
    assert "bye" in log
    assert elapsed >= 0.5


def test_closed_output_does_not_disable_the_timeout() -> None:
    result, _, elapsed = bash("exec >&- 2>&-; sleep 30", timeout_s=0.3)
    assert result.outcome is Outcome.TIMED_OUT
    assert elapsed < 5


def _floods_a_big_pipe() -> object:
    # A pipe enlarged past one read's worth still holds output when the child is already gone.
    fcntl.fcntl(1, fcntl.F_SETPIPE_SZ, 1 << 20)
    os.write(1, b"z" * 900_000)
    return None


def test_output_left_in_the_pipe_after_exit_is_collected() -> None:
    result, log, _ = run(spawn_python(_floods_a_big_pipe))
    assert result.outcome is Outcome.SUCCESS
    assert log == "z" * 900_000


def test_grandchild_holding_the_pipe_does_not_block() -> None:
    pid, fd = spawn_bash("sleep 5 & echo done", ENV)
    try:
        result, log, elapsed = run((pid, fd))
    finally:
        kill_group(pid)
    assert result == Result(Outcome.SUCCESS, "", 0)
    assert "done" in log
    assert elapsed < 2


# --- log cap ------------------------------------------------------------------------------


def test_log_sink_keeps_at_most_cap_bytes_and_notes_the_rest() -> None:
    sink = LogSink(10)
    sink.feed(b"abcdef")
    assert sink.take() == "abcdef"
    sink.feed(b"ghijkl")
    sink.feed(b"mnop")
    assert sink.take() == "ghij"
    assert sink.kept == 10
    sink.feed(b"qr")
    assert sink.take(final=True) == "\n[haflow: log truncated, 8 bytes over the cap dropped]\n"


def test_log_sink_under_the_cap_has_no_note() -> None:
    sink = LogSink(10)
    sink.feed(b"0123456789")
    assert sink.take(final=True) == "0123456789"


def test_log_cap_applies_to_a_real_child() -> None:
    result, log, _ = bash("head -c 5000 /dev/zero | tr '\\0' y", cap=1000)
    assert result.outcome is Outcome.SUCCESS
    body, note = log[:1000], log[1000:]
    assert body == "y" * 1000
    assert note == "\n[haflow: log truncated, 4000 bytes over the cap dropped]\n"


def test_a_child_whose_parent_is_already_gone_gets_the_death_signal_at_once() -> None:
    import os
    import signal

    from haflow.worker.process import set_parent_death_signal

    pid = os.fork()
    if pid == 0:  # the child pretends its parent was another, long dead process
        try:
            set_parent_death_signal(signal.SIGKILL, parent_pid=os.getppid() + 1_000_000)
            os._exit(0)  # not reached: the signal arrived
        finally:
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    pid = os.fork()
    if pid == 0:  # and with its real parent alive, nothing happens
        set_parent_death_signal(signal.SIGKILL, parent_pid=os.getppid())
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
