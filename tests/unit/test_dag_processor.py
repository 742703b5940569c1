"""The DAG file processor: every file parsed in a child process of its own, so a file that
hangs, exits, crashes the interpreter, loops, allocates without end or imports a missing module
becomes an import error naming its cause, and the others parse as if it were not there."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from haflow.scheduler.dags import DagRegistry
from haflow.scheduler.parsing import DagFileProcessor

GOOD = """
from datetime import datetime
from haflow.dag import DAG, BashTask

with DAG("{dag_id}", start_date=datetime(2026, 1, 1), schedule="*/5 * * * *"):
    BashTask("a", bash_command="true") >> BashTask("b", bash_command="true")
"""

POISON = {
    "slow.py": "import time\ntime.sleep(100)\n",
    "exits.py": "import os\nos._exit(3)\n",
    "segfault.py": "import ctypes\nctypes.string_at(0)\n",
    "spins.py": "while True:\n    pass\n",
    "hog.py": "blocks = []\nwhile True:\n    blocks.append(bytearray(64 << 20))\n",
    "missing.py": "import haflow_no_such_module\n",
}

CAUSES = {
    "slow.py": "import timed out after 4 s ([core] dag_file_import_timeout)",
    "exits.py": "exited with code 3 before reporting",
    "segfault.py": "died of SIGSEGV (the interpreter crashed)",
    "spins.py": "import timed out after 4 s",
    "hog.py": "MemoryError (over the 256 MB a parse may use: [core] dag_file_memory_limit)",
    "missing.py": "ModuleNotFoundError: No module named 'haflow_no_such_module'",
}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "good.py").write_text(GOOD.format(dag_id="good"))
    return dags


@pytest.fixture
def processor(folder: Path) -> Iterator[DagFileProcessor]:
    p = DagFileProcessor(folder, interval_s=0.2, timeout_s=4.0, memory_limit_mb=256, processes=2)
    p.start()
    try:
        yield p
    finally:
        p.stop()


def _registry(p: DagFileProcessor) -> DagRegistry:
    assert p.wait_parsed(60.0), "the folder was not parsed within 60 s"
    r = DagRegistry(p)
    r.refresh()
    return r


def test_each_bad_file_becomes_an_import_error_with_its_cause(
    folder: Path, processor: DagFileProcessor
) -> None:
    for name, source in POISON.items():
        (folder / name).write_text(source)
    time.sleep(0.3)  # the next scan lists them
    started = time.monotonic()
    registry = _registry(processor)
    took = time.monotonic() - started

    assert set(registry.dags) == {"good"}
    errors = {Path(e.file).name: e.message for e in registry.import_errors}
    assert set(errors) == set(POISON)
    for name, cause in CAUSES.items():
        assert cause in errors[name], f"{name}: {errors[name]}"
    # six files, two at a time, the two slow ones killed at 4 s each
    assert took < 30.0


def test_a_file_that_breaks_keeps_its_last_good_dags_until_fixed(
    folder: Path, processor: DagFileProcessor
) -> None:
    registry = _registry(processor)
    assert set(registry.dags) == {"good"}
    good = folder / "good.py"
    generation = processor.generation

    good.write_text("import time\ntime.sleep(100)\n" + GOOD.format(dag_id="good"))
    _touch_later(good)
    _wait_for_generation(processor, generation)
    registry = _registry(processor)
    assert set(registry.dags) == {"good"}  # still scheduled from its last good parse
    assert [Path(e.file).name for e in registry.import_errors] == ["good.py"]

    generation = processor.generation
    good.write_text(GOOD.format(dag_id="renamed"))
    _touch_later(good)
    _wait_for_generation(processor, generation)
    registry = _registry(processor)
    assert set(registry.dags) == {"renamed"} and registry.import_errors == []


def test_files_not_parsed_yet_are_pending_and_removed_files_are_forgotten(folder: Path) -> None:
    (folder / "slow_but_fine.py").write_text(
        "import time\ntime.sleep(1.5)\n" + GOOD.format(dag_id="late")
    )
    p = DagFileProcessor(folder, interval_s=0.2, timeout_s=10.0, processes=1)
    p.start()
    try:
        early = DagRegistry(p)
        early.refresh()  # at once: the listing is known, nothing parsed yet
        assert {Path(f).name for f in early.pending} == {"good.py", "slow_but_fine.py"}
        registry = _registry(p)
        assert set(registry.dags) == {"good", "late"} and registry.pending == ()

        (folder / "slow_but_fine.py").unlink()
        deadline = time.monotonic() + 10
        while "late" in registry.dags and time.monotonic() < deadline:
            time.sleep(0.1)
            registry.refresh()
        assert set(registry.dags) == {"good"}
    finally:
        p.stop()


def test_a_duplicate_dag_id_is_kept_in_the_first_file_only(folder: Path) -> None:
    (folder / "z_copy.py").write_text(GOOD.format(dag_id="good"))
    p = DagFileProcessor(folder, interval_s=0.2, timeout_s=10.0)
    p.start()
    try:
        registry = _registry(p)
    finally:
        p.stop()
    assert registry.dags["good"].record.fileloc.endswith("good.py")
    assert [Path(e.file).name for e in registry.import_errors] == ["z_copy.py"]
    assert "defined in both" in registry.import_errors[0].message


def test_the_parse_carries_what_the_scheduler_needs(folder: Path) -> None:
    p = DagFileProcessor(folder, interval_s=0.2, timeout_s=10.0)
    p.start()
    try:
        dag = _registry(p).dags["good"]
    finally:
        p.stop()
    assert dag.record.schedule == "*/5 * * * *"
    assert dag.schedule is not None and dag.schedule.expression == "*/5 * * * *"
    assert dag.tasks["b"].upstream == frozenset({"a"})
    assert [d.task_id for d in dag.defs] == ["a", "b"]


def _touch_later(path: Path) -> None:
    """Make sure the mtime differs from the last parse's (coarse filesystem clocks)."""
    st = path.stat()
    os.utime(path, (st.st_atime, st.st_mtime + 2))


