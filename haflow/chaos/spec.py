"""What a chaos cluster is made of: one typed spec, and from it each node's container definition
and the configuration files the nodes read (ZooKeeper, haproxy). No docker calls here.

Nodes: `zk1..zkN` (a ZooKeeper ensemble), `postgres` (the metastore; with `ha_metastore`,
`pg1` and `pg2` instead: PostgreSQL under Patroni, deploy/patroni, its primary elected in the
cluster's ZooKeeper, a synchronous standby), `broker` (Redis; with `ha_broker`, `mq1..mq3`
instead: a RabbitMQ cluster whose queues are quorum queues), `master1..N` (scheduler, and
webserver when `haflow webserver` exists), `worker1..N` (`haflow worker`), `lb` (haproxy in
front of the masters' webservers), and with `receiver` a `receiver` node recording the webhook
deliveries (`haflow.chaos.receiver`).

Two runtimes (`ClusterSpec.runtime`). `images` (the default in a checkout): each node runs the
image users deploy, built here by deploy/local/build-images.sh (`haflow:local` for masters,
workers and the receiver; `haflow-local/zookeeper`, `-postgres`, `-redis`, `-haproxy` for the
servers), as the image's own user, with only the configuration bind-mounted. `host` (the
fallback, and the only one for an installed haflow without deploy/): a skeleton image that
bind-mounts the host's `/usr`, `/etc` and this virtualenv (haflow.chaos.image).
"""

from __future__ import annotations

import glob
import os
import pwd
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import haflow
from haflow.chaos.receiver import DELIVERIES_FILE
from haflow.chaos.receiver import PORT as RECEIVER_PORT
from haflow.config.schema import DEFAULT_TASK_ENV

PROJECT = Path(haflow.__file__).resolve().parents[1]
DEFAULT_STATE_ROOT = Path("/tmp/haflow-chaos")
ZK_CLASSPATH = ":".join(
    f"/usr/share/java/{jar}" for jar in ("zookeeper.jar", "slf4j-log4j12.jar", "log4j-1.2.jar")
)
LOG4J = "log4j.rootLogger=INFO, C\nlog4j.appender.C=org.apache.log4j.ConsoleAppender\n"
LOG4J += "log4j.appender.C.layout=org.apache.log4j.PatternLayout\n"
LOG4J += "log4j.appender.C.layout.ConversionPattern=%d{ISO8601} %-5p [%t] %m%n\n"
WEB_PORT = 8080
RECORDS_FILE = "records.jsonl"
RUNTIMES = ("images", "host")
BUILD_IMAGES = PROJECT / "deploy" / "local" / "build-images.sh"


def default_runtime() -> str:
    """$HAFLOW_CHAOS_RUNTIME, else `images` in a checkout (which has deploy/), else `host`."""
    chosen = os.environ.get("HAFLOW_CHAOS_RUNTIME", "")
    if chosen:
        if chosen not in RUNTIMES:
            raise ValueError(f"HAFLOW_CHAOS_RUNTIME={chosen!r}: choose one of {RUNTIMES}")
        return chosen
    return "images" if BUILD_IMAGES.is_file() else "host"


@dataclass(frozen=True)
class ClusterSpec:
    """A named cluster. `settings` are extra `HAFLOW__SECTION__KEY` values for masters and
    workers (the defaults of haflow.cfg apply otherwise); `webserver` None means: run it when
    this haflow has a `webserver` command."""

    name: str = "chaos"
    masters: int = 2
    workers: int = 2
    zookeepers: int = 3
    worker_concurrency: int = 2
    webserver: bool | None = None
    settings: dict[str, str] = field(default_factory=dict)
    state_root: Path = DEFAULT_STATE_ROOT
    boot_timeout_s: float = 180.0
    receiver: bool = False
    runtime: str = field(default_factory=default_runtime)
    ha_metastore: bool = False
    ha_broker: bool = False

    def __post_init__(self) -> None:
        if (self.ha_metastore or self.ha_broker) and not self.on_images:
            raise ValueError(
                "an HA metastore (Patroni) or broker (a RabbitMQ cluster) runs on the deployed "
                "images only (HAFLOW_CHAOS_RUNTIME=images)"
            )

    @property
    def on_images(self) -> bool:
        return self.runtime == "images"

    @property
    def broker_nodes(self) -> list[str]:
        """The broker's servers: `broker` (Redis), or the RabbitMQ cluster's nodes."""
        return list(RABBITMQ_NODES) if self.ha_broker else ["broker"]

    @property
    def metastore_nodes(self) -> list[str]:
        """The metastore's servers: `postgres`, or the Patroni members."""
        return list(PATRONI_MEMBERS) if self.ha_metastore else ["postgres"]

    @property
    def state_dir(self) -> Path:
        return self.state_root / self.name

    @property
    def network(self) -> str:
        return f"haflow-chaos-{self.name}"

    def container(self, node: str) -> str:
        return f"{self.name}-{node}"

    def dags_folder(self, master: str) -> Path:
        """Master `master`'s own DAGs folder (workers have none: they run the metastore's
        code versions)."""
        return self.state_dir / "dags" / master

    def dags_folders(self) -> list[Path]:
        return [self.dags_folder(f"master{i}") for i in range(1, self.masters + 1)]

    def node_names(self) -> list[str]:
        return [n.name for n in nodes(self, web=False)]


