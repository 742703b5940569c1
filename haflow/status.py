"""The cluster as people see it: schedulers (leader or standby), workers, webservers, ZooKeeper.

Built from the metastore's heartbeat rows and the leader row only, so any node can answer; a
row whose heartbeat is older than the given age counts as dead whatever state it last wrote.
`haflow scheduler status`, `haflow workers list`, `/health`, the REST API and the Cluster page
all read this one view.
"""

from __future__ import annotations

import socket
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from haflow.config import Settings
from haflow.metastore.records import LeaderRow
from haflow.metastore.repository import Repository

WEBSERVER_HEARTBEAT_S = 10.0
WEBSERVER_MAX_AGE_S = 3 * WEBSERVER_HEARTBEAT_S


def liveness(state: str, age_s: float, max_age_s: float) -> str:
    """A heartbeat row's effective state: as written, "stopped", or "dead" when too old."""
    if state == "stopped":
        return "stopped"
    return state if age_s <= max_age_s else "dead"


@dataclass(frozen=True)
class SchedulerView:
    scheduler: str
    hostname: str
    pid: int
    role: str
    epoch: int | None
    elector_mode: str
    heartbeat_age_s: float
    heartbeat_at: datetime
    started_at: datetime


@dataclass(frozen=True)
class Leadership:
    cluster: str
    leader: SchedulerView | None
    epoch: int | None
    schedulers: list[SchedulerView]

    def as_dict(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "leader": self.leader.scheduler if self.leader else None,
            "epoch": self.epoch,
            "elector_mode": self.leader.elector_mode if self.leader else None,
            "leader_heartbeat_age_s": self.leader.heartbeat_age_s if self.leader else None,
            "schedulers": [asdict(s) for s in self.schedulers],
        }


def leadership(repo: Repository, now: datetime, max_age_s: float) -> Leadership:
    """Who leads: the live scheduler whose row holds the leader row's current epoch."""
    row: LeaderRow | None = repo.leadership.current()
    views = []
    for s in repo.members.schedulers():
        age = (now - s["heartbeat_at"]).total_seconds()
        views.append(
            SchedulerView(
                scheduler=s["id"],
                hostname=s["hostname"],
                pid=s["pid"],
                role=liveness(s["state"], age, max_age_s),
                epoch=s["epoch"],
                elector_mode=s["elector_mode"],
                heartbeat_age_s=round(age, 1),
                heartbeat_at=s["heartbeat_at"],
                started_at=s["started_at"],
            )
        )
    live = [v for v in views if v.role == "leader" and row is not None and v.epoch == row.epoch]
    return Leadership(repo.cluster, live[0] if live else None, row.epoch if row else None, views)


def workers(repo: Repository, now: datetime, max_age_s: float) -> list[dict[str, Any]]:
    running: dict[str, int] = {}
    for a in repo.history.running_attempts():
        if a.state == "running" and a.worker_id:
            running[a.worker_id] = running.get(a.worker_id, 0) + 1
    rows = []
    for w in repo.members.workers():
        age = (now - w["heartbeat_at"]).total_seconds()
        rows.append(
            {
                "worker": w["id"],
                "kind": w["kind"],
                "state": liveness(w["state"], age, max_age_s),
                "queues": w["queues"],
                "concurrency": w["concurrency"],
                "running": running.get(w["id"], 0),
                "heartbeat_age_s": round(age, 1),
                "hostname": w["hostname"],
                "started_at": w["started_at"],
            }
        )
    return rows


def webservers(repo: Repository, now: datetime, max_age_s: float) -> list[dict[str, Any]]:
    rows = []
    for w in repo.members.webservers():
        age = (now - w.heartbeat_at).total_seconds()
        rows.append(
            {
                "webserver": w.id,
                "hostname": w.hostname,
                "port": w.port,
                "state": liveness("running", age, max_age_s),
                "heartbeat_age_s": round(age, 1),
                "secret_fingerprint": w.secret_fingerprint[:12],
                "started_at": w.started_at,
            }
        )
    return rows


def zookeeper_members(hosts: str, timeout_s: float = 0.5) -> list[dict[str, str]]:
    """Each member of the connect string and its mode (leader, follower, ...) from `srvr`."""
    servers = [s.strip() for s in hosts.split("/", 1)[0].split(",") if s.strip()]
    return [{"member": s, "mode": _zk_mode(s, timeout_s)} for s in servers]


def _zk_mode(server: str, timeout_s: float) -> str:
    host, _, port = server.rpartition(":")
    try:
        with socket.create_connection((host or server, int(port or 2181)), timeout_s) as sock:
            sock.sendall(b"srvr")
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
    except (OSError, ValueError) as exc:
        return f"unreachable ({exc})"
    for line in data.decode("utf-8", "replace").splitlines():
        if line.startswith("Mode:"):
            return line.split(":", 1)[1].strip()
    return "running (srvr not allowed)" if data else "no answer"


def overview(repo: Repository, settings: Settings, now: datetime) -> dict[str, Any]:
    """The whole cluster: leadership, workers, webservers and the ZooKeeper members."""
    lead = leadership(repo, now, settings.webserver.scheduler_health_threshold)
    hosts = settings.election.zk_hosts
    return {
        **lead.as_dict(),
        "election_mode": settings.election.mode,
        "workers": workers(repo, now, settings.worker.timeout),
        "webservers": webservers(repo, now, WEBSERVER_MAX_AGE_S),
        "zookeeper": zookeeper_members(hosts) if hosts else [],
    }
