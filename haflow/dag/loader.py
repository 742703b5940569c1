"""Loading the DAGs folder: import each file, collect its DAGs, record what fails.

One broken file never stops the others: any exception raised while importing or validating a
file becomes an ImportErrorRecord naming the file and, when known, the line inside it. A DAG id
belongs to the first file (in path order) that defines it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import threading
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from haflow.dag.dag import DAG, collect_created
from haflow.errors import ConfigError, DagDefinitionError, DagNotFound


@dataclass(frozen=True)
class ImportErrorRecord:
    """Why a DAG file yielded no DAG (or lost one to a duplicate id); `line` is in `file`."""

    file: str
    line: int | None
    message: str


@dataclass
class DagBag:
    """The DAGs of a folder, the errors met loading it, and each file's mtime when loaded."""

    dags: dict[str, DAG] = field(default_factory=dict)
    import_errors: list[ImportErrorRecord] = field(default_factory=list)
    files: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class _FileResult:
    mtime: float
    dags: tuple[DAG, ...]
    error: ImportErrorRecord | None


def find_dag_files(folder: Path) -> list[Path]:
    """Every `*.py` under `folder`, skipping names starting with `_` or `.` at any depth."""
    root = Path(folder)
    if not root.is_dir():
        raise ConfigError(f"DAGs folder {root} does not exist or is not a directory")
    found = []
    for path in root.rglob("*.py"):
        parts = path.relative_to(root).parts
        if not any(part.startswith(("_", ".")) for part in parts):
            found.append(path)
    return sorted(found, key=str)


def module_name_for(path: str) -> str:
    """The sys.modules name a DAG file is imported under; stable for a given path."""
    return "haflow_dag_" + hashlib.sha1(path.encode("utf-8")).hexdigest()[:16]


def _import_file(path: str, source: bytes | None = None) -> ModuleType:
    name = module_name_for(path)
    spec = importlib.util.spec_from_loader(name, loader=None, origin=path)
    if spec is None:
        raise ImportError(f"cannot build an import spec for {path}")
    module = importlib.util.module_from_spec(spec)
    module.__file__ = path
    # Compiled from source rather than through the import system: no .pyc is written into the
    # DAGs folder, and a stale .pyc (same size, same second) can never hide an edit.
    code = compile(Path(path).read_bytes() if source is None else source, path, "exec")
    sys.modules[name] = module  # dataclasses and pickle look the module up while it runs
    try:
        exec(code, module.__dict__)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _error_line(exc: BaseException, path: str) -> int | None:
    if isinstance(exc, SyntaxError) and exc.filename == path:
        return exc.lineno
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == path]
    return frames[-1].lineno if frames else None


def _collect_dags(module: ModuleType, created: list[DAG]) -> list[DAG]:
    seen: dict[int, DAG] = {id(d): d for d in created}
    for value in vars(module).values():
        if isinstance(value, DAG):
            seen.setdefault(id(value), value)
    dags = list(seen.values())
    for dag in dags:
        dag.validate()
    ids = [d.dag_id for d in dags]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise DagDefinitionError(f"DAG ids {dupes} are defined more than once in the file")
    return dags


def load_dag_file(
    path: str | os.PathLike[str], source: bytes | None = None, as_path: str | None = None
) -> tuple[list[DAG], ImportErrorRecord | None]:
    """Import one DAG file (from `source`, its bytes read by the caller, if given); return its
    validated DAGs, or none and the error that stopped it. `as_path`: the file is imported as
    if it were there (its `__file__`, tracebacks, `DAG.fileloc`): a code version unpacked in
    the cache runs as the DAGs folder's file it was parsed from, so paths taken relative to
    `__file__` stay what they were."""
    if as_path is not None and source is None:
        source = Path(path).read_bytes()
    where = os.path.abspath(as_path if as_path is not None else path)

    try:
        module, created = collect_created(lambda: _import_file(where, source))
        return _collect_dags(module, created), None
    except (Exception, SystemExit) as exc:  # a DAG file may raise anything; even exit()
        message = f"{type(exc).__name__}: {exc}"
        return [], ImportErrorRecord(where, _error_line(exc, where), message)


