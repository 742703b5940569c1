"""Loading a DAGs folder: import errors with their lines, isolation of broken files, caching."""

from __future__ import annotations

import os
import pickle
import textwrap
from pathlib import Path

import pytest

from haflow.dag import DagCache, PythonTask, load_dag_file, load_dag_folder
from haflow.dag.dag import current_dag
from haflow.errors import ConfigError, DagNotFound

GOOD = """\
from datetime import datetime
from haflow.dag import DAG, BashTask

with DAG("{dag_id}", schedule="@daily", start_date=datetime(2024, 1, 1)) as dag:
    BashTask("a", "echo {dag_id}") >> BashTask("b", "true")
"""


def write(folder: Path, name: str, source: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return path


def bump_mtime(path: Path) -> None:
    stat = path.stat()
    os.utime(path, (stat.st_atime, stat.st_mtime + 10))


def test_loads_dags_and_records_mtimes(tmp_path: Path) -> None:
    path = write(tmp_path, "one.py", GOOD.format(dag_id="one"))
    bag = load_dag_folder(tmp_path)
    assert set(bag.dags) == {"one"}
    assert bag.import_errors == []
    assert bag.files == {str(path): path.stat().st_mtime}
    dag = bag.dags["one"]
    assert dag.fileloc == str(path)
    assert dag.topological_order() == ["a", "b"]


def test_skips_private_hidden_and_cache_files_but_recurses(tmp_path: Path) -> None:
    write(tmp_path, "sub/deep.py", GOOD.format(dag_id="deep"))
    write(tmp_path, "_helper.py", GOOD.format(dag_id="helper"))
    write(tmp_path, ".hidden.py", GOOD.format(dag_id="hidden"))
    write(tmp_path, "__pycache__/cached.py", GOOD.format(dag_id="cached"))
    write(tmp_path, "_private/inside.py", GOOD.format(dag_id="inside"))
    write(tmp_path, "notes.txt", "not python")
    assert set(load_dag_folder(tmp_path).dags) == {"deep"}


def test_missing_folder_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_dag_folder(tmp_path / "nope")


def test_syntax_error_is_recorded_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.py", "x = 1\ny = 2\ndef oops(:\n    pass\n")
    dags, error = load_dag_file(path)
    assert dags == []
    assert error is not None
    assert error.file == str(path)
    assert error.line == 3
    assert error.message.startswith("SyntaxError: ")


def test_runtime_error_is_recorded_with_the_line_in_the_dag_file(tmp_path: Path) -> None:
    source = """\
        from haflow.dag import DAG

        def helper():
            raise RuntimeError("kaput")

        with DAG("d"):
            helper()
    """
    path = write(tmp_path, "boom.py", source)
    _, error = load_dag_file(path)
    assert error is not None
    # The deepest frame inside boom.py: the raise inside helper().
    assert error.line == 4
    assert error.message == "RuntimeError: kaput"
    assert current_dag() is None  # the failed file left no DAG context open


def test_dag_definition_error_names_the_line(tmp_path: Path) -> None:
    source = """\
        from haflow.dag import DAG, BashTask

        with DAG("d"):
            BashTask("a", "true")
            BashTask("a", "true")
    """
    _, error = load_dag_file(write(tmp_path, "dupe.py", source))
    assert error is not None
    assert error.line == 5
    assert error.message.startswith("DagDefinitionError: ")
    assert "'a'" in error.message


def test_cycle_found_by_validate_is_an_import_error(tmp_path: Path) -> None:
    source = """\
        from haflow.dag import DAG, BashTask

        with DAG("cyc") as dag:
            a, b = BashTask("a", "true"), BashTask("b", "true")
            a >> b >> a
    """
    path = write(tmp_path, "cyc.py", source)
    bag = load_dag_folder(tmp_path)
    assert bag.dags == {}
    [error] = bag.import_errors
    assert error.file == str(path)
    assert "a -> b -> a" in error.message


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ("import no_such_module_here", "ModuleNotFoundError"),
        ("raise SystemExit(3)", "SystemExit"),
        ("1 / 0", "ZeroDivisionError"),
    ],
)
def test_any_exception_is_recorded(tmp_path: Path, body: str, kind: str) -> None:
    _, error = load_dag_file(write(tmp_path, "bad.py", f"x = 1\n{body}\n"))
    assert error is not None
    assert error.line == 2
    assert error.message.startswith(f"{kind}: ")


def test_a_broken_file_does_not_stop_the_others(tmp_path: Path) -> None:
    write(tmp_path, "a_good.py", GOOD.format(dag_id="first"))
    write(tmp_path, "b_bad.py", "raise ValueError('nope')\n")
    write(tmp_path, "c_good.py", GOOD.format(dag_id="second"))
    bag = load_dag_folder(tmp_path)
    assert set(bag.dags) == {"first", "second"}
    [error] = bag.import_errors
    assert error.file == str(tmp_path / "b_bad.py")
    assert error.message == "ValueError: nope"
    assert len(bag.files) == 3


def test_duplicate_dag_id_across_files_blames_the_second(tmp_path: Path) -> None:
    first = write(tmp_path, "a.py", GOOD.format(dag_id="same"))
    second = write(tmp_path, "b.py", GOOD.format(dag_id="same"))
    bag = load_dag_folder(tmp_path)
    assert bag.dags["same"].fileloc == str(first)
    [error] = bag.import_errors
    assert error.file == str(second)
    assert str(first) in error.message
    assert str(second) in error.message


