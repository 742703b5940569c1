"""An operator's running docker-compose deployment as a fault target: `haflow chaos kill worker1
--compose deploy/docker-compose.yml` acts on that deployment's services by their names, as a
game day on one's own cluster would, and nothing is created or torn down.

A node is a compose service; its container is found by the labels compose puts on it
(`com.docker.compose.project`, `com.docker.compose.service`), so any compose version's naming
works. `leader` is the service whose host name the metastore names as the leading scheduler,
asked of a running haflow container (`haflow jobs check`, which reads the metastore with that
container's own configuration). A full partition detaches the container from every network of
the project and remembers them in a state file, so `heal` attaches it to the same ones (by
service name: compose gives no fixed addresses). Every fault goes to the fault log under
`--state-root`, one folder per project.

Each service has a role, as the harness's nodes do: `master` and `worker` from the haflow
containers' `HAFLOW_ROLE`, the servers from their service or image name (`zookeeper`,
`postgres`, `patroni` for a member of a Patroni metastore, `broker` for RabbitMQ or Redis, `lb`
for haproxy). The harness's names of the single servers, `broker`, `lb` and `postgres`, name
the one service of that role, so a scenario written for the harness (`restart("broker")`)
acts on the deployment's `rabbitmq`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from haflow.chaos.cluster import ClusterError, container_state
from haflow.chaos.docker import Docker, DockerError
from haflow.chaos.spec import DEFAULT_STATE_ROOT, NodeDef

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
ISOLATED_FILE = "isolated.json"
LEADER_LINE = re.compile(r"live leader (\S+)")
SERVER_ROLES = (
    ("zookeeper", "zookeeper"),
    ("zk", "zookeeper"),
    ("patroni", "patroni"),  # a metastore member under Patroni (deploy/compose.ha.yml)
    ("postgres", "postgres"),
    ("rabbitmq", "broker"),
    ("redis", "broker"),
    ("haproxy", "lb"),
)
"""(prefix of a service's name or of its image's last path part, role), first match wins."""
ROLE_NAMES = ("broker", "lb", "postgres")
"""The harness's node names that stand for a deployment's single server of that role."""


def project_name(files: Sequence[Path], project: str = "") -> str:
    """The project name compose itself would use: `project`, else $COMPOSE_PROJECT_NAME, else
    the first file's folder name, lowercased, keeping letters, digits, `-` and `_`."""
    name = project or os.environ.get("COMPOSE_PROJECT_NAME", "")
    if not name:
        name = files[0].resolve().parent.name
    return re.sub(r"[^a-z0-9_-]", "", name.lower())


