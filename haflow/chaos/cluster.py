"""A chaos cluster's life: up (network, containers, metastore schema, wait until it serves),
status (each node, its role, the leader and its epoch), logs, down.

Every node is a container named `<cluster>-<node>` on the cluster's own docker network, reached
by the other nodes under its bare node name, at a fixed address (so a node cut off and healed
comes back where its peers expect it). The host reaches the nodes by address, so no port is
published and nothing collides with servers running on the host itself.
"""

from __future__ import annotations

import contextlib
import functools
import json
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Collection, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from haflow.chaos import patroni, rabbitmq
from haflow.chaos import spec as specs
from haflow.chaos.docker import Docker, DockerError
from haflow.chaos.image import ensure_image, node_images
from haflow.chaos.spec import ClusterSpec, NodeDef
from haflow.chaos.sql import ensure_database, server_ready
from haflow.core.clock import utcnow
from haflow.errors import HaflowError
from haflow.metastore.engine import create_engine
from haflow.metastore.migrate import migrate
from haflow.metastore.repository import Repository

LABEL = "haflow.chaos.cluster"
STATE_FILE = "cluster.json"
Progress = Callable[[str], None]


class ClusterError(HaflowError):
    """A chaos cluster could not be brought up, found or reached."""


@dataclass(frozen=True)
class NodeStatus:
    node: str
    role: str
    state: str  # running, paused, exited, missing
    address: str
    detail: str = ""


@dataclass(frozen=True)
class ClusterStatus:
    name: str
    nodes: list[NodeStatus]
    leader: str | None
    epoch: int | None
    elector_mode: str | None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


SERVER_ROLES = ("zookeeper", "postgres", "patroni", "broker", "rabbitmq")
"""Started, and waited for, before the masters and workers."""


def _quiet(_msg: str) -> None:
    pass