@dataclass(frozen=True)
class NodeDef:
    """One container: its name on the network, role, command, user (empty: the image's own)
    and extra mounts."""

    name: str
    role: str
    argv: tuple[str, ...]
    user: str
    env: dict[str, str] = field(default_factory=dict)
    mounts: tuple[tuple[str, str, str], ...] = ()  # (host path, container path, ro|rw)


RABBITMQ_NODES = ("mq1", "mq2", "mq3")
MQ_PASSWORD = "chaos-not-a-secret"
ERLANG_COOKIE = "haflowchaosnotasecretcookie"
"""The RabbitMQ nodes' shared Erlang cookie: what lets them form one cluster."""
PATRONI_MEMBERS = ("pg1", "pg2")
PG_PASSWORD = "chaos-not-a-secret"
"""The Patroni members' superuser password (they take none without; `postgres` trusts all)."""


def metastore_url(hosts: Sequence[str] = ("postgres",), db: str = "haflow") -> str:
    """The metastore URL on `hosts`: one server, or every Patroni member in one libpq
    multi-host URL that keeps the member accepting writes (docs/design.md section 16)."""
    if len(hosts) == 1:
        return f"postgresql://postgres:{PG_PASSWORD}@{hosts[0]}:5432/{db}"
    listed = "&".join(f"host={h}:5432" for h in hosts)
    return f"postgresql://postgres:{PG_PASSWORD}@/{db}?{listed}&target_session_attrs=read-write"


def zk_hosts(spec: ClusterSpec) -> str:
    return ",".join(f"zk{i}:2181" for i in range(1, spec.zookeepers + 1))


def nodes(spec: ClusterSpec, web: bool) -> list[NodeDef]:
    """Every node of `spec`, in start order (servers first); `web`: masters run a webserver."""
    out = [_zookeeper(spec, i) for i in range(1, spec.zookeepers + 1)]
    if spec.ha_metastore:
        out += [_patroni(spec, name) for name in PATRONI_MEMBERS]
    else:
        out.append(_postgres(spec))
    out += [_rabbitmq(name) for name in RABBITMQ_NODES] if spec.ha_broker else [_broker(spec)]
    out += [_master(spec, i, web) for i in range(1, spec.masters + 1)]
    out += [_worker(spec, i) for i in range(1, spec.workers + 1)]
    if spec.receiver:
        out.append(_receiver(spec))
    if web:
        out.append(_lb(spec))
    return out


def _user(spec: ClusterSpec, user: str) -> str:
    """On images, the image's own user (empty); on the host runtime, `user`'s uid:gid here."""
    if spec.on_images:
        return ""
    entry = pwd.getpwnam(user)
    return f"{entry.pw_uid}:{entry.pw_gid}"


def _python(spec: ClusterSpec) -> str:
    return "python" if spec.on_images else f"{sys.prefix}/bin/python"


def _zookeeper(spec: ClusterSpec, i: int) -> NodeDef:
    java = (
        "exec java -Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 "
        "-Dlog4j.configuration=file:/conf/log4j.properties -Dzookeeper.snapshot.trust.empty=true "
        f"-cp {ZK_CLASSPATH} org.apache.zookeeper.server.quorum.QuorumPeerMain /conf/zoo.cfg"
    )
    script = f"mkdir -p /data/zk && echo {i} > /data/zk/myid && {java}"
    return NodeDef(f"zk{i}", "zookeeper", ("sh", "-c", script), _user(spec, "nobody"))


def _pg_bin(spec: ClusterSpec) -> str:
    found = [] if spec.on_images else sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    return str(Path(found[-1]).parent) if found else "/usr/lib/postgresql/15/bin"


def _postgres(spec: ClusterSpec) -> NodeDef:
    pg = _pg_bin(spec)
    script = (
        f"if [ ! -s /data/pg/PG_VERSION ]; then {pg}/initdb -D /data/pg -U postgres "
        "--auth=trust -E UTF8 >/dev/null && echo 'host all all 0.0.0.0/0 trust' "
        f">> /data/pg/pg_hba.conf; fi; exec {pg}/postgres -D /data/pg "
        "-c listen_addresses='*' -c unix_socket_directories=/tmp -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200 "
        "-c track_commit_timestamp=on"
    )
    return NodeDef("postgres", "postgres", ("sh", "-c", script), _user(spec, "postgres"))