@dataclass
class ComposeTarget:
    """The services of compose project `project` (defined by `files`), seen through `docker`."""

    files: tuple[Path, ...]
    project: str
    docker: Docker
    state_root: Path = DEFAULT_STATE_ROOT

    @classmethod
    def open(
        cls,
        files: Sequence[Path],
        project: str = "",
        state_root: Path = DEFAULT_STATE_ROOT,
        docker: Docker | None = None,
    ) -> Self:
        """The running deployment of `files`; ClusterError when no container of it exists."""
        missing = [str(f) for f in files if not f.is_file()]
        if not files or missing:
            raise ClusterError(f"no compose file {', '.join(missing) or '(none given)'}")
        target = cls(tuple(files), project_name(files, project), docker or Docker(), state_root)
        target.docker.require_engine()
        if not target._containers():
            raise ClusterError(
                f"compose project {target.project!r} has no containers: start it first "
                f"(`{target.command_line('up', '-d')}`), or name its project with --project"
            )
        return target

    def command_line(self, *args: str) -> str:
        """The docker-compose command an operator would type for this deployment."""
        exe = "docker-compose" if shutil.which("docker-compose") else "docker compose"
        files = " ".join(f"-f {f}" for f in self.files)
        return f"{exe} -p {self.project} {files} {' '.join(args)}".rstrip()

    @property
    def state_dir(self) -> Path:
        return self.state_root / f"compose-{self.project}"

    @property
    def fault_log(self) -> Path:
        return self.state_dir / "faults.jsonl"

    # -- nodes ------------------------------------------------------------------------------

    def _containers(self) -> dict[str, dict[str, Any]]:
        """service -> its container's `docker inspect` (the first replica, running or not)."""
        out = self.docker.run(
            "ps", "-a", "--filter", f"label={PROJECT_LABEL}={self.project}", "--format", "{{.ID}}"
        )
        ids = [line.strip() for line in out.splitlines() if line.strip()]
        found: dict[str, dict[str, Any]] = {}
        for d in sorted(self.docker.inspect(*ids) if ids else [], key=lambda d: d["Name"]):
            service = ((d.get("Config") or {}).get("Labels") or {}).get(SERVICE_LABEL)
            if service and service not in found:
                found[service] = d
        return found

    def services(self) -> list[str]:
        return sorted(self._containers())

    def nodes(self) -> list[NodeDef]:
        """The services of a known role (one-shot jobs and monitoring left out)."""
        found = [NodeDef(s, role_of(s, d), (), "") for s, d in self._containers().items()]
        return [n for n in found if n.role]

    def known(self, node: str) -> str:
        """`node` as a service name: a service, `leader`, or a harness name of a single
        server's role (`broker`, `lb`, `postgres`)."""
        if node == "leader":
            return self.leader()
        containers = self._containers()
        if node not in containers and node in ROLE_NAMES:
            serving = [s for s, d in containers.items() if role_of(s, d) == node]
            if len(serving) == 1:
                return serving[0]
        if node not in containers:
            raise ClusterError(
                f"no service {node!r} in compose project {self.project!r}; "
                f"services: {', '.join(self.services())}"
            )
        return node

    def container(self, node: str) -> str:
        d = self._containers().get(node)
        if d is None:
            raise ClusterError(f"service {node!r} of project {self.project!r} has no container")
        return str(d["Name"]).lstrip("/")

    def container_states(self) -> dict[str, str]:
        return {s: container_state(d) for s, d in self._containers().items()}

    def address(self, node: str) -> str:
        networks = _networks(self._containers().get(self.known(node)) or {})
        for net in networks.values():
            if net.get("IPAddress"):
                return str(net["IPAddress"])
        raise ClusterError(f"service {node!r} has no network address (stopped or cut off?)")

    def leader(self) -> str:
        """The service whose scheduler leads now, as the metastore says."""
        containers = self._containers()
        asked = []
        for service, d in containers.items():
            env = (d.get("Config") or {}).get("Env") or []
            if container_state(d) != "running" or not any(e.startswith("HAFLOW_") for e in env):
                continue
            asked.append(service)
            try:
                said = self.docker.exec(self.container(service), ["haflow", "jobs", "check"])
            except DockerError:
                continue
            match = LEADER_LINE.search(said)
            if match:
                return self._service_of_host(match.group(1).split(":", 1)[0], containers)
        raise ClusterError(
            f"no live leader in compose project {self.project!r} "
            f"(asked `haflow jobs check` in: {', '.join(asked) or 'no running haflow container'})"
        )

    @staticmethod
    def _service_of_host(host: str, containers: dict[str, dict[str, Any]]) -> str:
        for service, d in containers.items():
            if (d.get("Config") or {}).get("Hostname") == host or service == host:
                return service
        raise ClusterError(f"no service of this project has the host name {host!r}")

    # -- partitions -------------------------------------------------------------------------

    def isolate(self, node: str) -> None:
        container = self.container(node)
        networks = sorted(_networks(self._containers()[node]))
        if not networks:
            raise ClusterError(f"service {node!r} is on no network: nothing to cut")
        self._remember(node, networks)
        for network in networks:
            self.docker.run("network", "disconnect", "-f", network, container, timeout_s=60)

    def reconnect(self, node: str) -> bool:
        attached = set(_networks(self._containers().get(node) or {}))
        wanted = [n for n in self._isolated().get(node, []) if n not in attached]
        for network in wanted:
            self.docker.run("network", "connect", "--alias", node, network, self.container(node))
        self._remember(node, [])
        return bool(wanted)

    def _isolated(self) -> dict[str, list[str]]:
        path = self.state_dir / ISOLATED_FILE
        return json.loads(path.read_text()) if path.exists() else {}

    def _remember(self, node: str, networks: list[str]) -> None:
        found = self._isolated()
        if networks:
            found[node] = networks
        else:
            found.pop(node, None)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / ISOLATED_FILE).write_text(json.dumps(found, indent=2))

    # -- what only the harness's own cluster has ----------------------------------------------

    def dags_folder(self, master: str) -> Path:
        raise ClusterError("DAG files are deployed by the operator on a compose deployment")

    def dags_folders(self) -> list[Path]:
        raise ClusterError("DAG files are deployed by the operator on a compose deployment")


def role_of(service: str, d: dict[str, Any]) -> str:
    """A service's role from its container's `docker inspect` ("" when none applies)."""
    config = d.get("Config") or {}
    role = env_of(d).get("HAFLOW_ROLE", "")
    if role in ("master", "worker"):
        return role
    image = str(config.get("Image", "")).rsplit("/", 1)[-1]
    for prefix, server_role in SERVER_ROLES:
        if service.startswith(prefix) or image.startswith(prefix):
            return server_role
    return ""


def env_of(d: dict[str, Any]) -> dict[str, str]:
    """A container's environment as a mapping."""
    pairs = (d.get("Config") or {}).get("Env") or []
    return dict(e.split("=", 1) for e in pairs if "=" in e)


def _networks(d: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict((d.get("NetworkSettings") or {}).get("Networks") or {})
