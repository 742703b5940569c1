"""What a chaos cluster's RabbitMQ nodes say about themselves, through `rabbitmqctl` run in
their containers: one place for its command lines and the parsing of its answers."""

from __future__ import annotations

import json

from haflow.chaos.docker import Docker, DockerError


def ctl(docker: Docker, container: str, *args: str) -> str:
    """`rabbitmqctl -q ARGS` in `container`; its output (DockerError when it fails)."""
    return docker.exec(container, ["rabbitmqctl", "-q", *args])


def answers(docker: Docker, container: str) -> bool:
    """Whether the node in `container` has started (`await_startup` succeeds)."""
    try:
        ctl(docker, container, "await_startup")
    except DockerError:
        return False
    return True


def running_nodes(docker: Docker, container: str) -> set[str]:
    """The host names of the nodes running in the cluster the node in `container` is in
    (empty when it cannot say)."""
    try:
        running = json.loads(ctl(docker, container, "cluster_status", "--formatter", "json")).get(
            "running_nodes", []
        )
    except (DockerError, ValueError):
        return set()
    return {str(n).split("@", 1)[-1] for n in running}


def queue_leader(docker: Docker, container: str, queue: str) -> str | None:
    """The host name of the node leading quorum queue `queue` (its Raft leader), as the node
    in `container` sees it; None when it cannot say or the queue does not exist yet."""
    try:
        out = ctl(docker, container, "list_queues", "name", "leader", "--no-table-headers")
    except DockerError:
        return None
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == queue:
            return parts[1].split("@", 1)[-1]
    return None
