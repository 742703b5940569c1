"""A DAG file's code as one immutable version: the file and the helper modules it imports from
the DAGs folder, keyed by the hash of their contents.

The parse that finds a DAG makes its bundle (`collect`); the metastore keeps it by hash
(`dag_code`), every run records the hash its DAG had when the run was created, and a worker
runs an attempt from its run's bundle, unpacked once per node into a cache folder keyed by the
hash (`materialize`), never from its own DAGs folder. Same bytes, same hash, on every node.

What a bundle holds: the DAG file and every module imported *while the file was parsed* whose
file lies under the DAGs folder (a package's `__init__.py` included). A module a task imports
only when it runs, and files that are not modules (SQL, YAML beside the DAG), are not in it.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import io
import os
import shutil
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from haflow.errors import HaflowError

_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed: the packed bytes depend on the contents alone
_COMPLETE = ".haflow-complete"


class BundleError(HaflowError):
    """A bundle that cannot be made (too large) or used (corrupt, unsafe cache)."""


@dataclass(frozen=True)
class Bundle:
    """`entry` is the DAG file's path in the bundle; `files` maps each path (relative, with
    `/`) to its bytes, sorted by path."""

    entry: str
    files: tuple[tuple[str, bytes], ...]

    @property
    def hash(self) -> str:
        """sha256 over the entry's name and each file's name and bytes, lengths prefixed."""
        h = hashlib.sha256()
        for part in (self.entry.encode(), *(p for f in self.files for p in _named(f))):
            h.update(len(part).to_bytes(8, "big"))
            h.update(part)
        return h.hexdigest()

    @property
    def size(self) -> int:
        """The bytes of all its files, unpacked."""
        return sum(len(data) for _, data in self.files)

    def source(self, path: str | None = None) -> str:
        """The text of file `path` (the DAG file by default)."""
        wanted = path or self.entry
        for name, data in self.files:
            if name == wanted:
                return data.decode("utf-8", errors="replace")
        raise KeyError(wanted)

    def pack(self) -> bytes:
        """A zip of the files, byte-for-byte the same for the same contents."""
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
            z.comment = self.entry.encode()
            for name, data in self.files:
                z.writestr(zipfile.ZipInfo(name, _ZIP_TIME), data)
        return out.getvalue()

    @classmethod
    def unpack(cls, data: bytes, expected_hash: str | None = None) -> Bundle:
        """The bundle packed in `data`; one whose contents do not match `expected_hash` (or
        that is not a bundle at all) raises BundleError."""
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                entry = z.comment.decode()
                files = tuple(sorted((i.filename, z.read(i)) for i in z.infolist()))
        except (zipfile.BadZipFile, UnicodeDecodeError, OSError) as exc:
            raise BundleError(f"stored DAG code is not a bundle: {exc}") from exc
        bundle = cls(entry, files)
        for name, _ in files:
            _check_name(name)
        if expected_hash is not None and bundle.hash != expected_hash:
            raise BundleError(
                f"stored DAG code {expected_hash[:12]} does not match its hash "
                f"(its contents hash to {bundle.hash[:12]})"
            )
        return bundle


def diff(old: Bundle, new: Bundle, *, context: int = 3) -> str:
    """A unified diff from `old` to `new`, file by file (files added or removed in full)."""
    a, b = dict(old.files), dict(new.files)
    out: list[str] = []
    for name in sorted(a.keys() | b.keys()):
        before, after = _lines(a.get(name)), _lines(b.get(name))
        if before == after:
            continue
        out.extend(
            difflib.unified_diff(
                before,
                after,
                f"a/{name}" if name in a else "/dev/null",
                f"b/{name}" if name in b else "/dev/null",
                n=context,
            )
        )
    return "".join(line if line.endswith("\n") else line + "\n" for line in out)


def _lines(data: bytes | None) -> list[str]:
    return [] if data is None else data.decode("utf-8", errors="replace").splitlines(True)


def _named(f: tuple[str, bytes]) -> tuple[bytes, bytes]:
    return f[0].encode(), f[1]


def _check_name(name: str) -> None:
    parts = name.split("/")
    if name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise BundleError(f"stored DAG code names an unsafe path {name!r}")


def collect(
    folder: str | os.PathLike[str],
    path: str | os.PathLike[str],
    source: bytes,
    modules: Iterable[object] | None = None,
    *,
    max_bytes: int = 0,
) -> Bundle:
    """The bundle of DAG file `path` (whose imported bytes were `source`), with each module of
    `modules` (default: all imported) whose file lies under `folder`. Over `max_bytes` (0: no
    cap) raises BundleError, saying what is in it."""
    root = Path(os.path.abspath(folder))
    entry_path = Path(os.path.abspath(path))
    entry = _relative(entry_path, root)
    files = {entry: source}
    for module in list(sys.modules.values()) if modules is None else modules:
        f = getattr(module, "__file__", None)
        if not isinstance(f, str) or not f.endswith(".py"):
            continue
        p = Path(os.path.abspath(f))
        if p == entry_path or root not in p.parents:
            continue
        try:
            files[_relative(p, root)] = p.read_bytes()
        except OSError:
            continue  # removed since it was imported: the next parse will say
    bundle = Bundle(entry, tuple(sorted(files.items())))
    if max_bytes and bundle.size > max_bytes:
        helpers = len(files) - 1
        raise BundleError(
            f"the DAG file and the {helpers} helper module(s) it imports from the DAGs folder "
            f"hold {bundle.size / 1024:.0f} KB, over the {max_bytes // 1024} KB a DAG's code "
            "may hold ([core] max_dag_code_kb)"
        )
    return bundle


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.name  # a file pushed from outside any DAGs folder: its name alone


def default_cache() -> Path:
    """`[core] code_cache` left empty: a folder of this user's own in the temporary folder."""
    return Path(tempfile.gettempdir()) / f"haflow-code-{os.getuid()}"