class Cluster:
    """A chaos cluster described by `spec`, driven through `docker`."""

    def __init__(self, spec: ClusterSpec, docker: Docker | None = None, subnet: str = "") -> None:
        self.spec = spec
        self.docker = docker or Docker()
        self.subnet = subnet
        self.web = bool(spec.webserver)
        self._repo: Repository | None = None

    # -- identity and addresses -------------------------------------------------------------

    @classmethod
    def load(cls, name: str, state_root: Path = specs.DEFAULT_STATE_ROOT) -> Cluster:
        """The cluster `up` recorded under `state_root/name`."""
        path = state_root / name / STATE_FILE
        if not path.exists():
            raise ClusterError(
                f"no chaos cluster {name!r} under {state_root} (no {path}); "
                f"start one with `haflow cluster up --name {name}`"
            )
        data = json.loads(path.read_text())
        spec = ClusterSpec(**{**data["spec"], "state_root": Path(data["spec"]["state_root"])})
        cluster = cls(spec, subnet=data["subnet"])
        cluster.web = bool(data["web"])
        return cluster

    def _save(self) -> None:
        data = {
            "spec": {**asdict(self.spec), "state_root": str(self.spec.state_root)},
            "subnet": self.subnet,
            "web": self.web,
        }
        (self.spec.state_dir / STATE_FILE).write_text(json.dumps(data, indent=2))

    @property
    def name(self) -> str:
        """The scheduler cluster's name (its election path, its metastore rows)."""
        return self.spec.name

    @property
    def state_dir(self) -> Path:
        return self.spec.state_dir

    @property
    def fault_log(self) -> Path:
        return self.spec.state_dir / "faults.jsonl"

    zk_auth = ""
    """ZooKeeper digest credentials (`user:password`): the harness's ensemble has no ACLs."""
    web_tls: ssl.SSLContext | None = None
    """haproxy speaks plain HTTP inside the harness's network."""

    def web_url(self, path: str) -> str:
        """`path` of the web UI and API, through haproxy."""
        return f"http://{self.address('lb')}:{specs.WEB_PORT}{path}"

    def nodes(self) -> list[NodeDef]:
        return specs.nodes(self.spec, self.web)

    def node(self, name: str) -> NodeDef:
        for n in self.nodes():
            if n.name == name:
                return n
        known = ", ".join(n.name for n in self.nodes())
        raise ClusterError(f"no node {name!r} in cluster {self.spec.name!r}; nodes: {known}")

    def address(self, node: str) -> str:
        index = [n.name for n in self.nodes()].index(self.node(node).name)
        return self.subnet.rsplit(".", 1)[0] + f".{10 + index}"

    # -- as a fault target (haflow.chaos.faults.FaultTarget) ----------------------------------

    def known(self, node: str) -> str:
        """`node`'s name; `leader` is the master whose scheduler leads now (the metastore's
        leader row)."""
        if node != "leader":
            return self.node(node).name
        row = self.repo().leadership.current()
        if row is None:
            raise ClusterError(f"cluster {self.spec.name} has no leader yet")
        return str(row.holder).split(":", 1)[0]

    def container(self, node: str) -> str:
        return self.spec.container(node)

    def dags_folder(self, master: str) -> Path:
        return self.spec.dags_folder(master)

    def dags_folders(self) -> list[Path]:
        return self.spec.dags_folders()

    def isolate(self, node: str) -> None:
        """Detach `node` from the cluster network: its interface is gone, peers' packets to it
        vanish without a reset."""
        self.docker.run(
            "network", "disconnect", "-f", self.spec.network, self.container(node), timeout_s=60
        )

    def reconnect(self, node: str) -> bool:
        """Attach `node` again at its own address (where its peers expect it)."""
        found = self.docker.inspect(self.container(node))
        if not found:
            raise ClusterError(f"node {node} has no container")
        networks = (found[0].get("NetworkSettings") or {}).get("Networks") or {}
        if self.spec.network in networks:
            return False
        self.docker.run(
            "network",
            "connect",
            "--ip",
            self.address(node),
            "--alias",
            node,
            self.spec.network,
            self.container(node),
        )
        return True

    def metastore_url(self, db: str = "haflow") -> str:
        return specs.metastore_url([self.address(n) for n in self.spec.metastore_nodes], db)

    def metastore_addresses(self) -> dict[str, str]:
        return {n: self.address(n) for n in self.spec.metastore_nodes}

    def repo(self) -> Repository:
        """The cluster's metastore, seen from the host."""
        if self._repo is None:
            self._repo = Repository(create_engine(self.metastore_url()), cluster=self.spec.name)
        return self._repo

    def close(self) -> None:
        if self._repo is not None:
            self._repo.engine.dispose()
            self._repo = None

    # -- up ---------------------------------------------------------------------------------

    def up(self, progress: Progress = _quiet) -> None:
        """Start every node and wait until the cluster serves: a leader, live workers,
        haproxy answering. Bounded by `spec.boot_timeout_s`; raises ClusterError."""
        self.docker.require_engine()
        if self.docker.names("container", f"{LABEL}={self.spec.name}"):
            raise ClusterError(
                f"cluster {self.spec.name!r} already has containers; "
                f"`haflow cluster down --name {self.spec.name}` first"
            )
        if self.spec.webserver is None:
            self.web = _has_webserver()
        deadline = time.monotonic() + self.spec.boot_timeout_s
        specs.write_config(self.spec)
        images = self._images(progress)
        self._create_network()
        self._save()
        servers = [n for n in self.nodes() if n.role in SERVER_ROLES]
        for n in servers:
            self._run(n, images[n.role])
        progress(f"servers started: {', '.join(n.name for n in servers)}")
        self._wait_servers(deadline)
        self._prepare_metastore(deadline)
        progress("metastore migrated, ZooKeeper quorum up, broker answering")
        for n in self.nodes():
            if n not in servers:
                self._run(n, images[n.role])
        self.wait_serving(deadline)
        progress(f"cluster {self.spec.name!r} serving")

    def _images(self, progress: Progress) -> dict[str, str]:
        """role -> the image its nodes run (haflow.chaos.spec: the runtimes)."""
        if self.spec.on_images:
            return node_images(self.docker, specs.BUILD_IMAGES, progress)
        skeleton = ensure_image(self.docker)
        return {n.role: skeleton for n in self.nodes()}

    def _create_network(self) -> None:
        """The cluster's network on a free subnet. Another cluster coming up at the same moment
        may take the subnet found free: docker refuses the overlap, and the next one is tried."""
        taken: set[str] = set()
        for _ in range(8):
            self.subnet = self.subnet or self._free_subnet(taken)
            try:
                self.docker.run(
                    "network",
                    "create",
                    "--driver",
                    "bridge",
                    "--subnet",
                    self.subnet,
                    "--label",
                    f"{LABEL}={self.spec.name}",
                    self.spec.network,
                )
                return
            except DockerError as exc:
                if "overlap" not in str(exc).lower():
                    raise
                taken.add(self.subnet)
                self.subnet = ""
        raise ClusterError(f"no subnet docker would give the network of {self.spec.name!r}")

    def _free_subnet(self, taken: Collection[str] = ()) -> str:
        used = set(taken)
        for net in self.docker.inspect(
            *self.docker.run("network", "ls", "-q").split(), kind="network"
        ):
            for cfg in (net.get("IPAM") or {}).get("Config") or []:
                used.add(str(cfg.get("Subnet", "")))
        for third in range(1, 255):
            candidate = f"10.231.{third}.0/24"
            if candidate not in used:
                return candidate
        raise ClusterError("no free 10.231.x.0/24 subnet for the cluster's network")

    def run_args(self, n: NodeDef, image: str) -> list[str]:
        args = [
            "run",
            "-d",
            "--name",
            self.spec.container(n.name),
            "--hostname",
            n.name,
            "--network",
            self.spec.network,
            "--network-alias",
            n.name,
            "--ip",
            self.address(n.name),
            "--label",
            f"{LABEL}={self.spec.name}",
            "--label",
            f"haflow.chaos.node={n.name}",
            "--label",
            f"haflow.chaos.role={n.role}",
            "--tmpfs",
            "/tmp:rw,mode=1777",
            "-v",
            "/data",
            "--stop-timeout",
            "10",
        ]
        if n.user:
            args += ["--user", n.user]
        if self.spec.on_images:  # the harness watches the nodes itself
            args.append("--no-healthcheck")
        for host, inside, mode in [*specs.common_mounts(self.spec), *n.mounts]:
            args += ["-v", f"{host}:{inside}:{mode}"]
        for key, value in n.env.items():
            args += ["-e", f"{key}={value}"]
        return [*args, image, *n.argv]

    def _run(self, n: NodeDef, image: str) -> None:
        self.docker.run(*self.run_args(n, image))

    def _wait_servers(self, deadline: float) -> None:
        zk = [n.name for n in self.nodes() if n.role == "zookeeper"]
        _wait("the ZooKeeper ensemble to form", deadline, lambda: all(self.zk_mode(z) for z in zk))
        _wait("PostgreSQL to accept writes", deadline, lambda: self._pg_ready())
        if self.spec.ha_metastore:
            members = self.metastore_addresses()
            _wait(
                "a synchronous standby",
                deadline,
                lambda: patroni.replicating(patroni.view(members)),
            )
        if self.spec.ha_broker:
            self._form_rabbitmq_cluster(deadline)
        else:
            _wait(
                "the broker (Redis) to answer",
                deadline,
                lambda: _redis_ping(self.address("broker")),
            )

    def _form_rabbitmq_cluster(self, deadline: float) -> None:
        """Join every RabbitMQ node to the first, one at a time (nodes started together can
        each form a cluster of their own), and wait until all run in one cluster."""
        first, *others = self.spec.broker_nodes
        for node in self.spec.broker_nodes:
            up = functools.partial(rabbitmq.answers, self.docker, self.spec.container(node))
            _wait(f"RabbitMQ on {node}", deadline, up)
        for node in others:
            for step in (["stop_app"], ["join_cluster", f"rabbit@{first}"], ["start_app"]):
                rabbitmq.ctl(self.docker, self.spec.container(node), *step)
        container = self.spec.container(first)
        _wait(
            "the RabbitMQ cluster to run on every node",
            deadline,
            lambda: rabbitmq.running_nodes(self.docker, container) == set(self.spec.broker_nodes),
        )

    def _pg_ready(self) -> bool:
        return server_ready(self.metastore_url("postgres"))

    def _prepare_metastore(self, deadline: float) -> None:
        ensure_database(self.metastore_url("postgres"), "haflow")
        migrate(self.repo().engine)

    def wait_serving(self, deadline: float) -> None:
        """Wait for a leader, every worker's heartbeat and (with webservers) haproxy."""
        ready = (lambda: http_ok(self.web_url("/ready"))) if self.web else None  # no lb without
        wait_serving(self.nodes(), self.repo, deadline, ready)

    # -- status, logs, down -----------------------------------------------------------------

    def container_states(self) -> dict[str, str]:
        names = [self.spec.container(n.name) for n in self.nodes()]
        found = {d["Name"].lstrip("/"): d for d in self.docker.inspect(*names)}
        out = {}
        for n in self.nodes():
            d = found.get(self.spec.container(n.name))
            out[n.name] = "missing" if d is None else container_state(d)
        return out

    def status(self) -> ClusterStatus:
        states = self.container_states()
        notes: list[str] = []
        leader = None
        schedulers: dict[str, str] = {}
        if any(states.get(n) == "running" for n in self.spec.metastore_nodes):
            try:
                leader = self.repo().leadership.current()
                schedulers = _scheduler_states(self.repo())
            except HaflowError as exc:
                notes.append(f"metastore not readable: {exc}")
        rows = [
            NodeStatus(
                n.name,
                n.role,
                states[n.name],
                self.address(n.name),
                self._detail(n, states[n.name], schedulers),
            )
            for n in self.nodes()
        ]
        return ClusterStatus(
            self.spec.name,
            rows,
            leader.holder.split(":", 1)[0] if leader else None,
            leader.epoch if leader else None,
            leader.elector_mode if leader else None,
            notes,
        )

    def _detail(self, n: NodeDef, state: str, schedulers: dict[str, str]) -> str:
        if state != "running":
            return ""
        if n.role == "zookeeper":
            return self.zk_mode(n.name) or "not serving"
        if n.role == "master":
            return f"scheduler {schedulers.get(n.name, 'unknown')}"
        return ""

    def zk_mode(self, node: str) -> str:
        """`leader`, `follower` or `standalone` when the member serves, else ""."""
        return zk_member_mode(self.address(node))

    def logs(self, node: str, tail: int = 200) -> str:
        self.node(node)
        return self.docker.run("logs", "--tail", str(tail), self.spec.container(node))

    def down(self, progress: Progress = _quiet) -> None:
        """Remove every container (with its data volume) and the network of the cluster.
        The state folder (fault log, records) is kept as evidence."""
        self.close()
        label = f"{LABEL}={self.spec.name}"
        containers = self.docker.names("container", label)
        if containers:
            self.docker.run("rm", "-f", "-v", *containers, timeout_s=120)
        for net in self.docker.names("network", label):
            self.docker.run("network", "rm", net)
        progress(f"removed {len(containers)} containers of cluster {self.spec.name!r}")


