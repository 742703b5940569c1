"""The chaos harness without Docker: the node image, the cluster's node definitions and
configuration, the fault log, the records a task leaves, the scenarios and the CLI groups."""

from __future__ import annotations

import io
import json
import sys
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from haflow.chaos.cluster import Cluster
from haflow.chaos.faults import read_fault_log
from haflow.chaos.history import due_times, read_records
from haflow.chaos.image import image_tag, skeleton_tar
from haflow.chaos.scenario import Scenario, load_scenario, scenario_names
from haflow.chaos.spec import ClusterSpec, haproxy_cfg, nodes, write_config, zoo_cfg
from haflow.chaos.workload import dag_source, recorded_work
from haflow.cli.chaos import _settings, chaos, cluster


def test_the_image_is_a_skeleton_of_links_and_empty_folders() -> None:
    with tarfile.open(fileobj=io.BytesIO(skeleton_tar())) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["lib64"].issym() and members["lib64"].linkname == "usr/lib64"
    assert members["tmp"].isdir() and members["tmp"].mode == 0o1777
    assert all(m.isdir() or m.issym() for m in members.values())
    assert image_tag() == image_tag()  # deterministic


def test_nodes_of_a_cluster_and_their_order() -> None:
    spec = ClusterSpec(name="x", masters=2, workers=1)
    names = [n.name for n in nodes(spec, web=True)]
    assert names == [
        "zk1",
        "zk2",
        "zk3",
        "postgres",
        "broker",
        "master1",
        "master2",
        "worker1",
        "lb",
    ]
    assert "lb" not in [n.name for n in nodes(spec, web=False)]
    master = next(n for n in nodes(spec, web=True) if n.name == "master1")
    assert any("webserver --port 8080" in a for a in master.argv)
    assert master.env["HAFLOW__CORE__HOSTNAME"] == "master1"
    assert master.env["HAFLOW__ELECTION__ZK_HOSTS"] == "zk1:2181,zk2:2181,zk3:2181"
    worker = next(n for n in nodes(spec, web=False) if n.name == "worker1")
    assert worker.argv[-4:] == ("-n", "worker1", "-c", "2")
    assert not worker.user.startswith("0:"), "workers do not run as root"


def test_an_ha_metastore_and_broker_replace_their_single_servers() -> None:
    spec = ClusterSpec(name="x", masters=1, workers=1, ha_metastore=True, ha_broker=True)
    roles = {n.name: n.role for n in nodes(spec, web=False)}
    assert {n: r for n, r in roles.items() if r in ("patroni", "rabbitmq")} == {
        "pg1": "patroni",
        "pg2": "patroni",
        "mq1": "rabbitmq",
        "mq2": "rabbitmq",
        "mq3": "rabbitmq",
    }
    assert "postgres" not in roles and "broker" not in roles
    env = next(n for n in nodes(spec, web=False) if n.name == "worker1").env
    url = env["HAFLOW__CORE__SQL_ALCHEMY_CONN"]
    assert "host=pg1:5432&host=pg2:5432&target_session_attrs=read-write" in url
    assert env["HAFLOW__CELERY__BROKER_URL"].count(";") == 2  # Celery's failover list
    assert env["HAFLOW__CELERY__QUEUE_TYPE"] == "quorum"
    pg1 = next(n for n in nodes(spec, web=False) if n.name == "pg1")
    assert pg1.env["PATRONI_NAMESPACE"] == "/haflow/x/patroni"
    with pytest.raises(ValueError, match="deployed images"):
        ClusterSpec(ha_broker=True, runtime="host")


def test_settings_reach_masters_and_workers() -> None:
    spec = ClusterSpec(settings={"HAFLOW__WORKER__TIMEOUT": "5"})
    for n in nodes(spec, web=False):
        if n.role in ("master", "worker"):
            assert n.env["HAFLOW__WORKER__TIMEOUT"] == "5"


def test_run_arguments_mount_the_host_read_only(tmp_path: Path) -> None:
    spec = ClusterSpec(name="x", state_root=tmp_path, runtime="host")
    c = Cluster(spec, subnet="10.231.7.0/24")
    args = c.run_args(c.node("worker1"), "img:1")
    joined = " ".join(args)
    assert "-v /usr:/usr:ro" in joined and "-v /etc:/etc:ro" in joined
    assert f"{tmp_path}/x/records/worker1:/records:rw" in joined
    assert "--ip 10.231.7.17" in joined and "--network-alias worker1" in joined
    assert "--user" in args and "--no-healthcheck" not in args
    assert args[args.index("img:1") + 1] == f"{sys.prefix}/bin/python"


def test_run_arguments_on_the_deployed_images(tmp_path: Path) -> None:
    spec = ClusterSpec(name="x", state_root=tmp_path, runtime="images")
    c = Cluster(spec, subnet="10.231.7.0/24")
    args = c.run_args(c.node("worker1"), "haflow-chaos/haflow-local")
    joined = " ".join(args)
    assert "/usr:/usr" not in joined and "/etc:/etc" not in joined and sys.prefix not in joined
    assert f"-v {tmp_path}/x/conf:/conf:ro" in joined
    assert f"{tmp_path}/x/records/worker1:/records:rw" in joined
    assert "--user" not in args and "--no-healthcheck" in args  # the image's own user
    assert args[args.index("haflow-chaos/haflow-local") + 1 :][:3] == [
        "python",
        "-m",
        "haflow.cli.main",
    ]
    assert not any(a.startswith("PATH=") for a in args)  # the image's PATH


