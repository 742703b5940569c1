"""Chaos scenarios: a workload, a fault schedule and the properties to judge, run on a real
cluster, repeated, and judged once over the whole recorded history.

A scenario file in `chaos/scenarios/` defines `SCENARIO = Scenario(...)`; its `schedule`
receives a `Drill` (the cluster, its fault library, and bounded waits) and injects one round of
faults. Between rounds the drill restores the cluster to steady state (every node up, every
scheduler a live candidate), so each round starts alike.
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

from haflow.chaos.checker import Bounds, Verdict, check
from haflow.chaos.cluster import ClusterError, running
from haflow.chaos.drill import Drill
from haflow.chaos.history import collect, due_times
from haflow.chaos.model import History
from haflow.chaos.spec import ClusterSpec
from haflow.core.clock import utcnow

__all__ = ["Drill", "Outcome", "Scenario", "load_scenario", "run_scenario", "scenario_names"]

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
        receiver=sc.receiver,
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
        first_round = utcnow()
        for i in range(repeat):
            progress(f"round {i + 1}/{repeat}")
            if not _round(sc, drill, f"round {i + 1}", aborted):
                break
        end = utcnow() - timedelta(seconds=CRON_SETTLE_S)
        due = {dag: due_times(expr, first_round, end) for dag, expr in sc.cron.items()}
        history = collect(cluster, due)
        _keep(history, spec.state_dir / HISTORY_FILE)
        verdicts = check(history, sc.properties, sc.bounds)
    return Outcome(sc.name, repeat, verdicts, time.monotonic() - started, aborted)


def _round(sc: Scenario, drill: Drill, label: str, aborted: list[str]) -> bool:
    """One round: faults, every run finished, steady state again. A timeout is recorded in
    `aborted`; False when the cluster could not be restored (no further round is fair)."""
    try:
        sc.schedule(drill)
    except ClusterError as exc:
        aborted.append(f"{label}: {exc}")
        drill.say(f"{label} aborted: {exc}")
        if not _restored(drill, label, aborted):
            return False
    try:
        drill.wait_runs_done(sc.settle_s)
    except ClusterError as exc:
        aborted.append(f"{label} (settling): {exc}")
    return _restored(drill, label, aborted)


def _restored(drill: Drill, label: str, aborted: list[str]) -> bool:
    try:
        drill.restore()
    except ClusterError as exc:
        aborted.append(f"{label} (restoring): {exc}")
        drill.say(f"{label}: could not restore steady state: {exc}")
        return False
    return True


def _keep(history: History, path: Path) -> None:
    """The judged history, kept in the state folder as evidence (the cluster is removed)."""
    data = {k: v for k, v in asdict(history).items() if k != "faults"}
    path.write_text(json.dumps(data, default=str, indent=1))


def _install_dags(spec: ClusterSpec, dags: dict[str, str]) -> None:
    """The same files in every master's DAGs folder."""
    for folder in spec.dags_folders():
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.py"):
            old.unlink()
        for filename, source in dags.items():
            (folder / filename).write_text(source)


def _clear_records(state_dir: Path) -> None:
    for path in state_dir.glob("records/*/*.jsonl"):  # the receiver's deliveries too
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