def _patroni(spec: ClusterSpec, name: str) -> NodeDef:
    """A Patroni member, configured as deploy/patroni/patroni-entrypoint reads it (its argv is
    the image's entry point's); commit times tracked, for the checker."""
    env = {
        "PATRONI_NAME": name,
        "PATRONI_HOST": name,
        "PATRONI_ZK_HOSTS": zk_hosts(spec),
        "PATRONI_NAMESPACE": f"/haflow/{spec.name}/patroni",
        "PATRONI_PG_PARAMETERS": "track_commit_timestamp=on",
        "POSTGRES_USER": "postgres",
        "POSTGRES_DB": "haflow",
        "POSTGRES_PASSWORD_FILE": "/conf/postgres_password",
    }
    return NodeDef(name, "patroni", (), "", env)


def broker_url(spec: ClusterSpec) -> str:
    """Redis, or every RabbitMQ node in Celery's failover list (`;`-separated)."""
    if not spec.ha_broker:
        return "redis://broker:6379/0"
    return ";".join(f"amqp://haflow:{MQ_PASSWORD}@{n}:5672//" for n in RABBITMQ_NODES)


def _rabbitmq(name: str) -> NodeDef:
    """A RabbitMQ node (the deployed image) named rabbit@<name>; the cluster forms when the
    harness joins mq2 and mq3 to mq1 (haflow.chaos.cluster)."""
    cookie = '"$HOME/.erlang.cookie"'  # the package's own is read-only: replaced, not written
    script = (
        f"rm -f {cookie} && umask 077 && printf %s {ERLANG_COOKIE} > {cookie} && "
        f"chmod 0400 {cookie} && exec rabbitmq-server"
    )
    env = {"RABBITMQ_CONFIG_FILES": "/conf/rabbitmq.d", "RABBITMQ_NODENAME": f"rabbit@{name}"}
    return NodeDef(name, "rabbitmq", ("sh", "-c", script), "", env)


def rabbitmq_conf() -> str:
    return "\n".join(
        [
            "loopback_users = none",
            "default_user = haflow",
            f"default_pass = {MQ_PASSWORD}",
            # a node cut off from the majority stops serving rather than diverge
            "cluster_partition_handling = pause_minority",
            "",
        ]
    )


def _broker(spec: ClusterSpec) -> NodeDef:
    argv = (
        "redis-server",
        "--port",
        "6379",
        "--bind",
        "0.0.0.0",
        "--protected-mode",
        "no",
        "--dir",
        "/data",
        "--appendonly",
        "yes",
        "--save",
        "",
    )
    return NodeDef("broker", "broker", argv, _user(spec, "nobody"))


def receiver_url() -> str:
    """Where the receiver node takes webhooks, as the masters reach it."""
    return f"http://receiver:{RECEIVER_PORT}/hook"


def _receiver(spec: ClusterSpec) -> NodeDef:
    py = _python(spec)
    argv = (py, "-m", "haflow.chaos.receiver", str(RECEIVER_PORT), f"/records/{DELIVERIES_FILE}")
    mounts = ((str(spec.state_dir / "records" / "receiver"), "/records", "rw"),)
    return NodeDef("receiver", "receiver", argv, _user(spec, "nobody"), {}, mounts)


def _lb(spec: ClusterSpec) -> NodeDef:
    argv = ("haproxy", "-db", "-f", "/conf/haproxy.cfg")
    return NodeDef("lb", "lb", argv, _user(spec, "nobody"))


def haflow_env(spec: ClusterSpec, node: str) -> dict[str, str]:
    env = {
        "HAFLOW_HOME": "/data/home",
        "HOME": "/data",
        "HAFLOW__CORE__SQL_ALCHEMY_CONN": metastore_url(spec.metastore_nodes),
        "HAFLOW__CORE__EXECUTOR": "celery",
        "HAFLOW__CORE__DAGS_FOLDER": "/dags",
        "HAFLOW__CORE__HOSTNAME": node,
        "HAFLOW__CELERY__BROKER_URL": broker_url(spec),
        "HAFLOW__CELERY__QUEUE_TYPE": "quorum" if spec.ha_broker else "classic",
        "HAFLOW__SCHEDULER__CLUSTER": spec.name,
        "HAFLOW__ELECTION__MODE": "zookeeper",
        "HAFLOW__ELECTION__ZK_HOSTS": zk_hosts(spec),
        "HAFLOW__WEBSERVER__SECRET_KEY": f"chaos-{spec.name}-not-a-secret-but-32-bytes-long",
        "HAFLOW_CHAOS_NODE": node,
        "HAFLOW_CHAOS_RECORDS": f"/records/{RECORDS_FILE}",
        # the workload's tasks record their executions through these two (haflow.chaos.workload)
        "HAFLOW__WORKER__TASK_ENV_ALLOWLIST": f"{DEFAULT_TASK_ENV} HAFLOW_CHAOS_*",
    }
    if not spec.on_images:  # the image's own PATH has its Python first
        env["PATH"] = f"{Path(sys.prefix)}/bin:/usr/local/bin:/usr/bin:/bin"
    return {**env, **spec.settings}


