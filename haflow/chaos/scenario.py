"""Chaos scenarios: a workload, a fault schedule and the properties to judge, run on a real
cluster, repeated, and judged once over the whole recorded history.

A scenario file in `chaos/scenarios/` defines `SCENARIO = Scenario(...)`; its `schedule`
receives a `Drill` (the cluster, its fault library, and bounded waits) and injects one round of
faults. Between rounds the drill restores the cluster to steady state (every node up, every
scheduler a live candidate), so each round starts alike.

`run_scenario` brings a fresh harness cluster up for the scenario and removes it after;
`run_on_deployment` drills an operator's running compose deployment (a game day) and judges
only what happened from the drill's start, leaving the deployment as it found it.
"""

from __future__ import annotations

import importlib.util
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import timedelta
from pathlib import Path

from haflow.chaos.checker import Bounds, Status, Verdict, check
from haflow.chaos.cluster import ClusterError, running
from haflow.chaos.deployment import ComposeCluster
from haflow.chaos.drill import Drill
from haflow.chaos.history import collect, due_times
from haflow.chaos.model import History
from haflow.chaos.spec import ClusterSpec
from haflow.core.clock import utcnow
from haflow.errors import HaflowError

__all__ = [
    "Drill",
    "Outcome",
    "Scenario",
    "load_scenario",
    "refusal",
    "run_on_deployment",
    "run_scenario",
    "scenario_names",
]

SCENARIO_DIR = Path(__file__).resolve().parents[2] / "chaos" / "scenarios"
Progress = Callable[[str], None]
HISTORY_FILE = "history.json"
CRON_SETTLE_S = 5.0
"""Due times this close to the judging are not expected yet (their run may be in creation)."""


@dataclass(frozen=True)
class Scenario:
    """`dags` maps DAG file names to their source; `schedule` runs one round of faults;
    `cron` maps each cron DAG whose runs P9 judges to its schedule (the runs that fall due
    between the first round's start and the judging are expected, once each)."""

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
    cron: dict[str, str] = field(default_factory=dict)
    receiver: bool = False  # a receiver node records webhook deliveries (P11)
    ha_metastore: bool = False  # the metastore under Patroni (pg1, pg2), not one `postgres`
    ha_broker: bool = False  # a RabbitMQ cluster (mq1..mq3, quorum queues), not one Redis
    by_chance: tuple[str, ...] = ()
    """Properties a random schedule may leave untested; any other property of `properties`
    judged NOT_EXERCISED fails the run (a fault that landed nowhere proves nothing)."""

    def unexercised(self, verdicts: Sequence[Verdict]) -> list[str]:
        """The properties this scenario claims that `verdicts` never put to the test."""
        return [
            v.prop
            for v in verdicts
            if v.status == Status.NOT_EXERCISED and v.prop not in self.by_chance
        ]


@dataclass(frozen=True)
class Outcome:
    """The verdicts over all rounds; `aborted` names each round whose schedule or settling
    timed out (the history is judged all the same: a stuck cluster is evidence too)."""

    scenario: str
    repeats: int
    verdicts: list[Verdict]
    seconds: float
    aborted: list[str] = field(default_factory=list)
    unexercised: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.aborted and not self.unexercised and all(v.ok for v in self.verdicts)


