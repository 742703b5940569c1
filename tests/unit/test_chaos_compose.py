"""haflow.chaos.compose and haflow.chaos.deployment without Docker: the project name compose
would choose, services found by their labels and given roles, `leader` resolved from `haflow
jobs check`, partitions remembered for heal, and what a drill reads of a deployment or refuses.
The real thing runs in tests/integration/test_compose_stack.py."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from haflow.chaos.cluster import ClusterError
from haflow.chaos.compose import ComposeTarget, project_name
from haflow.chaos.deployment import ComposeCluster
from haflow.chaos.docker import Docker, DockerError
from haflow.chaos.faults import Faults
from haflow.chaos.scenario import Scenario, refusal
from haflow.metastore.engine import servers


def _container(service: str, state: str = "running", nets: Sequence[str] = ("p_default",)) -> Any:
    role = next((r for r in ("master", "worker") if service.startswith(r)), "")
    return {
        "Id": f"id-{service}",
        "Name": f"/p_{service}_1",
        "Config": {
            "Hostname": service,
            "Image": "haflow:local" if role else f"haflow-local/{service}",
            "Labels": {"com.docker.compose.project": "p", "com.docker.compose.service": service},
            "Env": [f"HAFLOW_ROLE={role}"] if role else [],
        },
        "State": {"Status": state, "Paused": False},
        "NetworkSettings": {
            "Networks": {n: {"IPAddress": f"172.18.0.{10 + len(service)}"} for n in nets}
        },
        "Mounts": [],
    }


@dataclass(frozen=True)
class FakeDocker(Docker):
    containers: dict[str, Any] = field(default_factory=dict)
    said: dict[str, str] = field(default_factory=dict)  # container -> `haflow jobs check` output
    calls: list[list[str]] = field(default_factory=list)

    def run(self, *args: str, **_: Any) -> str:
        self.calls.append(list(args))
        if args[:1] == ("ps",):
            return "\n".join(c["Id"] for c in self.containers.values())
        if args[:2] == ("network", "disconnect"):
            self.containers[args[-1].split("_")[1]]["NetworkSettings"]["Networks"] = {}
        if args[:2] == ("network", "connect"):
            found = self.containers[args[-1].split("_")[1]]["NetworkSettings"]["Networks"]
            found[args[-2]] = {"IPAddress": "172.18.0.9"}
        return ""

    def inspect(self, *names: str, kind: str = "container") -> list[dict[str, Any]]:
        wanted = set(names)
        return [c for c in self.containers.values() if {c["Id"], c["Name"][1:]} & wanted]

    def exec(self, container: str, argv: Sequence[str], user: str = "") -> str:
        self.calls.append(["exec", *(["--user", user] if user else []), container, *argv])
        if argv[0] == "cat" and argv[1] in self.said:
            return self.said[argv[1]]  # a secret file
        if argv[0] == "chmod":
            return ""
        if container not in self.said:
            raise DockerError(f"{container} is not running")
        return self.said[container]

    def require_engine(self) -> None:
        pass


def _target(tmp_path: Path, *services: str, **said: str) -> tuple[ComposeTarget, FakeDocker]:
    compose = tmp_path / "deploy" / "docker-compose.yml"
    compose.parent.mkdir(exist_ok=True)
    compose.write_text("services: {}\n")
    docker = FakeDocker(containers={s: _container(s) for s in services}, said=said)
    return ComposeTarget.open([compose], "p", tmp_path / "state", docker), docker


def test_project_name_is_the_one_compose_chooses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = tmp_path / "My.Deploy" / "docker-compose.yml"
    monkeypatch.delenv("COMPOSE_PROJECT_NAME", raising=False)
    assert project_name([file]) == "mydeploy"
    monkeypatch.setenv("COMPOSE_PROJECT_NAME", "Prod_1")
    assert project_name([file]) == "prod_1"
    assert project_name([file], "given") == "given"


def test_services_by_label_and_unknown_names_listed(tmp_path: Path) -> None:
    target, _ = _target(tmp_path, "master1", "worker1", "zk1")
    assert target.services() == ["master1", "worker1", "zk1"]
    assert target.container("worker1") == "p_worker1_1"
    with pytest.raises(ClusterError, match=r"no service 'worker9'.*master1, worker1, zk1"):
        target.known("worker9")


def test_no_containers_says_how_to_start(tmp_path: Path) -> None:
    with pytest.raises(ClusterError, match=r"has no containers: start it first.*up -d"):
        _target(tmp_path)


def test_leader_is_the_service_on_the_leaders_host(tmp_path: Path) -> None:
    target, _ = _target(
        tmp_path,
        "master1",
        "master2",
        p_master1_1="ok: live leader master2:7:ab12cd (heartbeat 0.2 s ago)",
    )
    assert target.known("leader") == "master2"
    target, _ = _target(tmp_path, "master1", "zk1")  # `haflow jobs check` fails everywhere
    with pytest.raises(ClusterError, match=r"no live leader.*asked.*in: master1"):
        target.known("leader")


def test_partition_remembers_networks_for_heal(tmp_path: Path) -> None:
    target, docker = _target(tmp_path, "worker1", "master1")
    docker.containers["worker1"]["NetworkSettings"]["Networks"] = {"p_back": {}, "p_front": {}}
    faults = Faults(target)
    faults.partition("worker1")
    assert ["network", "disconnect", "-f", "p_back", "p_worker1_1"] in docker.calls
    assert ["network", "disconnect", "-f", "p_front", "p_worker1_1"] in docker.calls
    docker.containers["worker1"]["State"]["Status"] = "exited"  # no DROP rules to flush
    fault = faults.heal("worker1")
    assert fault.detail["reconnected"] is True
    assert ["network", "connect", "--alias", "worker1", "p_back", "p_worker1_1"] in docker.calls
    assert ["network", "connect", "--alias", "worker1", "p_front", "p_worker1_1"] in docker.calls
    assert faults.heal("worker1").detail["reconnected"] is False  # nothing left to attach
    logged = target.fault_log.read_text().splitlines()
    assert [line.split('"action": "')[1].split('"')[0] for line in logged] == [
        "partition",
        "heal",
        "heal",
    ]


def test_dag_faults_are_refused_on_compose(tmp_path: Path) -> None:
    target, _ = _target(tmp_path, "master1")
    with pytest.raises(ClusterError, match="deployed by the operator"):
        Faults(target).poison("x.py", "")


SERVICES = (
    *("zk1", "postgres", "rabbitmq", "haflow-init", "master1", "master2", "worker1"),
    *("worker2", "haproxy", "prometheus"),
)


def test_services_have_the_harness_roles_and_single_servers_its_names(tmp_path: Path) -> None:
    target, _ = _target(tmp_path, *SERVICES)
    roles = {n.name: n.role for n in target.nodes()}
    assert roles == {
        "zk1": "zookeeper",
        "postgres": "postgres",
        "rabbitmq": "broker",
        "master1": "master",
        "master2": "master",
        "worker1": "worker",
        "worker2": "worker",
        "haproxy": "lb",
    }  # the one-shot haflow-init and monitoring are no nodes
    assert target.known("broker") == "rabbitmq"
    assert target.known("lb") == "haproxy"
    Faults(target).restart("broker")  # as broker-restart says it
    assert '"node": "rabbitmq"' in target.fault_log.read_text()  # logged by the service name
    with pytest.raises(ClusterError, match="no service 'zookeeper'"):
        target.known("zookeeper")  # three members: no single one to mean


def _deployment(tmp_path: Path, **files: str) -> tuple[ComposeCluster, FakeDocker]:
    compose = tmp_path / "deploy" / "docker-compose.yml"
    compose.parent.mkdir(exist_ok=True)
    compose.write_text("services: {}\n")
    docker = FakeDocker(containers={s: _container(s) for s in SERVICES}, said=files)
    for service in ("master1", "master2"):
        docker.containers[service]["Config"]["Env"] += [
            "HAFLOW__CORE__SQL_ALCHEMY_CONN_SECRET=/run/secrets/sql_alchemy_conn",
            "HAFLOW__ELECTION__ZK_AUTH_SECRET=/run/secrets/zk_auth",
            "HAFLOW__SCHEDULER__CLUSTER=prod",
        ]
    return ComposeCluster.open([compose], "p", tmp_path / "state", docker), docker


def test_a_deployment_is_reached_with_its_own_configuration(tmp_path: Path) -> None:
    deployment, docker = _deployment(
        tmp_path,
        **{
            "/run/secrets/sql_alchemy_conn": "postgresql://haflow:s3cret@postgres:5432/haflow\n",
            "/run/secrets/zk_auth": "haflow:zk-pass\n",
        },
    )
    assert deployment.name == "prod"
    assert deployment.zk_auth == "haflow:zk-pass"
    postgres = deployment.address("postgres")
    assert deployment.metastore_url() == f"postgresql://haflow:s3cret@{postgres}:5432/haflow"
    assert deployment.web_url("/ready") == f"https://{deployment.address('haproxy')}:8443/ready"
    reads = [c for c in docker.calls if c[:1] == ["exec"]]
    assert len(reads) == 2  # each setting read once
    assert deployment.dags_folders() == [tmp_path / "state" / "compose-p" / "dags"]
    with pytest.raises(ClusterError, match="share one DAGs folder"):
        deployment.dags_folder("master1")


def _ha_deployment(tmp_path: Path, url: str) -> tuple[ComposeCluster, FakeDocker]:
    """The deployment of deploy/compose.ha.yml: two Patroni members (postgres, postgres2)."""
    deployment, docker = _deployment(tmp_path, **{"/run/secrets/sql_alchemy_conn": url})
    for member in ("postgres", "postgres2"):
        docker.containers[member] = _container(member)
        docker.containers[member]["Config"]["Image"] = "haflow-local/patroni"
        docker.containers[member]["NetworkSettings"]["Networks"]["p_default"]["IPAddress"] = (
            f"172.18.0.{20 + len(member)}"
        )
    return deployment, docker


def test_patroni_members_are_reached_through_their_multi_host_url(tmp_path: Path) -> None:
    url = (
        "postgresql://haflow:s3cret@/haflow?host=postgres:5432&host=postgres2:5432"
        "&target_session_attrs=read-write"
    )
    deployment, _ = _ha_deployment(tmp_path, url)
    roles = {n.name: n.role for n in deployment.nodes()}
    assert roles["postgres"] == roles["postgres2"] == "patroni"
    assert servers(deployment.metastore_url()) == [("172.18.0.28", 5432), ("172.18.0.29", 5432)]
    assert "target_session_attrs=read-write" in deployment.metastore_url()
    assert refusal(_scenario(ha_metastore=True), deployment) == ""


def test_a_metastore_scenario_needs_patroni_members(tmp_path: Path) -> None:
    deployment, _ = _deployment(tmp_path)
    said = refusal(_scenario(ha_metastore=True), deployment)
    assert said == (
        "s needs a metastore of Patroni members (deploy/compose.ha.yml); the deployment has 0"
    )
    assert "RabbitMQ cluster" in refusal(_scenario(ha_broker=True), deployment)


def _scenario(**kw: Any) -> Scenario:
    return Scenario("s", "", ("P4",), lambda _d: None, **kw)


def test_scenarios_a_running_deployment_cannot_take_are_refused(tmp_path: Path) -> None:
    deployment, _ = _deployment(tmp_path)
    assert refusal(_scenario(), deployment) == ""
    assert refusal(_scenario(webserver=True), deployment) == ""
    said = refusal(_scenario(settings={"HAFLOW__CORE__DAG_DIR_LIST_INTERVAL": "1"}), deployment)
    assert "DAG_DIR_LIST_INTERVAL" in said and "keeps its own configuration" in said
    assert "receiver" in refusal(_scenario(receiver=True), deployment)
    assert refusal(_scenario(workers=3), deployment) == "s needs 3 workers; the deployment has 2"


def test_a_deployment_not_started_for_drills_says_how(tmp_path: Path) -> None:
    deployment, docker = _deployment(tmp_path)
    state = tmp_path / "state" / "compose-p"
    with pytest.raises(ClusterError) as caught:
        deployment.check_ready()
    said = str(caught.value)
    assert "master1 has no HAFLOW_CHAOS_RECORDS" in said
    assert f"master1 mounts nothing at /opt/haflow/dags, not {state / 'dags'}" in said
    assert f"HAFLOW_CHAOS_DIR={state}" in said and "-f deploy/compose.chaos.yml up -d" in said

    for service in ("master1", "master2", "worker1", "worker2"):
        d = docker.containers[service]
        d["Config"]["Env"].append("HAFLOW_CHAOS_RECORDS=/records/records.jsonl")
        d["Mounts"] = [
            {"Type": "bind", "Source": str(state / "records" / service), "Destination": "/records"}
        ]
        if service.startswith("master"):
            d["Mounts"].append(
                {"Type": "bind", "Source": str(state / "dags"), "Destination": "/opt/haflow/dags"}
            )
    deployment.check_ready()
    chmods = [c for c in docker.calls if "chmod" in c]
    assert ["exec", "--user", "0", "p_worker2_1", "chmod", "1777", "/records"] in chmods
    assert len(chmods) == 4
