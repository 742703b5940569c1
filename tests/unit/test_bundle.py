"""DAG code versions (`haflow.dag.bundle`): what a bundle holds, its hash, packing, the cache."""

from __future__ import annotations

import os
import sys
import time
import types
from pathlib import Path

import pytest

from haflow.dag import bundle
from haflow.dag.bundle import Bundle, BundleError
from haflow.scheduler.parsing import parse_file


def _module(name: str, path: Path) -> types.ModuleType:
    m = types.ModuleType(name)
    m.__file__ = str(path)
    return m


def test_a_bundle_holds_the_file_and_the_helpers_imported_from_the_folder(tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    (dags / "pkg").mkdir(parents=True)
    (dags / "d.py").write_text("x = 1\n")
    (dags / "helper.py").write_text("H = 1\n")
    (dags / "pkg" / "__init__.py").write_text("")
    (dags / "pkg" / "sub.py").write_text("S = 1\n")
    (tmp_path / "outside.py").write_text("O = 1\n")
    modules = [
        _module("helper", dags / "helper.py"),
        _module("pkg", dags / "pkg" / "__init__.py"),
        _module("pkg.sub", dags / "pkg" / "sub.py"),
        _module("outside", tmp_path / "outside.py"),
        _module("ext", tmp_path / "ext.so"),
        types.ModuleType("builtin_like"),
    ]
    b = bundle.collect(dags, dags / "d.py", b"x = 1  # as imported\n", modules)
    assert b.entry == "d.py"
    assert [name for name, _ in b.files] == ["d.py", "helper.py", "pkg/__init__.py", "pkg/sub.py"]
    assert b.source() == "x = 1  # as imported\n"  # the bytes imported, not read again


def test_the_hash_names_the_contents_and_packing_keeps_them(tmp_path: Path) -> None:
    one = Bundle("d.py", (("d.py", b"a"), ("h.py", b"b")))
    assert one.hash == Bundle("d.py", (("d.py", b"a"), ("h.py", b"b"))).hash
    assert one.hash != Bundle("d.py", (("d.py", b"a"), ("h.py", b"c"))).hash
    assert one.hash != Bundle("h.py", (("d.py", b"a"), ("h.py", b"b"))).hash
    # names and contents cannot run into each other
    assert Bundle("d", (("ab", b"c"),)).hash != Bundle("d", (("a", b"bc"),)).hash
    assert one.pack() == one.pack()  # the same bytes for the same contents
    again = Bundle.unpack(one.pack(), one.hash)
    assert again == one
    with pytest.raises(BundleError, match="does not match its hash"):
        Bundle.unpack(one.pack(), "0" * 64)
    with pytest.raises(BundleError, match="not a bundle"):
        Bundle.unpack(b"not a zip")


def test_an_unsafe_path_in_stored_code_is_refused() -> None:
    evil = Bundle("d.py", (("../../etc/x.py", b"boom"), ("d.py", b"")))
    with pytest.raises(BundleError, match="unsafe path"):
        Bundle.unpack(evil.pack())


def test_a_bundle_over_the_cap_says_what_is_in_it(tmp_path: Path) -> None:
    (tmp_path / "d.py").write_bytes(b"#" * 3000)
    with pytest.raises(BundleError, match=r"helper module.*over the 2 KB.*max_dag_code_kb"):
        bundle.collect(tmp_path, tmp_path / "d.py", b"#" * 3000, [], max_bytes=2048)


def test_an_oversized_file_is_an_import_error_of_its_parse(tmp_path: Path) -> None:
    path = tmp_path / "big.py"
    path.write_text(
        "from datetime import datetime\nfrom haflow.dag import DAG\n"
        "DAG('big', start_date=datetime(2026, 1, 1))\n" + "#" * 5000 + "\n"
    )
    parsed = parse_file(str(path), folder=str(tmp_path), max_code_kb=4)
    assert parsed.dags == () and parsed.code is None
    assert parsed.error is not None and "over the 4 KB" in parsed.error.message
    ok = parse_file(str(path), folder=str(tmp_path), max_code_kb=64)
    assert ok.error is None and ok.code is not None
    assert [d.record.code_hash for d in ok.dags] == [ok.code.hash]


def test_materialize_writes_a_version_once_and_the_cache_must_be_private(tmp_path: Path) -> None:
    base = bundle.cache_folder(tmp_path / "cache")
    b = Bundle("sub/d.py", (("h.py", b"H"), ("sub/d.py", b"D")))
    assert bundle.cached(base, b.hash) is None
    folder = bundle.materialize(b, base)
    assert folder == base / b.hash and bundle.cached(base, b.hash) == folder
    assert (folder / "sub" / "d.py").read_bytes() == b"D"
    assert bundle.entry_of(folder) == str(folder / "sub" / "d.py")
    assert bundle.materialize(b, base) == folder  # again: the same folder, untouched
    assert [p.name for p in base.iterdir()] == [b.hash]  # no temporary folder left behind
    open_to_all = tmp_path / "shared"
    open_to_all.mkdir()
    os.chmod(open_to_all, 0o777)
    with pytest.raises(BundleError, match="writable by others"):
        bundle.cache_folder(open_to_all)


def test_collect_reads_the_imported_modules_by_default(tmp_path: Path) -> None:
    (tmp_path / "dv_helper_mod.py").write_text("V = 2\n")
    sys.path.insert(0, str(tmp_path))
    try:
        __import__("dv_helper_mod")
        b = bundle.collect(tmp_path, tmp_path / "d.py", b"import dv_helper_mod\n")
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("dv_helper_mod", None)
    assert dict(b.files)["dv_helper_mod.py"] == b"V = 2\n"


def test_a_callback_rule_names_its_dags_version(tmp_path: Path) -> None:
    path = tmp_path / "cb.py"
    path.write_text(
        "from datetime import datetime\nfrom haflow.dag import DAG, BashTask\n"
        "def seen(context):\n    pass\n"
        "with DAG('cb', start_date=datetime(2026, 1, 1), on_failure_callback=seen):\n"
        "    BashTask('t', bash_command='true')\n"
    )
    parsed = parse_file(str(path), folder=str(tmp_path))
    assert parsed.code is not None
    (rule,) = parsed.dags[0].record.notify
    assert rule["target"]["code_hash"] == parsed.code.hash


def test_the_cache_drops_versions_unused_for_a_week(tmp_path: Path) -> None:
    base = bundle.cache_folder(tmp_path / "cache")
    old = bundle.materialize(Bundle("d.py", (("d.py", b"old"),)), base)
    used = bundle.materialize(Bundle("d.py", (("d.py", b"used"),)), base)
    week_ago = time.time() - bundle.CACHE_KEEP_S - 60
    for folder in (old, used):
        os.utime(folder / ".haflow-complete", (week_ago, week_ago))
    bundle.touch(used)  # an attempt ran it just now
    assert bundle.prune(base) == 1
    assert sorted(base.iterdir()) == [used]
