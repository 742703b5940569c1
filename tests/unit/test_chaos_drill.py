"""The drill's own hands through a failover, without Docker: a trigger that meets a metastore
error tries again under the same run id, a timed-out wait names the last error, and a round
whose schedule fails on anything of the harness's is aborted and reported, not a crash."""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any

import pytest

from haflow.chaos.cluster import ClusterError
from haflow.chaos.docker import DockerError
from haflow.chaos.drill import Drill
from haflow.chaos.scenario import Scenario, _round
from haflow.errors import BackendUnavailable, Conflict


class Runs:
    """runs.trigger failing with `errors` in turn, then landing."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.tried: list[str] = []

    def trigger(self, dag_id: str, conf: Any, now: Any, run_id: str) -> Any:
        self.tried.append(run_id)
        if self.errors:
            raise self.errors.pop(0)
        return SimpleNamespace(run_id=run_id)


def drill_on(runs: Runs) -> Drill:
    repo = SimpleNamespace(runs=runs, dags=SimpleNamespace(get=lambda _dag: object()))
    cluster = SimpleNamespace(docker=None, repo=lambda: repo)
    return Drill(cluster, random.Random(0), lambda _m: None)


def test_a_trigger_cut_by_a_failover_is_tried_again_under_the_same_run_id() -> None:
    runs = Runs(BackendUnavailable("metastore connection lost"))
    [run_id] = drill_on(runs).trigger("work")
    assert runs.tried == [run_id, run_id]


def test_a_trigger_whose_answer_was_lost_is_found_not_made_twice() -> None:
    # the first try committed, but its answer was lost: the second finds the run
    runs = Runs(BackendUnavailable("server closed the connection"), Conflict("already has"))
    [run_id] = drill_on(runs).trigger("work")
    assert runs.tried == [run_id, run_id]


def test_a_timed_out_wait_names_the_last_error() -> None:
    drill = drill_on(Runs())

    def down() -> None:
        raise BackendUnavailable("metastore unreachable: no route to host")

    with pytest.raises(ClusterError, match="BackendUnavailable: metastore unreachable"):
        drill.wait("the metastore", down, 0.3)


class RoundDrill:
    def __init__(self) -> None:
        self.said: list[str] = []
        self.restored = 0

    def say(self, message: str) -> None:
        self.said.append(message)

    def wait_runs_done(self, _timeout_s: float) -> None:
        pass

    def restore(self) -> None:
        self.restored += 1


def test_a_round_failing_on_a_harness_error_is_aborted_and_restored() -> None:
    def schedule(_drill: Any) -> None:
        raise DockerError("docker network connect: endpoint exists")

    sc = Scenario(name="x", description="x", properties=("P1",), schedule=schedule)
    drill, aborted = RoundDrill(), list[str]()
    assert _round(sc, drill, "round 1", aborted)  # type: ignore[arg-type]
    assert aborted == ["round 1: DockerError: docker network connect: endpoint exists"]
    assert drill.restored == 2  # after the abort, and again once its runs settled
