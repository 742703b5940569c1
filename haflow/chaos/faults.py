"""Fault injection on a chaos cluster's nodes, as a library (used by `haflow chaos` and by the
scenarios alike). Every fault is appended to the cluster's fault log (JSON lines, UTC
timestamps taken just before the fault is injected) so the checker can judge from it.

- kill: a signal to the node's PID 1 (`docker kill`); SIGKILL takes the whole node down at once,
  SIGTERM asks its daemons to stop gracefully.
- pause / resume: freeze and thaw every process of the node (`docker pause`, the freezer cgroup).
- partition: cut the node off every peer (`docker network disconnect`: its interface is gone,
  peers' packets to it vanish without a reset), or off some peers only (DROP rules for their
  addresses in the node's own network namespace, entered from the host with nsenter).
- heal: undo a partition; the node comes back at the same address.
- restart: start a dead node again, or stop (gracefully) and start a live one.
- poison / cure: drop a DAG file into the DAGs folder every node shares (user input, not a node
  fault: logged on the pseudo-node `dags`), and remove it again.

The nodes are a `FaultTarget`: the harness's own cluster (`haflow.chaos.cluster.Cluster`) or an
operator's docker-compose deployment (`haflow.chaos.compose.ComposeTarget`), which differ in
how a node's container is named and how it is cut off and reconnected.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from haflow.chaos.cluster import ClusterError
from haflow.chaos.docker import Docker, DockerError
from haflow.chaos.model import OBSERVE, Fault

CHAIN = "HAFLOW_CHAOS"
ACTIONS = ("kill", "pause", "resume", "partition", "heal", "restart")
DAGS_NODE = "dags"
"""The pseudo-node that `poison` and `cure` are logged on: every master's DAGs folder."""


class FaultTarget(Protocol):
    """Nodes that faults can be injected into, each one container."""

    @property
    def docker(self) -> Docker: ...

    @property
    def fault_log(self) -> Path: ...

    def known(self, node: str) -> str:
        """`node`'s name; ClusterError naming the known nodes when there is no such node."""
        ...

    def container(self, node: str) -> str: ...

    def container_states(self) -> dict[str, str]:
        """Each node's container state: running, paused, exited, ..., missing."""
        ...

    def address(self, node: str) -> str: ...

    def isolate(self, node: str) -> None:
        """Detach `node`'s container from its networks."""
        ...

    def reconnect(self, node: str) -> bool:
        """Attach `node`'s container again where `isolate` took it from; whether it was
        detached."""
        ...

    def dags_folder(self, master: str) -> Path: ...

    def dags_folders(self) -> list[Path]: ...


