"""Warm DAG files (`haflow.worker.warm`): a file is imported once and its attempts forked from
it, each still in a process of its own; edits, broken files, hanging imports and a task that
kills its warm parent fall back or recover, and never take the caller down."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from haflow.metastore.records import ClaimedAttempt
from haflow.worker.code import CodeLocation
from haflow.worker.files import AttemptFiles, prepare
from haflow.worker.process import LogSink, Outcome, Result, supervise
from haflow.worker.warm import WarmFiles, _Warm

DAG = """
from datetime import datetime
from pathlib import Path
from haflow.dag import DAG, BashTask, PythonTask

Path({imports!r}).open("a").write("imported\\n")

def hello():
    import os
    print("hello", os.environ["HAFLOW_TASK_ID"], os.environ.get("SECRET_OF_WORKER"))
    return {value!r}

def mark():
    Path({imports!r} + ".ran").write_text("ran")

def kill_parent():
    import os
    os.kill(os.getppid(), 9)

with DAG("w", start_date=datetime(2026, 1, 1)):
    PythonTask("hello", python_callable=hello)
    PythonTask("kill_parent", python_callable=kill_parent)
    PythonTask("mark", python_callable=mark)
    BashTask("bash", bash_command="echo bash $HAFLOW_DAG_ID $HAFLOW_WORKER_PID")
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "dags").mkdir()
    _write(tmp_path, "one")
    return tmp_path / "dags"


def _write(tmp_path: Path, value: str) -> None:
    path = tmp_path / "dags" / "w.py"
    path.write_text(DAG.format(imports=str(tmp_path / "imports.txt"), value=value))
    os.utime(path, ns=(time.time_ns(), time.time_ns()))


@pytest.fixture
def warm(folder: Path) -> Iterator[WarmFiles]:
    os.environ["SECRET_OF_WORKER"] = "s3cr3t"
    files = WarmFiles(("PATH",), size=2, import_timeout_s=5.0)
    yield files
    files.close()
    del os.environ["SECRET_OF_WORKER"]


def scratch(folder: Path) -> AttemptFiles:
    """An attempt's own files, as the runner makes them."""
    return prepare(folder / "attempts", 1, 1, {})


def attempt(folder: Path, task_id: str) -> ClaimedAttempt:
    return ClaimedAttempt(1, 1, "w", "r1", task_id, str(folder / "w.py"), None, {}, None, None)


def run(warm: WarmFiles, folder: Path, task_id: str) -> tuple[Result, str] | None:
    c = attempt(folder, task_id)
    child = warm.start(
        CodeLocation(str(folder / "w.py"), str(folder)),
        c,
        "w1",
        lambda: True,
        files=scratch(folder),
    )
    if child is None:
        return None
    sink = LogSink(1 << 20)
    result = supervise(
        child.pid,
        child.out_fd,
        sink,
        timeout_s=10,
        tick_every_s=0.05,
        on_tick=lambda: True,
        reap=child.reap,
        pidfd=child.pidfd,
    )
    return result, sink.take(final=True)


def imports(folder: Path) -> int:
    return (folder.parent / "imports.txt").read_text().count("imported")


def test_a_file_is_imported_once_for_many_attempts(warm: WarmFiles, folder: Path) -> None:
    for _ in range(3):
        ran = run(warm, folder, "hello")
        assert ran is not None
        result, log = ran
        assert result.outcome is Outcome.SUCCESS, log
        assert "hello hello None" in log  # the task's environment: the worker's secret is gone
        assert "[haflow: returned 'one']" in log
    bash = run(warm, folder, "bash")
    assert bash is not None and bash[0].outcome is Outcome.SUCCESS
    assert f"bash w {os.getpid()}" in bash[1]
    assert imports(folder) == 1


def test_an_edited_file_is_imported_again(warm: WarmFiles, folder: Path) -> None:
    assert run(warm, folder, "hello") is not None
    _write(folder.parent, "two")
    ran = run(warm, folder, "hello")
    assert ran is not None and "[haflow: returned 'two']" in ran[1]
    assert imports(folder) == 2


