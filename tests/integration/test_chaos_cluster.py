"""A real chaos cluster in Docker: 2 masters, 1 worker, a 3-node ZooKeeper ensemble,
PostgreSQL and Redis, each its own container on the cluster's network.

The leader's node is SIGKILLed; the checker, reading only the recorded history (event log,
fault log, the tasks' own records), must find that a standby took over within P2's bound and
that nothing ran twice. The cluster is removed at the end, even on failure. Without a Docker
engine (scripts/docker-engine.sh starts one) the test is skipped, and fails under CI=true.
"""

from __future__ import annotations

import contextlib
import os
import random
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from haflow.chaos.checker import Bounds, Status, check
from haflow.chaos.cluster import Cluster, down_by_name
from haflow.chaos.docker import DockerError
from haflow.chaos.history import collect
from haflow.chaos.report import as_table
from haflow.chaos.scenario import Drill
from haflow.chaos.spec import ClusterSpec
from haflow.chaos.workload import dag_source
from tests.integration.conftest import docker_engine

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    docker_engine()
    name = f"it{os.getpid()}{uuid.uuid4().hex[:4]}"  # unique across parallel test processes
    spec = ClusterSpec(
        name=name,
        masters=2,
        workers=1,
        webserver=False,
        state_root=tmp_path,
        boot_timeout_s=180,
    )
    for folder in spec.dags_folders():
        folder.mkdir(parents=True)
        (folder / "chaos_work.py").write_text(dag_source("chaos_work", tasks=3, seconds=1.0))
    c = Cluster(spec)
    try:
        c.up(print)
        yield c
    except BaseException:
        for node in ("master1", "master2", "worker1"):
            with contextlib.suppress(DockerError):
                print(f"--- {node}\n{c.logs(node, 40)}")
        raise
    finally:
        c.close()
        down_by_name(name)


def test_status_names_the_leader(cluster: Cluster) -> None:
    st = cluster.status()
    assert st.leader in ("master1", "master2"), st
    assert st.epoch is not None and st.epoch >= 1
    roles = {n.node: (n.role, n.state) for n in st.nodes}
    assert roles["zk1"] == ("zookeeper", "running")
    assert roles["worker1"] == ("worker", "running")
    zk_modes = sorted(n.detail for n in st.nodes if n.role == "zookeeper")
    assert zk_modes == ["follower", "follower", "leader"], zk_modes
    schedulers = sorted(n.detail for n in st.nodes if n.role == "master")
    assert schedulers == ["scheduler leader", "scheduler standby"], schedulers


def test_leader_kill_9_a_standby_takes_over(cluster: Cluster) -> None:
    drill = Drill(cluster, random.Random(1), print)
    drill.trigger("chaos_work", runs=1)
    node, epoch = drill.leader()
    drill.faults.kill(node, "KILL")
    drill.wait_new_leader(epoch, timeout_s=60)
    drill.wait_runs_done(120)
    drill.restore(timeout_s=120)
    assert cluster.container_states()[node] == "running"

    verdicts = check(collect(cluster), ["P1", "P2", "P4", "P5"], Bounds())
    print(as_table("leader-kill9 (integration)", verdicts))
    by = {v.prop: v for v in verdicts}
    assert by["P2"].status == Status.PASS, by["P2"]
    (takeover,) = by["P2"].measures["takeover_kill_s"]
    assert takeover <= Bounds().takeover_kill_s
    for prop in ("P1", "P4", "P5"):
        assert by[prop].status == Status.PASS, by[prop]
