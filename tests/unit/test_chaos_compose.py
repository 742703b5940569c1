"""haflow.chaos.compose without Docker: the project name compose would choose, services found
by their labels, `leader` resolved from `haflow jobs check`, and partitions remembered for
heal. The real thing runs in tests/integration/test_compose_stack.py."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from haflow.chaos.cluster import ClusterError
from haflow.chaos.compose import ComposeTarget, project_name
from haflow.chaos.docker import Docker, DockerError
from haflow.chaos.faults import Faults


def _container(service: str, state: str = "running", nets: Sequence[str] = ("p_default",)) -> Any:
    return {
        "Id": f"id-{service}",
        "Name": f"/p_{service}_1",
        "Config": {
            "Hostname": service,
            "Labels": {"com.docker.compose.project": "p", "com.docker.compose.service": service},
            "Env": ["HAFLOW_ROLE=master"] if service.startswith(("master", "worker")) else [],
        },
        "State": {"Status": state, "Paused": False},
        "NetworkSettings": {"Networks": {n: {"IPAddress": "172.18.0.5"} for n in nets}},
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