def test_the_runtime_defaults_to_the_images_in_a_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HAFLOW_CHAOS_RUNTIME", raising=False)
    assert ClusterSpec().runtime == "images"  # this checkout has deploy/local/build-images.sh
    monkeypatch.setenv("HAFLOW_CHAOS_RUNTIME", "host")
    assert ClusterSpec().runtime == "host"
    monkeypatch.setenv("HAFLOW_CHAOS_RUNTIME", "vm")
    with pytest.raises(ValueError, match="choose one of"):
        ClusterSpec()


def test_configuration_files(tmp_path: Path) -> None:
    spec = ClusterSpec(name="x", masters=3, state_root=tmp_path)
    write_config(spec)
    assert "server.3=zk3:2888:3888" in zoo_cfg(spec)
    assert "server master3 master3:8080 check" in haproxy_cfg(spec)
    assert (tmp_path / "x" / "conf" / "haproxy.cfg").exists()
    assert (tmp_path / "x" / "records" / "worker2").stat().st_mode & 0o777 == 0o777


def test_a_task_records_its_own_execution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "worker1").mkdir()
    monkeypatch.setenv("HAFLOW_CHAOS_RECORDS", str(tmp_path / "worker1" / "records.jsonl"))
    monkeypatch.setenv("HAFLOW_CHAOS_NODE", "worker1")
    ctx = {"HAFLOW_DAG_ID": "d", "HAFLOW_RUN_ID": "r", "HAFLOW_TASK_ID": "t", "attempt": 2}
    recorded_work(0.25, context=ctx)
    records = read_records(tmp_path)
    assert next(r.kind for r in records) == "start" and records[-1].kind == "end"
    assert {(r.node, r.attempt, r.ti) for r in records} == {("worker1", 2, ("d", "r", "t"))}
    compile(dag_source("d", tasks=3, seconds=1.0, schedule="* * * * *"), "d.py", "exec")


def test_fault_log_round_trip(tmp_path: Path) -> None:
    log = tmp_path / "faults.jsonl"
    log.write_text(
        json.dumps(
            {
                "ts": "2026-11-24T12:00:00+00:00",
                "action": "kill",
                "node": "master1",
                "detail": {"signal": "KILL"},
            }
        )
        + "\n"
    )
    (fault,) = read_fault_log(log)
    assert fault.node == "master1" and fault.signal == "KILL"
    assert fault.ts == datetime(2026, 11, 24, 12, tzinfo=UTC)
    assert read_fault_log(tmp_path / "absent.jsonl") == []


def test_due_times_of_a_cron_schedule() -> None:
    start = datetime(2026, 11, 24, 12, 0, 30, tzinfo=UTC)
    end = datetime(2026, 11, 24, 12, 3, 0, tzinfo=UTC)
    assert [d.minute for d in due_times("* * * * *", start, end)] == [1, 2, 3]


def test_scenarios_load() -> None:
    names = scenario_names()
    assert {"leader_kill9", "worker_kill9"} <= set(names)
    for name in names:
        sc = load_scenario(name)
        assert isinstance(sc, Scenario) and sc.properties
    assert load_scenario("leader-kill9").name == "leader-kill9"


def test_cli_groups() -> None:
    runner = CliRunner()
    for group, words in (
        (cluster, ("up", "status", "logs", "down")),
        (chaos, ("kill", "partition", "heal", "run")),
    ):
        out = runner.invoke(group, ["--help"]).output
        assert all(w in out for w in words), out
    listed = runner.invoke(chaos, ["scenarios"])
    assert "leader-kill9" in listed.output
    missing = runner.invoke(cluster, ["status", "--name", "nope", "--state-root", "/nonexistent"])
    assert missing.exit_code != 0
    assert "haflow cluster up --name nope" in str(missing.exception)
    assert _settings(("worker__timeout=5",)) == {"HAFLOW__WORKER__TIMEOUT": "5"}


def test_scenarios_are_found_in_a_folder_given_by_scenarios(tmp_path: Path) -> None:
    """An installed haflow has no checkout beside it: `--scenarios DIR` points at the files."""
    from click.testing import CliRunner

    from haflow.cli.main import cli

    source = Path(__file__).parents[2] / "chaos" / "scenarios" / "leader_kill9.py"
    (tmp_path / "mine.py").write_text(source.read_text())
    result = CliRunner().invoke(cli, ["chaos", "scenarios", "--scenarios", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("leader-kill9 ")
    missing = CliRunner().invoke(cli, ["chaos", "scenarios", "--scenarios", str(tmp_path / "x")])
    assert missing.exit_code == 2 and "pass --scenarios DIR" in missing.output
