"""An operator's running compose deployment as a cluster a scenario can drill (a game day):
`haflow chaos run SCENARIO --compose ...` injects the scenario's faults into it and judges the
history, creating and removing nothing.

What the harness knows of its own cluster is read from the deployment itself:

- the metastore URL from the haflow containers' own configuration (`HAFLOW__CORE__
  SQL_ALCHEMY_CONN`, or the secret file its `_SECRET` variable names, read inside the
  container), its host name replaced by that service's address, so the host reaches it;
- the scheduler cluster's name (`[scheduler] cluster`) and the ZooKeeper credentials
  (`[election] zk_auth`) the same way;
- the web entry point: haproxy's HTTPS port inside its container (deploy/haproxy.cfg), with the
  deployment's certificate taken as it is (the prober measures availability, not identity).

Two things only the deployment's start can provide, by the override deploy/compose.chaos.yml:
the scenario's DAGs (the masters read their DAGs folder from `<state dir>/dags`) and the tasks'
own records (each master and worker writes `<state dir>/records/<service>/`), the evidence P4
and P5 are judged from. `check_ready` says what is missing and how to start it right.
"""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from haflow.chaos.cluster import (
    ClusterError,
    container_state,
    http_ok,
    wait_serving,
    zk_member_mode,
)
from haflow.chaos.compose import ComposeTarget, env_of, role_of
from haflow.chaos.docker import DockerError
from haflow.chaos.spec import RECORDS_FILE
from haflow.metastore.engine import create_engine, servers
from haflow.metastore.repository import Repository

HTTPS_PORT = 8443
"""The port deploy/haproxy.cfg serves HTTPS on inside the haproxy container."""
RECORDS_MOUNT = "/records"
DEFAULT_DAGS_FOLDER = "/opt/haflow/dags"
OVERRIDE = "deploy/compose.chaos.yml"