def test_module_is_importable_for_dataclasses_and_pickle(tmp_path: Path) -> None:
    source = """\
        from dataclasses import dataclass
        from haflow.dag import DAG, PythonTask

        @dataclass
        class Point:
            x: int

        def make(x):
            return Point(x)

        with DAG("d") as dag:
            PythonTask("t", make, op_kwargs={"x": 4})
    """
    [dag], error = load_dag_file(write(tmp_path, "dc.py", source))
    assert error is None
    t = dag.task("t")
    assert isinstance(t, PythonTask)
    point = t.run_callable()
    assert pickle.loads(pickle.dumps(point)) == point


def test_no_bytecode_is_written_into_the_dags_folder(tmp_path: Path) -> None:
    write(tmp_path, "one.py", GOOD.format(dag_id="one"))
    load_dag_folder(tmp_path)
    assert not (tmp_path / "__pycache__").exists()


def test_cache_reloads_a_file_only_when_its_mtime_changes(tmp_path: Path) -> None:
    path = write(tmp_path, "d.py", GOOD.format(dag_id="d"))
    cache = DagCache(tmp_path)
    first = cache.get("d")
    assert cache.get("d") is first

    path.write_text(GOOD.format(dag_id="d").replace('"true"', '"false"'))
    bump_mtime(path)
    second = cache.get("d")
    assert second is not first
    assert second.task("b").bash_command == "false"  # type: ignore[attr-defined]


def test_cache_refresh_keeps_unchanged_files(tmp_path: Path) -> None:
    write(tmp_path, "a.py", GOOD.format(dag_id="a"))
    changed = write(tmp_path, "b.py", GOOD.format(dag_id="b"))
    cache = DagCache(tmp_path)
    before = cache.refresh()
    bump_mtime(changed)
    write(tmp_path, "c.py", GOOD.format(dag_id="c"))
    after = cache.refresh()
    assert after.dags["a"] is before.dags["a"]
    assert after.dags["b"] is not before.dags["b"]
    assert set(after.dags) == {"a", "b", "c"}


def test_cache_forgets_removed_files_and_reports_unknown_dags(tmp_path: Path) -> None:
    path = write(tmp_path, "a.py", GOOD.format(dag_id="a"))
    cache = DagCache(tmp_path)
    assert cache.get("a").dag_id == "a"
    path.unlink()
    with pytest.raises(DagNotFound, match="'a'"):
        cache.get("a")
    assert cache.refresh().files == {}


def test_cache_finds_dags_of_files_added_later(tmp_path: Path) -> None:
    cache = DagCache(tmp_path)
    assert cache.refresh().dags == {}
    write(tmp_path, "late.py", GOOD.format(dag_id="late"))
    assert cache.get("late").dag_id == "late"


def test_cache_keeps_import_errors_of_unchanged_files(tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.py", "raise ValueError('x')\n")
    cache = DagCache(tmp_path)
    assert len(cache.refresh().import_errors) == 1
    assert len(cache.refresh().import_errors) == 1
    bad.write_text(GOOD.format(dag_id="fixed"))
    bump_mtime(bad)
    bag = cache.refresh()
    assert bag.import_errors == []
    assert set(bag.dags) == {"fixed"}


def test_dag_file_can_import_a_helper_module_beside_it(tmp_path: Path) -> None:
    (tmp_path / "_helpers_for_haflow_test.py").write_text("GREETING = 'hi'\n")
    (tmp_path / "uses_helper.py").write_text(
        "from datetime import datetime\n"
        "from haflow.dag import DAG, BashTask\n"
        "from _helpers_for_haflow_test import GREETING\n"
        "with DAG('uses_helper', start_date=datetime(2026, 1, 1)):\n"
        "    BashTask('t', bash_command='echo ' + GREETING)\n"
    )
    bag = DagCache(tmp_path).refresh()
    assert bag.import_errors == []
    assert list(bag.dags) == ["uses_helper"]


@pytest.mark.parametrize(
    ("offending", "value"),
    [
        ('DAG("d", schedule="@daily", start_date=START, timezone="Mars/Base")', "'Mars/Base'"),
        ('DAG("d", start_date=START, end_date=datetime(2025, 1, 1))', "2025, 1, 1"),
        ('FileSensor("s", filepath="/x", mode="later")', "'later'"),
        ('FileSensor("s", filepath="in/x")', "'in/x'"),
        ('BashTask("b", "true", depends_on_past="yes")', "'yes'"),
        ('ExternalRunSensor("e", "other", allowed_states=["failed"])', "['failed']"),
        ("add(1, 2, 3)", "3 positional"),
    ],
)
def test_each_authoring_error_names_the_dag_file_line_and_value(
    tmp_path: Path, offending: str, value: str
) -> None:
    """The errors of results, time zones, sensors and depends_on_past, as the scheduler lists
    them: the DAG, the file, the offending line and value."""
    source = f"""\
        from datetime import datetime
        from haflow import DAG, BashTask, ExternalRunSensor, FileSensor, task
        START = datetime(2026, 1, 1)

        @task
        def add(x):
            return x

        with DAG("d", start_date=START) if "DAG(" not in {offending!r} else {offending}:
            {offending if "DAG(" not in offending else "pass"}
    """
    path = write(tmp_path, "bad.py", source)
    _, error = load_dag_file(path)
    assert error is not None
    assert error.file == str(path) and error.line == (9 if "DAG(" in offending else 10)
    assert error.message.startswith("DagDefinitionError: ")
    assert value in error.message
    assert f"DAG 'd' in {path}" in error.message