def wait_serving(
    nodes: list[NodeDef],
    repo: Callable[[], Repository],
    deadline: float,
    web_ready: Callable[[], bool] | None = None,
    logs: str = "haflow cluster logs NODE",
) -> None:
    """Wait for a leader, the schedulers of every master node (one leading), every worker's
    heartbeat and, given `web_ready`, the web entry point; ClusterError past `deadline`,
    pointing at the `logs` command."""

    def leader_row() -> Any:
        with contextlib.suppress(HaflowError):
            return repo().leadership.current()
        return None

    def schedulers_settled(masters: set[str]) -> bool:
        try:
            states = _scheduler_states(repo())
        except HaflowError:
            return False
        live = {n for n, s in states.items() if s in ("leader", "standby")}
        return masters <= live and "leader" in states.values()

    def live_workers() -> set[str]:
        now = utcnow()
        try:
            rows = repo().members.workers()
        except HaflowError:
            return set()
        return {
            w["id"]
            for w in rows
            if w["state"] != "stopped" and (now - w["heartbeat_at"]).total_seconds() < 5
        }

    _wait("a leader to be elected", deadline, lambda: leader_row() is not None, logs)
    masters = {n.name for n in nodes if n.role == "master"}
    _wait(
        f"schedulers of {sorted(masters)} to heartbeat, one as leader",
        deadline,
        lambda: schedulers_settled(masters),
        logs,
    )
    workers = {n.name for n in nodes if n.role == "worker"}
    live = lambda: workers <= live_workers()  # noqa: E731
    _wait(f"workers {sorted(workers)} to heartbeat", deadline, live, logs)
    if web_ready is not None:
        _wait("haproxy to serve /ready", deadline, web_ready, logs)