def _load_result(path: str) -> _FileResult:
    try:
        mtime = os.stat(path).st_mtime  # read before importing: an edit during it shows next time
    except OSError as exc:
        return _FileResult(0.0, (), ImportErrorRecord(path, None, f"{type(exc).__name__}: {exc}"))
    dags, error = load_dag_file(path)
    return _FileResult(mtime, tuple(dags), error)


def _assemble(results: dict[str, _FileResult]) -> DagBag:
    bag = DagBag()
    owners: dict[str, str] = {}
    for path in sorted(results):
        result = results[path]
        bag.files[path] = result.mtime
        if result.error is not None:
            bag.import_errors.append(result.error)
        for dag in result.dags:
            first = owners.setdefault(dag.dag_id, path)
            if first == path:
                bag.dags[dag.dag_id] = dag
                continue
            message = (
                f"DagDefinitionError: DAG id {dag.dag_id!r} is defined in both {first} and "
                f"{path}; the one in {first} is kept, rename the other"
            )
            bag.import_errors.append(ImportErrorRecord(path, None, message))
    return bag


def importable(folder: Path | str, *, first: bool = False) -> None:
    """Let DAG files import helper modules kept beside them (as Airflow does: last on the
    import path; `first` for an unpacked code version, `haflow.dag.bundle`)."""
    path = os.path.abspath(folder)
    if path not in sys.path:
        if first:
            sys.path.insert(0, path)
        else:
            sys.path.append(path)


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


def load_dag_folder(folder: Path) -> DagBag:
    """Import every DAG file of `folder` afresh."""
    importable(folder)
    files = [os.path.abspath(p) for p in find_dag_files(folder)]
    return _assemble({path: _load_result(path) for path in files})


class DagCache:
    """The DAGs of a folder, re-importing a file only when its mtime changed.

    Thread-safe; imports in this process. For interactive tools (`haflow dags test`, `tasks
    test`, `tasks list`); daemons never import DAG files in their own process: schedulers parse
    through `haflow.scheduler.parsing`, workers load one file in the attempt's child.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        importable(self.folder)
        self._results: dict[str, _FileResult] = {}
        self._bag: DagBag | None = None
        self._lock = threading.RLock()

    def refresh(self) -> DagBag:
        """Rescan the folder: import new and changed files, forget removed ones."""
        with self._lock:
            current = {os.path.abspath(p) for p in find_dag_files(self.folder)}
            for gone in self._results.keys() - current:
                del self._results[gone]
            for path in sorted(current):
                self._reload_if_changed(path)
            self._bag = _assemble(self._results)
            return self._bag

    def get(self, dag_id: str) -> DAG:
        """The DAG `dag_id`, from a re-imported file if its file changed since last loaded."""
        with self._lock:
            bag = self._bag if self._bag is not None else self.refresh()
            owner = min((p for p, r in self._results.items() if _defines(r, dag_id)), default=None)
            if owner is not None and self._reload_if_changed(owner):
                bag = self._bag = _assemble(self._results)
            if dag_id not in bag.dags:
                bag = self.refresh()  # maybe a file added since the last scan
            if dag_id not in bag.dags:
                raise DagNotFound(f"DAG {dag_id!r} is not defined in DAGs folder {self.folder}")
            return bag.dags[dag_id]

    def _reload_if_changed(self, path: str) -> bool:
        try:
            mtime = os.stat(path).st_mtime
        except OSError:
            return self._results.pop(path, None) is not None
        known = self._results.get(path)
        if known is not None and known.mtime == mtime:
            return False
        self._results[path] = _load_result(path)
        return True


def _defines(result: _FileResult, dag_id: str) -> bool:
    return any(d.dag_id == dag_id for d in result.dags)
