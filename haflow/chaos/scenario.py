"""Chaos scenarios: a workload, a fault schedule and the properties to judge, run on a real
cluster, repeated, and judged once over the whole recorded history.

A scenario file in `chaos/scenarios/` defines `SCENARIO = Scenario(...)`; its `schedule`
receives a `Drill` (the cluster, its fault library, and bounded waits) and injects one round of
faults. Between rounds the drill restores the cluster to steady state (every node up, every
scheduler a live candidate), so each round starts alike.
"""

from __future__ import annotations

import importlib.util
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException

from haflow.chaos.checker import Bounds, Verdict, check
from haflow.chaos.cluster import Cluster, ClusterError, running
from haflow.chaos.faults import Faults
from haflow.chaos.history import collect
from haflow.chaos.spec import ClusterSpec
from haflow.core.clock import utcnow
from haflow.election.zookeeper import election_path
from haflow.errors import HaflowError

SCENARIO_DIR = Path(__file__).resolve().parents[2] / "chaos" / "scenarios"
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Scenario:
    """`dags` maps DAG file names to their source; `schedule` runs one round of faults."""

    name: str
    description: str
    properties: tuple[str, ...]
    schedule: Callable[[Drill], None]
    dags: dict[str, str] = field(default_factory=dict)
    masters: int = 2
    workers: int = 2
    webserver: bool | None = False
    settings: dict[str, str] = field(default_factory=dict)
    bounds: Bounds = field(default_factory=Bounds)
    settle_s: float = 120.0


class Drill:
    """One scenario's hands on the cluster: faults, the workload, bounded waits."""

    def __init__(self, cluster: Cluster, rng: random.Random, progress: Progress) -> None:
        self.cluster = cluster
        self.faults = Faults(cluster)
        self.rng = rng
        self.say = progress

    @property
    def repo(self) -> Any:
        return self.cluster.repo()

    def wait(self, what: str, check: Callable[[], Any], timeout_s: float) -> Any:
        """Poll `check` until it returns something truthy (returned); ClusterError on timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                found = check()
            except HaflowError:
                found = None
            if found:
                return found
            time.sleep(0.1)
        raise ClusterError(f"timed out after {timeout_s} s waiting for {what}")

    # -- leadership -------------------------------------------------------------------------

    def leader(self) -> tuple[str, int]:
        """(node, epoch) of the current leader, from the metastore's leader row."""
        row = self.wait("a leader", self.repo.leader, 60)
        return str(row.holder).split(":", 1)[0], int(row.epoch)

    def wait_new_leader(self, after_epoch: int, timeout_s: float = 60) -> tuple[str, int]:
        def newer() -> Any:
            row = self.repo.leader()
            return row if row is not None and row.epoch > after_epoch else None

        row = self.wait(f"a leader after epoch {after_epoch}", newer, timeout_s)
        return str(row.holder).split(":", 1)[0], int(row.epoch)

    # -- workload ---------------------------------------------------------------------------

    def trigger(self, dag_id: str, runs: int = 1) -> list[str]:
        self.wait(f"DAG {dag_id} to be parsed", lambda: self.repo.dag(dag_id), 60)
        return [
            self.repo.trigger_run(
                dag_id, {}, utcnow(), run_id=f"chaos__{utcnow().isoformat()}"
            ).run_id
            for _ in range(runs)
        ]

    def attempt_running_on(self, worker: str, timeout_s: float = 60) -> Any:
        def found() -> Any:
            return next(
                (
                    a
                    for a in self.repo.running_attempts()
                    if a.state == "running" and a.worker_id == worker
                ),
                None,
            )

        return self.wait(f"an attempt running on {worker}", found, timeout_s)

    def wait_runs_done(self, timeout_s: float) -> None:
        def done() -> bool:
            runs = self.repo.runs(limit=10_000)
            return bool(runs) and all(r.state in ("success", "failed") for r in runs)

        self.wait("every run to finish", done, timeout_s)

    # -- steady state -----------------------------------------------------------------------

    def restore(self, timeout_s: float = 120) -> None:
        """Bring every node back (resume, heal, restart) and wait for steady state."""
        for node, state in self.cluster.container_states().items():
            if state == "paused":
                self.faults.resume(node)
            if state in ("exited", "dead", "created"):
                self.faults.restart(node)
        for fault in self._partitioned():
            self.faults.heal(fault)
        self.cluster.wait_serving(time.monotonic() + timeout_s)
        self.wait("every master a live candidate", self._candidates_complete, timeout_s)

    def _partitioned(self) -> list[str]:
        cut: set[str] = set()
        for f in _read_faults(self.cluster):
            if f.action == "partition":
                cut.add(f.node)
            elif f.action in ("heal",):
                cut.discard(f.node)
        return sorted(cut)

    def _candidates_complete(self) -> bool:
        """Each master's scheduler heartbeats, and ZooKeeper holds exactly one candidate per
        master (a killed leader's stale session has expired, so the next kill is a clean one)."""
        masters = {n.name for n in self.cluster.nodes() if n.role == "master"}
        now = utcnow()
        live = [
            str(s["id"]).split(":", 1)[0]
            for s in self.repo.schedulers()
            if s["state"] in ("leader", "standby") and (now - s["heartbeat_at"]).total_seconds() < 3
        ]
        if sorted(live) != sorted(masters):
            return False
        hosts = ",".join(
            f"{self.cluster.address(n.name)}:2181"
            for n in self.cluster.nodes()
            if n.role == "zookeeper"
        )
        zk = KazooClient(hosts=hosts, timeout=5)
        try:
            zk.start(timeout=5)
            return len(zk.get_children(election_path(self.cluster.spec.name))) == len(masters)
        except (KazooException, OSError, HaflowError):
            return False
        finally:
            zk.stop()
            zk.close()