def cache_folder(base: str | os.PathLike[str] = "") -> Path:
    """`base` (`[core] code_cache`; empty: `default_cache()`) made (0700) if missing; one
    that another user owns or others may write is refused: whoever can write it could change
    the code every attempt runs."""
    p = Path(base) if base else default_cache()
    p.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = p.stat()
    if st.st_uid != os.getuid() or st.st_mode & 0o022:
        raise BundleError(
            f"DAG code cache {p} is owned by another user or writable by others; "
            "use a folder of this user's own ([core] code_cache)"
        )
    return p


def materialize(bundle: Bundle, base: Path) -> Path:
    """The folder under `base` holding `bundle`'s files, written once (atomically: into a
    temporary folder renamed into place) and shared by every process of the node."""
    target = base / bundle.hash
    if (target / _COMPLETE).exists():
        return target
    tmp = Path(tempfile.mkdtemp(prefix=f".{bundle.hash[:12]}-", dir=base))
    try:
        for name, data in bundle.files:
            _check_name(name)
            dest = tmp / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
        (tmp / _COMPLETE).write_text(bundle.entry)
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / _COMPLETE).exists():  # not another process's: a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def unpacked(base: Path, code_hash: str, fetch: Callable[[str], bytes]) -> Path:
    """The folder of version `code_hash` under `base`, unpacked from what `fetch` returns for
    it (the packed bundle) unless this node has it already."""
    return cached(base, code_hash) or materialize(Bundle.unpack(fetch(code_hash), code_hash), base)


def cached(base: Path, code_hash: str) -> Path | None:
    """The folder of version `code_hash` if this node unpacked it before."""
    target = base / code_hash
    return target if (target / _COMPLETE).exists() else None


CACHE_KEEP_S = 7 * 24 * 3600.0
"""A version unused on a node this long leaves its cache (it is fetched again if needed)."""


def touch(folder: Path) -> None:
    """Mark the unpacked version `folder` as used now (`prune` keeps it)."""
    with contextlib.suppress(OSError):
        os.utime(folder / _COMPLETE)


def prune(base: Path, keep_s: float = CACHE_KEEP_S, now: float | None = None) -> int:
    """Remove the versions under `base` unused for `keep_s` (and temporary folders left by a
    crash mid-write); returns how many."""
    cutoff = (time.time() if now is None else now) - keep_s
    gone = 0
    for p in list(base.iterdir()) if base.is_dir() else []:
        try:
            used = (
                (p / _COMPLETE).stat().st_mtime if (p / _COMPLETE).exists() else p.stat().st_mtime
            )
        except OSError:
            continue
        if used < cutoff:
            shutil.rmtree(p, ignore_errors=True)
            gone += 1
    return gone


def entry_of(folder: Path) -> str:
    """The DAG file's path inside an unpacked bundle `folder`."""
    return str(folder / (folder / _COMPLETE).read_text())