def zk_member_mode(address: str) -> str:
    """A ZooKeeper member's `srvr` mode: `leader`, `follower` or `standalone` when it serves,
    else ""."""
    try:
        with socket.create_connection((address, 2181), timeout=1) as s:
            s.sendall(b"srvr")
            data = s.recv(4096).decode(errors="replace")
    except OSError:
        return ""
    for line in data.splitlines():
        if line.startswith("Mode:"):
            return line.split(":", 1)[1].strip()
    return ""


def down_by_name(name: str, docker: Docker | None = None) -> int:
    """Remove a cluster's containers and network by label alone (no state folder needed)."""
    d = docker or Docker()
    containers = d.names("container", f"{LABEL}={name}")
    if containers:
        d.run("rm", "-f", "-v", *containers, timeout_s=120)
    for net in d.names("network", f"{LABEL}={name}"):
        d.run("network", "rm", net)
    return len(containers)


def container_state(d: dict[str, Any]) -> str:
    """A container's state from its `docker inspect`: running, paused, exited, ..."""
    s = d.get("State") or {}
    if s.get("Paused"):
        return "paused"
    return str(s.get("Status", "unknown"))


def _scheduler_states(repo: Repository) -> dict[str, str]:
    out: dict[str, str] = {}
    now = utcnow()
    for s in repo.members.schedulers():
        node = str(s["id"]).split(":", 1)[0]
        alive = (now - s["heartbeat_at"]).total_seconds() < 10
        if alive and s["state"] != "stopped":
            out[node] = str(s["state"])
        else:
            out.setdefault(node, "dead" if s["state"] != "stopped" else "stopped")
    return out


