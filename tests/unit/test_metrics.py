"""The metrics observers over fakes: what each scheduler and attempt event records, what the
collectors expose, and that a failing metrics hook never reaches the scheduler."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from haflow.core.planner import Decisions, Limits, NewRun, RunSnap, TISnap, supervise
from haflow.core.states import AttemptState, RunState, TaskState
from haflow.election.memory import MemoryElection, MemoryElector
from haflow.errors import BackendUnavailable, ConfigError
from haflow.metastore.records import AttemptRef, ClaimedAttempt, FinishedRun
from haflow.metastore.repository.metrics import OutgoingLeader, QueuedAttempts
from haflow.metrics.attempts import attempt_metrics
from haflow.metrics.collectors import BuildInfo, SchedulerState
from haflow.metrics.definitions import scheduler_metric_set
from haflow.metrics.metastore import MetastoreCollector
from haflow.metrics.scheduler import SchedulerMetrics
from haflow.metrics.server import MetricsServer
from haflow.scheduler.service import SchedulerService, ServiceConfig
from haflow.worker.runner import AttemptRunner, RunnerConfig
from tests.fakes import FakeExecutor, FakeLoop, FakeSchedulerRepo
from tests.ports import free_port

NOW = datetime(2026, 1, 1, tzinfo=UTC)
STARTED = NOW - timedelta(minutes=5)


class Leaders:
    def __init__(self, outgoing: OutgoingLeader | None = None, fail: bool = False) -> None:
        self.outgoing = outgoing
        self.fail = fail

    def outgoing_leader(self) -> OutgoingLeader | None:
        if self.fail:
            raise BackendUnavailable("metastore unreachable")
        return self.outgoing


def observer(leaders: Leaders, mode: str = "zookeeper") -> tuple[SchedulerMetrics, Any]:
    registry = CollectorRegistry()
    m = SchedulerMetrics(
        scheduler_metric_set(registry), leaders, configured_mode=mode, started_at=STARTED
    )
    registry.register(SchedulerState(m))
    return m, registry


def value(registry: Any, name: str, **labels: str) -> float | None:
    v = registry.get_sample_value(name, labels)
    return None if v is None else float(v)


def test_first_election_is_initial_and_times_no_failover() -> None:
    m, reg = observer(Leaders(None))
    m.electing(NOW)
    m.elected(1, "zookeeper", NOW)
    m.took_over(1, NOW + timedelta(seconds=1))
    assert value(reg, "haflow_leader_elections_total", reason="initial") == 1
    assert value(reg, "haflow_leader_elections_total", reason="takeover") == 0
    assert value(reg, "haflow_failover_seconds_count") == 0
    assert value(reg, "haflow_scheduler_is_leader") == 1
    assert value(reg, "haflow_leader_epoch") == 1


def test_takeover_times_from_the_outgoing_leaders_last_sign_to_the_first_write() -> None:
    gone = OutgoingLeader(4, "s0", NOW - timedelta(seconds=2.5), resigned=False)
    m, reg = observer(Leaders(gone))
    m.electing(NOW)
    m.elected(5, "zookeeper", NOW)
    m.took_over(5, NOW + timedelta(seconds=0.5))
    assert value(reg, "haflow_leader_elections_total", reason="takeover") == 1
    assert value(reg, "haflow_failover_seconds_count") == 1
    assert value(reg, "haflow_failover_seconds_sum") == pytest.approx(3.0)
    assert value(reg, "haflow_failover_seconds_bucket", le="2.0") == 0
    assert value(reg, "haflow_failover_seconds_bucket", le="3.0") == 1


def test_handover_and_cold_start() -> None:
    handed = OutgoingLeader(2, "s0", NOW - timedelta(seconds=0.2), resigned=True)
    m, reg = observer(Leaders(handed))
    m.electing(NOW)
    m.elected(3, "database", NOW)
    m.took_over(3, NOW)
    assert value(reg, "haflow_leader_elections_total", reason="handover") == 1
    assert value(reg, "haflow_failover_seconds_count") == 1
    # the outgoing leader was last seen before this scheduler started: a cold start
    old = OutgoingLeader(2, "s0", STARTED - timedelta(hours=3), resigned=False)
    m2, reg2 = observer(Leaders(old))
    m2.electing(NOW)
    m2.elected(3, "database", NOW)
    m2.took_over(3, NOW)
    assert value(reg2, "haflow_leader_elections_total", reason="takeover") == 1
    assert value(reg2, "haflow_failover_seconds_count") == 0


def test_a_failing_metastore_read_never_reaches_the_scheduler() -> None:
    m, reg = observer(Leaders(fail=True))
    m.electing(NOW)  # logged, not raised
    m.elected(1, "zookeeper", NOW)
    assert value(reg, "haflow_scheduler_is_leader") == 1


def test_state_collector_reports_mode_fallback_and_zookeeper_state() -> None:
    m, _ = observer(Leaders(None))
    registry = CollectorRegistry()
    state = {"zk": "suspended"}
    registry.register(SchedulerState(m, lambda: state["zk"]))
    m.stepped(False, "database")
    assert value(registry, "haflow_elector_mode", mode="database") == 1
    assert value(registry, "haflow_elector_mode", mode="zookeeper") == 0
    assert value(registry, "haflow_elector_fallback") == 1
    assert value(registry, "haflow_zookeeper_connection_state", state="suspended") == 1
    assert value(registry, "haflow_zookeeper_connection_state", state="connected") == 0
    m.stepped(False, "zookeeper")
    state["zk"] = "connected"
    assert value(registry, "haflow_elector_fallback") == 0
    assert value(registry, "haflow_zookeeper_connection_state", state="connected") == 1
    assert value(registry, "haflow_scheduler_is_leader") == 0


def _running(ti_id: int, worker: str, beat: datetime) -> TISnap:
    return TISnap(
        id=ti_id,
        task_id=f"t{ti_id}",
        state=TaskState.RUNNING,
        attempt=1,
        retries=1,
        started_at=beat,
        heartbeat_at=beat,
        worker_id=worker,
    )


def test_applied_decisions_count_reclaims_by_reason_queues_and_run_delay() -> None:
    m, reg = observer(Leaders(None))
    old = NOW - timedelta(seconds=60)
    run = RunSnap(
        1,
        "d",
        RunState.RUNNING,
        {"a": _running(1, "w1", old), "b": _running(2, "w2", NOW - timedelta(seconds=7.5))},
    )
    # the planner's own reasons, so a change of its wording shows here
    changes = supervise(run, NOW, Limits(open_slots=1, gone_workers=frozenset({"w2"})))
    decisions = Decisions(
        changes=changes,
        to_queue=[(3, 1), (4, 1)],
        republish=[(5, 1)],
        new_runs=[NewRun("d", NOW - timedelta(seconds=2), NOW, NOW)],
    )
    refs = [AttemptRef(i, 1, 1, "default") for i in (3, 4, 5)]
    m.applied(decisions, refs, NOW)
    assert value(reg, "haflow_attempts_reclaimed_total", reason="heartbeat_timeout") == 1
    assert value(reg, "haflow_attempts_reclaimed_total", reason="zookeeper_session") == 1
    assert value(reg, "haflow_attempts_reclaimed_total", reason="other") == 0
    assert value(reg, "haflow_attempts_queued_total") == 2
    assert value(reg, "haflow_attempts_republished_total") == 1
    assert value(reg, "haflow_run_schedule_delay_seconds_sum") == pytest.approx(2.0)


def test_the_scheduler_service_tells_its_listener() -> None:
    """The real service over fakes: elected, ticked, fenced and stepped down reach metrics."""
    repo = FakeSchedulerRepo()
    election = MemoryElection()
    elector = MemoryElector(election, "s1")
    elector.start()
    m, reg = observer(Leaders(None), mode="memory")
    ticks = iter(range(1000))
    svc = SchedulerService(
        repo,  # type: ignore[arg-type]
        elector,
        FakeExecutor(),  # type: ignore[arg-type]
        FakeLoop(repo),  # type: ignore[arg-type]
        ServiceConfig(),
        sid="s1",
        clock=lambda: NOW,
        monotonic=lambda: float(next(ticks)),
        sleep=lambda _s: None,
        listener=m,
    )
    svc.step()
    svc.step()
    assert value(reg, "haflow_leader_elections_total", reason="initial") == 1
    assert value(reg, "haflow_scheduler_loop_seconds_count") == 2
    assert value(reg, "haflow_scheduler_is_leader") == 1
    repo.epoch = 7  # another scheduler took over
    svc.step()
    assert value(reg, "haflow_fenced_writes_rejected_total") == 1
    assert value(reg, "haflow_leader_stepdowns_total", reason="fenced") == 1
    assert value(reg, "haflow_scheduler_is_leader") == 0
    assert value(reg, "haflow_leader_epoch") == 0


class FakeQueries:
    def __init__(self) -> None:
        self.fail = False

    def _check(self) -> None:
        if self.fail:
            raise BackendUnavailable("metastore unreachable")

    def active_task_instance_states(self) -> dict[str, int]:
        self._check()
        return {"running": 2, "queued": 1}

    def active_run_states(self) -> dict[str, int]:
        return {"running": 1}

    def queued_attempts(self) -> list[QueuedAttempts]:
        return [QueuedAttempts("heavy", 3, NOW - timedelta(seconds=40))]

    def worker_beats(self, since: datetime) -> list[tuple[str, str, datetime]]:
        return [
            ("w1", "alive", NOW - timedelta(seconds=1)),
            ("w2", "alive", NOW - timedelta(seconds=30)),
            ("w3", "stopped", NOW - timedelta(seconds=300)),
        ]

    def import_errors(self) -> int:
        return 2


def _collector(leading: list[bool]) -> tuple[FakeQueries, CollectorRegistry]:
    q = FakeQueries()
    registry = CollectorRegistry()
    registry.register(
        MetastoreCollector(
            q,  # type: ignore[arg-type]
            lambda: leading[0],
            worker_timeout_s=8.0,
            clock=lambda: NOW,
        )
    )
    return q, registry


def test_notification_outcomes_are_counted_by_outcome() -> None:
    m, reg = observer(Leaders(None))
    for state in ("delivered", "pending", "pending", "failed", "lost"):
        m.notified(state)
    counts = {
        o: value(reg, "haflow_notifications_total", outcome=o)
        for o in ("delivered", "retry", "failed", "lost")
    }
    assert counts == {"delivered": 1, "retry": 2, "failed": 1, "lost": 1}


def test_ended_runs_are_counted_by_dag_with_a_bound_on_dag_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("haflow.metrics.scheduler.MAX_DAG_LABELS", 2)
    m, reg = observer(Leaders(None))
    m.runs_finished(
        [
            FinishedRun("etl", "r1", "failed", NOW - timedelta(seconds=90), NOW),
            FinishedRun("etl", "r2", "success", NOW - timedelta(seconds=30), NOW),
            FinishedRun("report", "r1", "success", None, NOW),  # never started: no duration
            FinishedRun("third", "r1", "failed", NOW - timedelta(seconds=5), NOW),
            FinishedRun("fourth", "r1", "failed", NOW - timedelta(seconds=5), NOW),
        ]
    )
    runs = "haflow_dag_runs_finished_total"
    assert value(reg, runs, dag_id="etl", state="failed") == 1
    assert value(reg, runs, dag_id="etl", state="success") == 1
    assert value(reg, runs, dag_id="report", state="success") == 1
    assert value(reg, runs, dag_id="_other", state="failed") == 2  # past the bound of 2
    assert value(reg, "haflow_dag_run_duration_seconds_sum", dag_id="etl") == 120
    assert value(reg, "haflow_dag_run_duration_seconds_count", dag_id="report") is None


def test_metastore_gauges_come_from_the_leader_only() -> None:
    leading = [False]
    q, reg = _collector(leading)
    assert b"haflow_" not in generate_latest(reg)
    leading[0] = True
    assert value(reg, "haflow_task_instances", state="running") == 2
    assert value(reg, "haflow_task_instances", state="success") == 0
    assert value(reg, "haflow_dag_runs", state="queued") == 0
    assert value(reg, "haflow_executor_queued", queue="heavy") == 3
    assert value(reg, "haflow_executor_queued", queue="default") == 0
    assert value(reg, "haflow_executor_queued_oldest_seconds") == 40
    assert value(reg, "haflow_workers", state="alive") == 1
    assert value(reg, "haflow_workers", state="dead") == 1
    assert value(reg, "haflow_workers", state="stopped") == 1
    assert value(reg, "haflow_worker_heartbeat_age_seconds", worker="w2") == 30
    assert value(reg, "haflow_worker_heartbeat_age_seconds", worker="w3") is None
    assert value(reg, "haflow_dag_import_errors") == 2
    assert value(reg, "haflow_metastore_up") == 1
    q.fail = True
    assert value(reg, "haflow_metastore_up") == 0
    assert value(reg, "haflow_task_instances", state="running") is None


CLAIMED = ClaimedAttempt(1, 1, "d", "r", "t", "/dags/d.py", None, {}, None, None)


def test_attempt_listener_counts_claims_ends_zombies_and_abandons() -> None:
    registry = CollectorRegistry()
    m = attempt_metrics(registry)
    m.claimed(CLAIMED)
    m.claim_rejected(AttemptRef(1, 1, 1, "default"))
    m.finished(CLAIMED, AttemptState.SUCCESS, 2.0, True)
    m.finished(CLAIMED, AttemptState.FAILED, 1.0, False)
    m.finished(CLAIMED, AttemptState.FAILED, 1.0, None)
    m.abandoned(CLAIMED, "self_fenced", 1.0)
    assert value(registry, "haflow_attempt_claims_total", result="claimed") == 1
    assert value(registry, "haflow_attempt_claims_total", result="rejected") == 1
    assert value(registry, "haflow_task_attempts_finished_total", state="success") == 1
    assert value(registry, "haflow_task_attempts_finished_total", state="failed") == 0
    assert value(registry, "haflow_zombie_reports_rejected_total") == 1
    assert value(registry, "haflow_attempt_reports_failed_total") == 1
    assert value(registry, "haflow_attempts_abandoned_total", reason="self_fenced") == 1
    assert value(registry, "haflow_task_duration_seconds_count") == 3


def test_the_runner_reports_a_rejected_claim() -> None:
    class Attempts:
        def claim(self, ref: AttemptRef, worker_id: str, now: datetime) -> None:
            return None

    class Repo:
        attempts = Attempts()

    registry = CollectorRegistry()
    runner = AttemptRunner(
        Repo(),  # type: ignore[arg-type]
        Path("/nonexistent"),
        "w1",
        RunnerConfig(),
        listener=attempt_metrics(registry),
    )
    assert runner.run(AttemptRef(1, 1, 1, "default")) == "rejected"
    runner.close()
    assert value(registry, "haflow_attempt_claims_total", result="rejected") == 1


def test_metrics_server_serves_and_refuses_a_taken_port(tmp_path: Path) -> None:
    port = free_port()
    directory = tmp_path / "m"
    directory.mkdir()
    server = MetricsServer(port, directory, [BuildInfo("worker")], addr="127.0.0.1")
    server.start()
    try:
        assert server.healthy()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            body = r.read().decode()
        assert 'haflow_build_info{daemon="worker"' in body
        assert "process_resident_memory_bytes" in body
        taken = MetricsServer(port, tmp_path, addr="127.0.0.1", setting="[worker] metrics_port")
        with pytest.raises(ConfigError, match=r"\[worker\] metrics_port"):
            taken.start()
    finally:
        server.stop()
    assert not directory.exists()


FORKED = """
import os, sys, urllib.request
from pathlib import Path
from haflow.metrics.process import enable_multiprocess
directory = Path(sys.argv[1]); directory.mkdir()
enable_multiprocess(directory)
from haflow.core.states import AttemptState
from haflow.metastore.records import ClaimedAttempt
from haflow.metrics.attempts import attempt_metrics
from haflow.metrics.server import MetricsServer
listener = attempt_metrics()  # made before forking, as `haflow worker` does
claimed = ClaimedAttempt(1, 1, "d", "r", "t", "/d.py", None, {}, None, None)
for _ in range(2):
    pid = os.fork()
    if pid == 0:
        listener.claimed(claimed)
        listener.finished(claimed, AttemptState.SUCCESS, 0.5, True)
        os._exit(0)
    os.waitpid(pid, 0)
listener.claimed(claimed)
server = MetricsServer(int(sys.argv[2]), directory, addr="127.0.0.1")
server.start()
print(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[2]}/metrics").read().decode())
server.stop()
"""


def test_forked_processes_add_up_in_multiprocess_mode(tmp_path: Path) -> None:
    """Counters recorded in forked pool processes reach the parent's /metrics (run in a
    subprocess: the multiprocess switch is for the whole process)."""
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(FORKED), str(tmp_path / "m"), str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert 'haflow_attempt_claims_total{result="claimed"} 3.0' in out
    assert 'haflow_task_attempts_finished_total{state="success"} 2.0' in out
    assert "haflow_task_duration_seconds_count 2.0" in out
