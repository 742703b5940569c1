"""DAG code versions in real metastores: stored once by hash, pinned by every run, never rolled
back by a stale parse, read back byte for byte (a large one too: MariaDB's LONGBLOB)."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine

from haflow.core.planner import Decisions, NewRun
from haflow.dag.bundle import Bundle
from haflow.errors import NotFound
from haflow.metastore.records import AttemptRef, DagCode, DagRecord, Presence, TaskDef
from haflow.metastore.repository import Repository

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DEFS = {"d": [TaskDef("a", retries=0, retry_delay_s=0.0, timeout_s=None, queue="default")]}


def _code(text: str, helper: bytes = b"H = 1\n") -> DagCode:
    b = Bundle("d.py", (("d.py", text.encode()), ("helper.py", helper)))
    return DagCode(b.hash, b.entry, b.size, b.pack())


def _sync(repo: Repository, code: DagCode, now: datetime = T0) -> None:
    record = DagRecord("d", "/dags/d.py", None, None, False, 16, [], "", "fp", code_hash=code.hash)
    repo.dags.sync([record], [], now, code={code.hash: code})


@pytest.fixture
def repo(engine: Engine) -> Repository:
    return Repository(engine, cluster="c1", actor="sched-1")


def test_every_run_keeps_the_version_it_was_created_with(repo: Repository) -> None:
    v1, v2 = _code("v = 1\n"), _code("v = 2\n")
    _sync(repo, v1)
    first = repo.runs.trigger("d", {}, T0, run_id="r1")
    epoch = repo.leadership.take("s1", "none", T0)
    fire = T0 + timedelta(hours=1)
    scheduled = NewRun("d", fire, T0, fire)
    repo.scheduling.apply(Decisions(new_runs=[scheduled]), DEFS, epoch, T0)
    _sync(repo, v2, T0 + timedelta(minutes=1))
    second = repo.runs.trigger("d", {}, T0, run_id="r2")
    assert repo.runs.get("d", "r1").code_hash == first.code_hash == v1.hash
    runs = {r.run_id: r.code_hash for r in repo.runs.find(dag_id="d")}
    assert runs == {"r1": v1.hash, "r2": v2.hash, f"scheduled__{fire.isoformat()}": v1.hash}
    assert second.code_hash == v2.hash and repo.dags.get("d").code_hash == v2.hash
    versions = repo.dags.versions("d")
    assert [(v.code_hash, v.runs, v.current) for v in versions] == [
        (v2.hash, 1, True),
        (v1.hash, 2, False),
    ]
    kinds = [e.kind for e in repo.history.events(kinds=["dag.version"])]
    assert kinds == ["dag.version", "dag.version"]


def test_a_claim_names_its_runs_version(repo: Repository) -> None:
    v1 = _code("v = 1\n")
    _sync(repo, v1)
    run = repo.runs.trigger("d", {}, T0, run_id="r1")
    epoch = repo.leadership.take("s1", "none", T0)
    repo.scheduling.apply(Decisions(start_runs=[run.pk]), DEFS, epoch, T0)
    _sync(repo, _code("v = 2\n"))  # a newer version does not change the run's
    ti = repo.history.task_instance("d", "r1", "a")
    refs = repo.scheduling.apply(Decisions(to_queue=[(ti.id, 1)]), DEFS, epoch, T0).refs
    claimed = repo.attempts.claim(AttemptRef(ti.id, 1, refs[0].epoch), "w1", T0)
    assert claimed is not None and claimed.code_hash == v1.hash


def test_a_stale_parse_never_takes_a_dag_back(repo: Repository) -> None:
    v1, v2 = _code("v = 1\n"), _code("v = 2\n")
    _sync(repo, v1)
    _sync(repo, v2)
    _sync(repo, v1)  # a master whose DAGs folder still holds v1
    assert repo.dags.get("d").code_hash == v2.hash
    assert repo.dags.get("d").is_active
    v3 = _code("v = 3\n")  # a version never seen before moves it on
    _sync(repo, v3)
    assert repo.dags.get("d").code_hash == v3.hash


def test_stored_code_comes_back_byte_for_byte(repo: Repository) -> None:
    big = _code("v = 1\n", helper=os.urandom(3 * 1024 * 1024))  # past MySQL's 64 KB BLOB
    _sync(repo, big)
    _sync(repo, big)  # stored once: the second sync finds it there
    back = repo.dags.code(big.hash)
    assert back == big
    assert Bundle.unpack(back.packed, big.hash).size == big.size
    with pytest.raises(NotFound, match="no DAG code version"):
        repo.dags.code("f" * 64)


def test_a_dag_without_a_version_keeps_working(repo: Repository) -> None:
    """Records of a scheduler that knows no versions (or tests): runs have no hash."""
    record = DagRecord("d", "/dags/d.py", None, None, False, 16, [], "", "fp")
    repo.dags.sync([record], [], T0)
    assert repo.runs.trigger("d", {}, T0, run_id="r1").code_hash is None
    assert repo.dags.versions("d") == []
    named = replace(record, code_hash="a" * 64)
    with pytest.raises(NotFound, match="named but not given"):
        repo.dags.sync([named], [], T0)


def _record(dag_id: str, code: DagCode) -> DagRecord:
    return DagRecord(
        dag_id, f"/dags/{dag_id}.py", None, None, False, 16, [], "", "fp", code_hash=code.hash
    )


def test_only_a_master_that_had_a_dag_changes_whether_it_is_active(repo: Repository) -> None:
    x, y = _code("x = 1\n"), _code("y = 1\n")
    both = {x.hash: x, y.hash: y}
    m1 = Presence("m1")
    repo.dags.sync([_record("x", x), _record("y", y)], [], T0, code=both, presence=m1)
    # m2 lacks y (added on m1 only): y stays active
    repo.dags.sync([_record("x", x)], [], T0, code=both, presence=Presence("m2"))
    assert repo.dags.get("y").is_active
    # m2 saw y vanish from its own folder: y goes
    repo.dags.sync(
        [_record("x", x)], [], T0, code=both, presence=Presence("m2", vanished=frozenset({"y"}))
    )
    assert not repo.dags.get("y").is_active
    # m2 still holding an inactive DAG it did not see appear does not bring it back
    repo.dags.sync([_record("x", x), _record("y", y)], [], T0, code=both, presence=Presence("m2"))
    assert not repo.dags.get("y").is_active
    # m1 made y's version: its folder's word counts, as a lone scheduler's does
    repo.dags.sync([_record("x", x), _record("y", y)], [], T0, code=both, presence=m1)
    assert repo.dags.get("y").is_active
    repo.dags.sync([_record("x", x)], [], T0, code=both, presence=m1)
    assert not repo.dags.get("y").is_active
    repo.dags.sync(
        [_record("x", x), _record("y", y)],
        [],
        T0,
        code=both,
        presence=Presence("m2", appeared=frozenset({"y"})),
    )
    assert repo.dags.get("y").is_active


def test_a_push_adds_moves_on_and_rolls_back(repo: Repository) -> None:
    v1, v2 = _code("v = 1\n"), _code("v = 2\n")
    both = {v1.hash: v1, v2.hash: v2}
    assert repo.dags.push([_record("d", v1)], both, T0) == {"d": "added"}
    assert repo.dags.push([_record("d", v1)], both, T0) == {"d": "unchanged"}
    assert repo.dags.push([_record("d", v2)], both, T0) == {"d": "new version"}
    assert repo.dags.push([_record("d", v1)], both, T0) == {"d": "rolled back"}
    assert repo.dags.get("d").code_hash == v1.hash
    # a master whose folder still holds v2 cannot undo the rollback: v2 is a version it left
    repo.dags.sync([_record("d", v2)], [], T0, code=both, presence=Presence("m1"))
    assert repo.dags.get("d").code_hash == v1.hash
    events = [e.detail for e in repo.history.events(kinds=["dag.version"])]
    assert len(events) == 3 and '"rollback": true' in events[-1] and '"by": "push"' in events[-1]