class Faults:
    """Injects faults into `cluster`'s nodes and records each in its fault log."""

    def __init__(self, cluster: FaultTarget) -> None:
        self.cluster = cluster
        self.docker = cluster.docker

    # -- the faults -------------------------------------------------------------------------

    def kill(self, node: str, signal: str = "KILL") -> Fault:
        signal = signal.upper().removeprefix("SIG")
        return self._do("kill", node, {"signal": signal}, ["kill", "-s", signal])

    def pause(self, node: str, detail: dict[str, Any] | None = None) -> Fault:
        return self._do("pause", node, dict(detail or {}), ["pause"])

    def observe(self, node: str, what: str, detail: dict[str, Any]) -> Fault:
        """Record an observation of `node` (no fault is injected)."""
        started = _now()
        return self._record(Fault(started, OBSERVE, node, {"what": what, **detail}), started)

    def poison(self, filename: str, source: str) -> Fault:
        """Drop the DAG file `filename` into every master's DAGs folder."""
        started = _now()
        for folder in self.cluster.dags_folders():
            (folder / filename).write_text(source)
        return self._record(Fault(started, "poison", DAGS_NODE, {"file": filename}), started)

    def cure(self, filename: str) -> Fault:
        """Remove a file `poison` dropped."""
        started = _now()
        for folder in self.cluster.dags_folders():
            (folder / filename).unlink(missing_ok=True)
        return self._record(Fault(started, "cure", DAGS_NODE, {"file": filename}), started)

    def deploy(self, master: str, filename: str, source: str) -> Fault:
        """Write DAG file `filename` into master `master`'s folder alone: a deploy that
        reached one master (the others' folders are stale until theirs)."""
        started = _now()
        self._known(master)
        (self.cluster.dags_folder(master) / filename).write_text(source)
        return self._record(Fault(started, "deploy", master, {"file": filename}), started)

    def resume(self, node: str) -> Fault:
        return self._do("resume", node, {}, ["unpause"])

    def restart(self, node: str) -> Fault:
        node = self._known(node)
        state = self.cluster.container_states().get(node)
        if state == "paused":
            self.docker.run("unpause", self.cluster.container(node))
        verb = ["start"] if state in ("exited", "created", "dead") else ["restart", "-t", "10"]
        return self._do("restart", node, {"was": state}, verb)

    def partition(self, node: str, peers: Sequence[str] = ()) -> Fault:
        """Cut `node` off `peers` (both directions), or off every node when `peers` is empty."""
        node = self._known(node)
        if not peers:
            started = _now()
            self.cluster.isolate(node)
            return self._record(Fault(started, "partition", node, {"peers": []}), started)
        addresses = [self.cluster.address(self._known(p)) for p in peers]
        started = _now()
        self._ensure_chain(node)
        self._netns(node, _drop_rules(addresses))
        return self._record(Fault(started, "partition", node, {"peers": list(peers)}), started)

    def heal(self, node: str) -> Fault:
        """Reconnect `node` and remove any DROP rule placed in it."""
        node = self._known(node)
        started = _now()
        reconnected = self.cluster.reconnect(node)
        if self._running(node):
            self._netns(node, [["-F", CHAIN]], check=False)
        return self._record(Fault(started, "heal", node, {"reconnected": reconnected}), started)

    # -- helpers ----------------------------------------------------------------------------

    def _known(self, node: str) -> str:
        """`node`'s own name (`leader` and aliases resolved), which the fault log records."""
        return self.cluster.known(node)

    def _do(
        self,
        action: str,
        node: str,
        detail: dict[str, Any],
        verb: list[str],
    ) -> Fault:
        node = self._known(node)  # logged by its own name (an alias such as `broker` resolved)
        container = self.cluster.container(node)
        started = _now()
        self.docker.run(*verb, container, timeout_s=60)
        return self._record(Fault(started, action, node, detail), started)

    def _record(self, fault: Fault, started: datetime) -> Fault:
        took = (_now() - started).total_seconds()
        line = {
            "ts": fault.ts.isoformat(),
            "action": fault.action,
            "node": fault.node,
            "detail": {**fault.detail, "took_s": round(took, 4)},
        }
        self.cluster.fault_log.parent.mkdir(parents=True, exist_ok=True)
        with self.cluster.fault_log.open("a") as f:
            f.write(json.dumps(line) + "\n")
        return fault

    def _running(self, node: str) -> bool:
        return self.cluster.container_states().get(node) in ("running", "paused")

    def _pid(self, node: str) -> int:
        found = self.docker.inspect(self.cluster.container(node))
        pid = int(((found[0] if found else {}).get("State") or {}).get("Pid") or 0)
        if pid <= 0:
            raise ClusterError(f"node {node} is not running: cannot change its network rules")
        return pid

    def _ensure_chain(self, node: str) -> None:
        self._netns(node, [["-N", CHAIN]], check=False)  # fails harmlessly when it exists
        for hook in ("INPUT", "OUTPUT"):
            if not self._netns(node, [["-C", hook, "-j", CHAIN]], check=False):
                self._netns(node, [["-I", hook, "1", "-j", CHAIN]])

    def _netns(self, node: str, rules: list[list[str]], check: bool = True) -> bool:
        """Run iptables in `node`'s network namespace (from the host: the node has no
        privileges, and its /usr is the host's, read-only)."""
        base = ["nsenter", "-t", str(self._pid(node)), "-n", "iptables", "-w", "5"]
        ok = True
        for rule in rules:
            done = subprocess.run([*base, *rule], capture_output=True, timeout=30, check=False)
            ok = ok and done.returncode == 0
            if check and done.returncode != 0:
                said = done.stderr.decode(errors="replace").strip()
                raise DockerError(f"iptables {' '.join(rule)} in {node}'s namespace: {said}")
        return ok


def _drop_rules(addresses: Sequence[str]) -> list[list[str]]:
    """DROP each address both ways, in our own chain (hooked by `_ensure_chain`)."""
    return [
        *(["-A", CHAIN, "-s", a, "-j", "DROP"] for a in addresses),
        *(["-A", CHAIN, "-d", a, "-j", "DROP"] for a in addresses),
    ]


def _now() -> datetime:
    return datetime.now(UTC)


def read_fault_log(path: Any) -> list[Fault]:
    """The faults recorded in a fault log (JSON lines); an absent log holds none."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        if line.strip():
            d = json.loads(line)
            out.append(Fault(datetime.fromisoformat(d["ts"]), d["action"], d["node"], d["detail"]))
    return out


def wait_until(check: Any, timeout_s: float, interval_s: float = 0.2) -> bool:
    """Poll `check` until truthy or `timeout_s` passes; whether it became truthy."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval_s)
    return bool(check())