def _master(spec: ClusterSpec, i: int, web: bool) -> NodeDef:
    name = f"master{i}"
    py = _python(spec)
    commands = [f"{py} -m haflow.cli.main scheduler"]
    if web:
        commands.append(f"{py} -m haflow.cli.main webserver --port {WEB_PORT} --workers 2")
    mounts = (
        (str(spec.dags_folder(name)), "/dags", "ro"),
        (str(spec.state_dir / "records" / name), "/records", "rw"),
    )
    argv = (py, "-m", "haflow.chaos.node", *commands)
    return NodeDef(name, "master", argv, _user(spec, "nobody"), haflow_env(spec, name), mounts)


def _worker(spec: ClusterSpec, i: int) -> NodeDef:
    name = f"worker{i}"
    py = _python(spec)
    argv = (py, "-m", "haflow.cli.main", "worker", "-n", name, "-c", str(spec.worker_concurrency))
    mounts = ((str(spec.state_dir / "records" / name), "/records", "rw"),)  # and no DAGs
    return NodeDef(name, "worker", argv, _user(spec, "nobody"), haflow_env(spec, name), mounts)


def common_mounts(spec: ClusterSpec) -> list[tuple[str, str, str]]:
    """The configuration; on the host runtime also the host's system, the project, its
    virtualenv and the interpreter it links to."""
    conf = (str(spec.state_dir / "conf"), "/conf", "ro")
    if spec.on_images:
        return [conf]
    paths = [Path("/usr"), Path("/etc"), PROJECT, Path(sys.prefix), Path(sys.base_prefix)]
    kept: list[Path] = []
    for p in paths:
        if not any(p == k or k in p.parents for k in kept):
            kept.append(p)
    mounts = [(str(p), str(p), "ro") for p in kept]
    return [*mounts, conf]


def zoo_cfg(spec: ClusterSpec) -> str:
    lines = [
        "tickTime=1000",
        "initLimit=20",
        "syncLimit=10",
        "minSessionTimeout=2000",
        "maxSessionTimeout=60000",
        "dataDir=/data/zk",
        "clientPort=2181",
        "quorumListenOnAllIPs=true",
        "4lw.commands.whitelist=*",
        "admin.enableServer=false",
        "forceSync=no",
        "maxClientCnxns=0",
    ]
    lines += [f"server.{i}=zk{i}:2888:3888" for i in range(1, spec.zookeepers + 1)]
    return "\n".join(lines) + "\n"


def haproxy_cfg(spec: ClusterSpec) -> str:
    servers = "\n".join(
        f"    server master{i} master{i}:{WEB_PORT} check" for i in range(1, spec.masters + 1)
    )
    return f"""\
global
    maxconn 512
defaults
    mode http
    timeout connect 1s
    timeout client 10s
    timeout server 10s
    retries 2
    option redispatch
    # a GET cut by the server's death (reset, empty reply) is sent again, to the other master
    retry-on all-retryable-errors
resolvers docker
    nameserver dns 127.0.0.11:53
    hold valid 1s
frontend web
    bind *:{WEB_PORT}
    default_backend masters
backend masters
    option httpchk GET /ready
    http-request disable-l7-retry if !METH_GET
    default-server inter 500ms fall 2 rise 2 init-addr last,libc,none resolvers docker
{servers}
"""


def write_config(spec: ClusterSpec) -> None:
    """The state folder: conf/ (read by nodes), dags/<master>/, records/<node>/ (written by
    tasks)."""
    conf = spec.state_dir / "conf"
    for folder in (conf, *spec.dags_folders()):
        folder.mkdir(parents=True, exist_ok=True)
    for node in nodes(spec, web=True):
        records = spec.state_dir / "records" / node.name
        records.mkdir(parents=True, exist_ok=True)
        records.chmod(0o1777)  # nodes run as nobody
    (conf / "zoo.cfg").write_text(zoo_cfg(spec))
    (conf / "postgres_password").write_text(PG_PASSWORD + "\n")
    (conf / "rabbitmq.d").mkdir(exist_ok=True)
    (conf / "rabbitmq.d" / "10-haflow.conf").write_text(rabbitmq_conf())
    (conf / "log4j.properties").write_text(LOG4J)
    (conf / "haproxy.cfg").write_text(haproxy_cfg(spec))