def _read_faults(cluster: Cluster) -> list[Any]:
    from haflow.chaos.faults import read_fault_log

    return read_fault_log(cluster.fault_log)


@dataclass(frozen=True)
class Outcome:
    """The verdicts over all rounds; `aborted` names each round whose schedule or settling
    timed out (the history is judged all the same: a stuck cluster is evidence too)."""

    scenario: str
    repeats: int
    verdicts: list[Verdict]
    seconds: float
    aborted: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.aborted and all(v.ok for v in self.verdicts)


def spec_for(sc: Scenario, name: str, state_root: Path | None) -> ClusterSpec:
    base = ClusterSpec(
        name=name,
        masters=sc.masters,
        workers=sc.workers,
        webserver=sc.webserver,
        settings=dict(sc.settings),
    )
    return base if state_root is None else replace(base, state_root=state_root)


def run_scenario(
    sc: Scenario,
    *,
    repeat: int = 1,
    seed: int = 0,
    name: str | None = None,
    state_root: Path | None = None,
    progress: Progress = lambda _m: None,
) -> Outcome:
    """Bring a cluster up, run `repeat` rounds of `sc`, judge the history, tear it down."""
    started = time.monotonic()
    spec = spec_for(sc, name or f"chaos-{sc.name}", state_root)
    spec.state_dir.mkdir(parents=True, exist_ok=True)
    (spec.state_dir / "faults.jsonl").unlink(missing_ok=True)
    _clear_records(spec.state_dir)
    _install_dags(spec, sc.dags)
    aborted: list[str] = []
    with running(spec, progress) as cluster:
        drill = Drill(cluster, random.Random(seed), progress)
        for i in range(repeat):
            progress(f"round {i + 1}/{repeat}")
            try:
                sc.schedule(drill)
            except ClusterError as exc:
                aborted.append(f"round {i + 1}: {exc}")
                progress(f"round {i + 1} aborted: {exc}")
                drill.restore()
            try:
                drill.wait_runs_done(sc.settle_s)
            except ClusterError as exc:
                aborted.append(f"round {i + 1}: {exc}")
            drill.restore()
        verdicts = check(collect(cluster), sc.properties, sc.bounds)
    return Outcome(sc.name, repeat, verdicts, time.monotonic() - started, aborted)


def _install_dags(spec: ClusterSpec, dags: dict[str, str]) -> None:
    folder = spec.state_dir / "dags"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.py"):
        old.unlink()
    for filename, source in dags.items():
        (folder / filename).write_text(source)


def _clear_records(state_dir: Path) -> None:
    for path in state_dir.glob("records/*/*.jsonl"):
        path.unlink()
    (state_dir / "requests.jsonl").unlink(missing_ok=True)


def load_scenario(name_or_path: str, folder: Path = SCENARIO_DIR) -> Scenario:
    """The SCENARIO of `chaos/scenarios/<name>.py` (dashes or underscores), or of a path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = folder / (name_or_path.replace("-", "_") + ".py")
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in folder.glob("*.py") if not p.stem.startswith("_")))
        raise ClusterError(f"no scenario {name_or_path!r} ({path}); known: {known}")
    module_spec = importlib.util.spec_from_file_location(f"chaos_scenario_{path.stem}", path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    scenario = getattr(module, "SCENARIO", None)
    if not isinstance(scenario, Scenario):
        raise ClusterError(f"{path} defines no SCENARIO = Scenario(...)")
    return scenario


def scenario_names(folder: Path = SCENARIO_DIR) -> Sequence[str]:
    return sorted(p.stem for p in folder.glob("*.py") if not p.stem.startswith("_"))