def _wait_for_generation(p: DagFileProcessor, old: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while p.generation == old:
        assert time.monotonic() < deadline, "the processor saw no change"
        time.sleep(0.05)


def test_a_processor_that_keeps_failing_gives_up_and_says_so(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not a DAG file's failure but the processor's own (say the fork server cannot start):
    it retries, then gives up, so that its scheduler stops (healthy() is False)."""
    from haflow.scheduler import parsing

    monkeypatch.setattr(parsing, "MAX_FAILURES", 2)
    p = DagFileProcessor(folder, interval_s=0.2, timeout_s=10.0)

    def broken() -> None:
        raise OSError("cannot start the fork server")

    monkeypatch.setattr(p, "_launch", broken)
    p.start()
    try:
        deadline = time.monotonic() + 10
        while p.healthy() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not p.healthy()
    finally:
        p.stop()


def test_many_good_files_parse_without_a_single_false_error(folder: Path) -> None:
    """A child that sends its result and exits at once must never be taken for one that died
    (the processor once checked the pipe before the exit: 1 good file in 1,000 came back as
    'exited with code 0 before reporting' in benchmarks/parse.py)."""
    for n in range(150):
        (folder / f"many_{n:03d}.py").write_text(GOOD.format(dag_id=f"many_{n:03d}"))
    p = DagFileProcessor(folder, interval_s=0.2, timeout_s=30.0, processes=2)
    p.start()
    try:
        registry = _registry(p)
    finally:
        p.stop()
    assert registry.import_errors == []
    assert len(registry.dags) == 151


def test_the_registry_notes_dags_that_appear_in_or_vanish_from_the_folder(
    folder: Path, processor: DagFileProcessor
) -> None:
    (folder / "b.py").write_text(GOOD.format(dag_id="b"))
    time.sleep(0.3)
    registry = _registry(processor)
    assert registry.presence().appeared == frozenset()  # the first look sees no change
    (folder / "b.py").unlink()
    (folder / "c.py").write_text(GOOD.format(dag_id="c"))
    deadline = time.monotonic() + 30
    while set(registry.dags) != {"good", "c"} and time.monotonic() < deadline:
        time.sleep(0.1)
        registry.refresh()
    p = registry.presence()
    assert (p.appeared, p.vanished) == (frozenset({"c"}), frozenset({"b"}))
    registry.synced()
    assert registry.presence().appeared == registry.presence().vanished == frozenset()


def test_a_version_from_the_metastore_is_parsed_and_planned(
    tmp_path: Path, folder: Path, processor: DagFileProcessor
) -> None:
    """A version this master's folder does not hold: fetched, unpacked, parsed; its DAG is
    planned with that version's tasks (here v2 adds a task the folder's file lacks)."""
    from haflow.dag.bundle import Bundle, cache_folder
    from haflow.metastore.records import DagCode, DagFlags

    v2 = GOOD.format(dag_id="good") + '    BashTask("c", bash_command="true")\n'
    b = Bundle("good.py", (("good.py", v2.encode()),))
    stored = DagCode(b.hash, b.entry, b.size, b.pack())
    fetched: list[str] = []

    def fetch(h: str) -> DagCode:
        fetched.append(h)
        return stored

    assert processor.wait_parsed(60.0)
    cache = cache_folder(tmp_path / "cache")
    registry = DagRegistry(processor, fetch_code=fetch, cache=cache)
    registry.refresh()
    row = {"good": DagFlags("good", False, None, b.hash)}
    assert registry.specs(row) == {}  # not parsed here yet: asked for
    deadline = time.monotonic() + 30
    while not registry.specs(row) and time.monotonic() < deadline:
        time.sleep(0.1)
        if registry.changed():
            registry.refresh()
    spec = registry.specs(row)["good"]
    assert sorted(spec.tasks) == ["a", "b", "c"] and spec.code_hash == b.hash
    assert sorted(registry.dags["good"].tasks) == ["a", "b"]  # the folder's own, unchanged
    assert sorted(t.task_id for t in registry.task_defs()["good"]) == ["a", "b", "c"]
    assert fetched == [b.hash]  # fetched once; unpacked in the cache since
    assert (cache / b.hash / "good.py").read_text() == v2