@dataclass
class ComposeCluster(ComposeTarget):
    """A running compose deployment, drilled as the harness drills its own cluster."""

    _settings: dict[str, str] = field(default_factory=dict, init=False, repr=False)
    _repo: Repository | None = field(default=None, init=False, repr=False)

    # -- its configuration, read from the haflow containers --------------------------------

    def setting(self, section: str, key: str, default: str = "") -> str:
        """A haflow setting as the running masters see it (environment or secret file)."""
        name = f"HAFLOW__{section.upper()}__{key.upper()}"
        if name not in self._settings:
            self._settings[name] = self._read_setting(name, default)
        return self._settings[name]

    def _read_setting(self, name: str, default: str) -> str:
        master, d = self._running_master()
        env = env_of(d)
        if name in env:
            return env[name]
        if f"{name}_SECRET" not in env:
            return default
        path = env[f"{name}_SECRET"]
        try:
            return self.docker.exec(str(d["Name"]).lstrip("/"), ["cat", path]).strip()
        except DockerError as exc:
            raise ClusterError(f"cannot read {path} in {master}: {exc}") from exc

    def _running_master(self) -> tuple[str, dict[str, Any]]:
        """A running master service and its `docker inspect`, from one look at the project."""
        for service, d in self._containers().items():
            if role_of(service, d) == "master" and container_state(d) == "running":
                return service, d
        raise ClusterError(f"no running master in compose project {self.project!r}")

    @property
    def name(self) -> str:
        return self.setting("scheduler", "cluster", "default")

    @property
    def zk_auth(self) -> str:
        return self.setting("election", "zk_auth")

    def metastore_url(self) -> str:
        """The masters' metastore URL with each host a database service's address (every
        member of a multi-host URL: the Patroni members of deploy/compose.ha.yml)."""
        url = make_url(self.setting("core", "sql_alchemy_conn"))
        containers = self._containers()
        if url.host:
            service = self._service_of_host(url.host, containers)
            return url.set(host=self.address(service)).render_as_string(hide_password=False)
        listed = servers(url) if url.query.get("host") else []
        if listed:
            hosts = tuple(
                f"{self.address(self._service_of_host(h, containers))}:{p}" for h, p in listed
            )
            url = url.update_query_dict({"host": hosts})
        return url.render_as_string(hide_password=False)

    def repo(self) -> Repository:
        if self._repo is None:
            self._repo = Repository(create_engine(self.metastore_url()), cluster=self.name)
        return self._repo

    def close(self) -> None:
        if self._repo is not None:
            self._repo.engine.dispose()
            self._repo = None

    # -- the web entry point -------------------------------------------------------------------

    @property
    def web_tls(self) -> ssl.SSLContext:
        tls = ssl.create_default_context()
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE  # the deployment's own (often self-signed) certificate
        return tls

    def web_url(self, path: str) -> str:
        return f"https://{self.address('lb')}:{HTTPS_PORT}{path}"

    # -- steady state ----------------------------------------------------------------------------

    def container_states(self) -> dict[str, str]:
        """The state of each node (one-shot jobs and monitoring are no nodes)."""
        return {s: container_state(d) for s, d in self._containers().items() if role_of(s, d)}

    def wait_serving(self, deadline: float) -> None:
        nodes = self.nodes()
        has_lb = any(n.role == "lb" for n in nodes)
        url, tls = (self.web_url("/ready"), self.web_tls) if has_lb else ("", None)
        ready = (lambda: http_ok(url, tls)) if has_lb else None
        wait_serving(nodes, self.repo, deadline, ready, self.command_line("logs", "SERVICE"))

    def zk_mode(self, node: str) -> str:
        return zk_member_mode(self.address(node))

    # -- what the scenario needs of the deployment's start ---------------------------------------

    def dags_folders(self) -> list[Path]:
        """The one DAGs folder every master reads (compose.chaos.yml mounts it)."""
        return [self.state_dir / "dags"]

    def push_dags(self) -> str:
        """Make the DAGs folder's files the DAGs' current versions, as an operator deploying
        them would (`haflow dags push` in a running master). A master's own scan would not
        take a DAG back to a version it had before (a stale folder must not roll it back), and
        a deployment that ran the scenario's DAGs once has had their versions; `push` does.
        Returns what it said."""
        master, d = self._running_master()
        inside = env_of(d).get("HAFLOW__CORE__DAGS_FOLDER", DEFAULT_DAGS_FOLDER)
        argv = ["haflow", "dags", "push", inside, "--output", "json"]
        try:
            said = json.loads(self.docker.exec(str(d["Name"]).lstrip("/"), argv))
        except (DockerError, ValueError) as exc:
            raise ClusterError(f"`haflow dags push {inside}` in {master} failed: {exc}") from exc
        return f"pushed by {master}: " + ", ".join(
            f"{row['dag_id']} {row['pushed']}" for row in said
        )

    def dags_folder(self, master: str) -> Path:
        raise ClusterError(
            "the masters of a compose deployment share one DAGs folder: a deploy that reaches "
            "one master only cannot be staged on it"
        )

    def check_ready(self) -> None:
        """ClusterError unless every master reads its DAGs from `<state dir>/dags` and every
        master and worker writes its tasks' records to `<state dir>/records/<service>`; then
        the records folders are made writable for whatever user the containers run as."""
        problems = []
        containers = self._containers()
        haflow_nodes = [n for n, d in containers.items() if role_of(n, d) in ("master", "worker")]
        for node in haflow_nodes:
            d = containers[node]
            env = env_of(d)
            wanted = [(RECORDS_MOUNT, self.state_dir / "records" / node)]
            if role_of(node, d) == "master":
                dags = env.get("HAFLOW__CORE__DAGS_FOLDER", DEFAULT_DAGS_FOLDER)
                wanted.append((dags, self.state_dir / "dags"))
            if env.get("HAFLOW_CHAOS_RECORDS") != f"{RECORDS_MOUNT}/{RECORDS_FILE}":
                problems.append(f"{node} has no HAFLOW_CHAOS_RECORDS")
            for inside, source in wanted:
                found = _mount_source(d, inside)
                if found is None or found != source.resolve():
                    problems.append(f"{node} mounts {found or 'nothing'} at {inside}, not {source}")
        if problems:
            raise ClusterError(
                "this deployment was not started for drills: "
                + "; ".join(problems)
                + f". Start it with the override {OVERRIDE} and HAFLOW_CHAOS_DIR={self.state_dir}"
                + f" (`HAFLOW_CHAOS_DIR={self.state_dir} "
                + self.command_line("-f", OVERRIDE, "up", "-d")
                + "`; it recreates the masters and workers only)"
            )
        for node in haflow_nodes:
            self._writable_records(node, containers[node])

    def _writable_records(self, node: str, d: dict[str, Any]) -> None:
        """Whoever the container runs as writes the records (compose made the folder as
        root): made so from inside, as root, which needs no rights on the host."""
        if container_state(d) != "running":
            return
        try:
            name = str(d["Name"]).lstrip("/")
            self.docker.exec(name, ["chmod", "1777", RECORDS_MOUNT], user="0")
        except DockerError as exc:
            raise ClusterError(f"cannot make {node}'s {RECORDS_MOUNT} writable: {exc}") from exc


def _mount_source(d: dict[str, Any], destination: str) -> Path | None:
    for mount in d.get("Mounts") or []:
        if mount.get("Destination") == destination and mount.get("Type") == "bind":
            return Path(str(mount.get("Source", ""))).resolve()
    return None