def spec_for(sc: Scenario, name: str, state_root: Path | None) -> ClusterSpec:
    base = ClusterSpec(
        name=name,
        masters=sc.masters,
        workers=sc.workers,
        webserver=sc.webserver,
        settings=dict(sc.settings),
        receiver=sc.receiver,
        ha_metastore=sc.ha_metastore,
        ha_broker=sc.ha_broker,
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
    _fresh_evidence(spec.state_dir)
    _install_dags(spec.dags_folders(), sc.dags)
    with running(spec, progress) as cluster:
        drill = Drill(cluster, random.Random(seed), progress, bounds=sc.bounds)
        verdicts, aborted = _drill(sc, drill, repeat)
    return _outcome(sc, repeat, verdicts, started, aborted)


def refusal(sc: Scenario, deployment: ComposeCluster) -> str:
    """Why `sc` cannot be run on `deployment` ("" when it can): a running deployment's
    configuration is its own, and it has no harness-only nodes."""
    if sc.settings:
        keys = ", ".join(sorted(sc.settings))
        return (
            f"{sc.name} needs settings the harness gives its nodes ({keys}); a running "
            "deployment keeps its own configuration"
        )
    if sc.receiver:
        return f"{sc.name} needs the harness's webhook receiver node"
    have = {n.name: n.role for n in deployment.nodes()}
    members = sum(1 for r in have.values() if r == "patroni")
    if sc.ha_metastore and members < 2:
        return (
            f"{sc.name} needs a metastore of Patroni members (deploy/compose.ha.yml); the "
            f"deployment has {members}"
        )
    if sc.ha_broker:
        return f"{sc.name} needs the harness's RabbitMQ cluster (mq1..mq3)"
    for role, wanted in (("master", sc.masters), ("worker", sc.workers)):
        count = sum(1 for r in have.values() if r == role)
        if count < wanted:
            return f"{sc.name} needs {wanted} {role}s; the deployment has {count}"
    if sc.webserver and "lb" not in have.values():
        return f"{sc.name} probes the web UI through haproxy; the deployment has none"
    return ""


def run_on_deployment(
    sc: Scenario,
    deployment: ComposeCluster,
    *,
    repeat: int = 1,
    seed: int = 0,
    progress: Progress = lambda _m: None,
) -> Outcome:
    """Run `repeat` rounds of `sc` on a running compose deployment and judge what happened
    from now on. The scenario's DAGs go into the deployment's drill folder
    (deploy/compose.chaos.yml); nothing is created or removed. ClusterError when the scenario
    cannot run there (`refusal`) or the deployment was not started for drills."""
    started = time.monotonic()
    why = refusal(sc, deployment)
    if why:
        raise ClusterError(f"cannot run {sc.name} on compose project {deployment.project!r}: {why}")
    deployment.check_ready()
    _fresh_evidence(deployment.state_dir)
    try:
        _install_dags(deployment.dags_folders(), sc.dags)
    except OSError as exc:
        raise ClusterError(f"cannot write the scenario's DAGs: {exc}") from exc
    progress(f"scenario DAGs in {deployment.dags_folders()[0]}: {deployment.push_dags()}")
    deployment.wait_serving(time.monotonic() + 120)
    try:
        drill = Drill(deployment, random.Random(seed), progress, since=utcnow(), bounds=sc.bounds)
        drill.wait(
            "the scenario's DAGs to be active",
            lambda: all(drill.repo.dags.get(d).is_active for d in _dag_ids(sc)),
            60,
        )
        try:
            verdicts, aborted = _drill(sc, drill, repeat)
        except KeyboardInterrupt:  # no paused, cut-off or stopped node left behind
            progress("interrupted: bringing every node back")
            drill.restore()
            raise
    finally:
        deployment.close()
    return _outcome(sc, repeat, verdicts, started, aborted)


def _outcome(
    sc: Scenario, repeat: int, verdicts: list[Verdict], started: float, aborted: list[str]
) -> Outcome:
    seconds = time.monotonic() - started
    return Outcome(sc.name, repeat, verdicts, seconds, aborted, sc.unexercised(verdicts))


def _dag_ids(sc: Scenario) -> list[str]:
    """The DAG ids of the scenario's files (the workload names each file after its DAG)."""
    return [Path(filename).stem for filename in sc.dags]


def _drill(sc: Scenario, drill: Drill, repeat: int) -> tuple[list[Verdict], list[str]]:
    """`repeat` rounds, then the history since the first one judged (and kept as evidence in
    the state folder); the verdicts and the rounds aborted."""
    aborted: list[str] = []
    first_round = utcnow()
    for i in range(repeat):
        drill.say(f"round {i + 1}/{repeat}")
        if not _round(sc, drill, f"round {i + 1}", aborted):
            break
    end = utcnow() - timedelta(seconds=CRON_SETTLE_S)
    due = {dag: due_times(expr, first_round, end) for dag, expr in sc.cron.items()}
    history = collect(drill.cluster, due, since=drill.since)
    _keep(history, drill.cluster.state_dir / HISTORY_FILE)
    return check(history, sc.properties, sc.bounds), aborted


def _round(sc: Scenario, drill: Drill, label: str, aborted: list[str]) -> bool:
    """One round: faults, every run finished, steady state again. A timeout, or any error of
    the harness's own hands (docker, the metastore it reads), is recorded in `aborted` with
    its type, and the history is judged all the same; False when the cluster could not be
    restored (no further round is fair)."""
    try:
        sc.schedule(drill)
    except HaflowError as exc:
        aborted.append(f"{label}: {_described(exc)}")
        drill.say(f"{label} aborted: {_described(exc)}")
        if not _restored(drill, label, aborted):
            return False
    try:
        drill.wait_runs_done(sc.settle_s)
    except HaflowError as exc:
        aborted.append(f"{label} (settling): {_described(exc)}")
    return _restored(drill, label, aborted)


def _described(exc: HaflowError) -> str:
    return str(exc) if isinstance(exc, ClusterError) else f"{type(exc).__name__}: {exc}"


def _restored(drill: Drill, label: str, aborted: list[str]) -> bool:
    try:
        drill.restore()
    except HaflowError as exc:
        aborted.append(f"{label} (restoring): {_described(exc)}")
        drill.say(f"{label}: could not restore steady state: {exc}")
        return False
    return True


def _keep(history: History, path: Path) -> None:
    """The judged history, kept in the state folder as evidence (the cluster is removed)."""
    data = {k: v for k, v in asdict(history).items() if k != "faults"}
    path.write_text(json.dumps(data, default=str, indent=1))


def _install_dags(folders: list[Path], dags: dict[str, str]) -> None:
    """The same files in every master's DAGs folder (the scenario's only)."""
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.py"):
            old.unlink()
        for filename, source in dags.items():
            (folder / filename).write_text(source)


def _fresh_evidence(state_dir: Path) -> None:
    """No fault, task record, delivery or request of an earlier run left to be judged."""
    (state_dir / "faults.jsonl").unlink(missing_ok=True)
    for path in state_dir.glob("records/*/*.jsonl"):  # the receiver's deliveries too
        path.unlink()
    (state_dir / "requests.jsonl").unlink(missing_ok=True)


def load_scenario(name_or_path: str, folder: Path = SCENARIO_DIR) -> Scenario:
    """The SCENARIO of `chaos/scenarios/<name>.py` (dashes or underscores), or of a path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = folder / (name_or_path.replace("-", "_") + ".py")
    if not path.exists():
        known = ", ".join(n.replace("_", "-") for n in scenario_names(folder))
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