def test_a_task_that_kills_its_warm_parent_fails_alone(warm: WarmFiles, folder: Path) -> None:
    ran = run(warm, folder, "kill_parent")
    assert ran is not None
    assert ran[0].outcome is Outcome.FAILED and ran[0].reason == "killed by signal SIGKILL"
    again = run(warm, folder, "hello")  # a new warm process serves the next attempt
    assert again is not None and again[0].outcome is Outcome.SUCCESS
    assert imports(folder) == 2


def test_a_child_forked_but_not_yet_watched_never_starts_its_attempt(
    warm: WarmFiles, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its warm parent dies after the fork, before the worker holds the child's pidfd: the
    worker runs the attempt cold, so the forked child must not have begun it (CI saw a task
    that kills its parent run in both)."""
    answer = _Warm._answer

    def then_die(self: _Warm, timeout_s: float) -> object:
        got = answer(self, timeout_s)
        if got is not None and got[0] == "pid":
            time.sleep(0.3)  # time enough for a child that did not wait to run its task
            self.proc.kill()
            self.proc.wait()
        return got

    monkeypatch.setattr(_Warm, "_answer", then_die)
    assert run(warm, folder, "mark") is None  # the caller runs it cold
    time.sleep(0.3)
    assert not (folder.parent / "imports.txt.ran").exists()
    monkeypatch.undo()
    ran = run(warm, folder, "mark")  # and a new warm process serves it
    assert ran is not None and ran[0].outcome is Outcome.SUCCESS, ran
    assert (folder.parent / "imports.txt.ran").exists()


def test_a_broken_file_runs_cold_until_it_changes(warm: WarmFiles, folder: Path) -> None:
    path = folder / "w.py"
    path.write_text("raise RuntimeError('broken on purpose')\n")
    assert run(warm, folder, "hello") is None
    assert run(warm, folder, "hello") is None  # not tried warm again while unchanged
    _write(folder.parent, "fixed")
    ran = run(warm, folder, "hello")
    assert ran is not None and "[haflow: returned 'fixed']" in ran[1]


def test_a_hanging_import_runs_cold_after_the_import_timeout(folder: Path) -> None:
    (folder / "w.py").write_text("import time\ntime.sleep(60)\n")
    files = WarmFiles(("PATH",), size=2, import_timeout_s=0.5)
    try:
        t0 = time.monotonic()
        assert run(files, folder, "hello") is None
        assert time.monotonic() - t0 < 3
    finally:
        files.close()


def test_a_stop_while_importing_gives_up_at_once(folder: Path) -> None:
    (folder / "w.py").write_text("import time\ntime.sleep(60)\n")
    files = WarmFiles(("PATH",), size=2, import_timeout_s=30)
    stop_at = time.monotonic() + 0.3
    try:
        c = attempt(folder, "hello")
        assert (
            files.start(
                CodeLocation(str(folder / "w.py"), str(folder)),
                c,
                "w1",
                lambda: time.monotonic() < stop_at,
                files=scratch(folder),
            )
            is None
        )
        assert time.monotonic() - stop_at < 1
    finally:
        files.close()


def test_warm_processes_are_capped_and_closed(warm: WarmFiles, folder: Path) -> None:
    for name in ("a", "b", "c"):
        (folder / f"{name}.py").write_text((folder / "w.py").read_text())
        c = ClaimedAttempt(1, 1, "w", "r1", "hello", str(folder / f"{name}.py"), None, {})
        where = CodeLocation(str(folder / f"{name}.py"), str(folder))
        child = warm.start(where, c, "w1", lambda: True, files=scratch(folder))
        assert child is not None
        supervise(
            child.pid,
            child.out_fd,
            LogSink(1024),
            timeout_s=10,
            tick_every_s=0.05,
            on_tick=lambda: True,
            reap=child.reap,
            pidfd=child.pidfd,
        )
    pids = [w.pid for w in warm._warm.values()]
    assert len(pids) == 2
    warm.close()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_quick_attempts_one_after_another_each_get_their_own_exit(
    warm: WarmFiles, folder: Path
) -> None:
    """A no-op child may end before the runner watches it: its warm parent waits to reap it
    until the runner holds a pidfd, so the pid is never another's (a race seen in a fan-out)."""
    for _ in range(40):
        ran = run(warm, folder, "hello")
        assert ran is not None and ran[0].outcome is Outcome.SUCCESS, ran
    assert imports(folder) == 1