def _has_webserver() -> bool:
    """Whether this haflow has a `webserver` command (`haflow webserver --help` works)."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "haflow.cli.main", "webserver", "--help"],
            capture_output=True,
            timeout=60,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


def _redis_ping(host: str) -> bool:
    try:
        with socket.create_connection((host, 6379), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def http_ok(url: str, tls: ssl.SSLContext | None = None) -> bool:
    """Whether GET `url` answers 200 within 2 s."""
    try:
        with urllib.request.urlopen(url, timeout=2, context=tls) as resp:
            return int(resp.status) == 200
    except OSError:
        return False


def _wait(
    what: str, deadline: float, check: Callable[[], bool], logs: str = "haflow cluster logs NODE"
) -> None:
    while True:
        if check():
            return
        if time.monotonic() > deadline:
            raise ClusterError(f"timed out waiting for {what}; see `{logs}`")
        time.sleep(0.3)


@contextlib.contextmanager
def running(spec: ClusterSpec, progress: Progress = _quiet) -> Iterator[Cluster]:
    """A cluster that is up for the `with` block and removed after it, even on failure."""
    cluster = Cluster(spec)
    try:
        cluster.up(progress)
        yield cluster
    finally:
        try:
            cluster.down(progress)
        except DockerError as exc:
            progress(f"could not remove cluster {spec.name!r}: {exc}")
