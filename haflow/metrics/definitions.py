"""The metric objects haflow's daemons record into, made by factories so that each daemon makes
them after choosing prometheus-client's value store (multiprocess files, see `process`).

Every label takes a small, fixed set of values, all created at zero up front so a series exists
before its first event (Prometheus sees a 0, not a gap, and `rate` works from the start).
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

ELECTION_REASONS = ("initial", "handover", "takeover")
STEPDOWN_REASONS = ("shutdown", "elector", "fenced")
RECLAIM_REASONS = ("heartbeat_timeout", "zookeeper_session", "other")
FINISHED_STATES = ("success", "failed", "timed_out", "lost")
CLAIM_RESULTS = ("claimed", "rejected")
ABANDON_REASONS = ("reclaimed", "self_fenced")
NOTIFY_OUTCOMES = ("delivered", "retry", "failed", "lost")
MAX_DAG_LABELS = 500
"""The most `dag_id` label values a scheduler gives its per-DAG metrics; runs of DAGs past
that count under `dag_id="_other"`, so a cluster with thousands of DAGs cannot blow up
Prometheus (each DAG costs 2 counter and 15 histogram series)."""
OTHER_DAGS = "_other"

FAILOVER_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 60, 120)
LOOP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
DELAY_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60, 300)
DURATION_BUCKETS = (0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 1800, 3600, 7200, 21600)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


@dataclass(frozen=True)
class SchedulerMetricSet:
    elections: Counter
    stepdowns: Counter
    failover: Histogram
    loop: Histogram
    fenced: Counter
    reclaimed: Counter
    queued: Counter
    republished: Counter
    run_delay: Histogram
    notifications: Counter
    dag_runs_finished: Counter
    dag_run_duration: Histogram


def scheduler_metric_set(registry: CollectorRegistry | None = None) -> SchedulerMetricSet:
    """The scheduler's counters and histograms; `registry` None leaves them to the
    multiprocess files (the daemons' case), a registry registers them there (tests)."""
    r = registry
    s = SchedulerMetricSet(
        elections=Counter(
            "haflow_leader_elections",
            "Times this scheduler became leader, by why the leadership was free.",
            ["reason"],
            registry=r,
        ),
        stepdowns=Counter(
            "haflow_leader_stepdowns",
            "Times this scheduler stopped leading, by reason.",
            ["reason"],
            registry=r,
        ),
        failover=Histogram(
            "haflow_failover_seconds",
            "From the outgoing leader's last heartbeat (or fenced write) to this new "
            "leader's first scheduling write.",
            buckets=FAILOVER_BUCKETS,
            registry=r,
        ),
        loop=Histogram(
            "haflow_scheduler_loop_seconds",
            "Duration of one leader iteration (snapshot, plan, fenced apply, publish).",
            buckets=LOOP_BUCKETS,
            registry=r,
        ),
        fenced=Counter(
            "haflow_fenced_writes_rejected",
            "Writes of this scheduler rejected because its epoch was no longer the leader's.",
            registry=r,
        ),
        reclaimed=Counter(
            "haflow_attempts_reclaimed",
            "Running attempts the leader marked lost because their worker died or vanished.",
            ["reason"],
            registry=r,
        ),
        queued=Counter(
            "haflow_attempts_queued",
            "Attempts the leader committed as queued and handed to the executor.",
            registry=r,
        ),
        republished=Counter(
            "haflow_attempts_republished",
            "Queued attempts published again (unclaimed past [scheduler] queued_timeout).",
            registry=r,
        ),
        run_delay=Histogram(
            "haflow_run_schedule_delay_seconds",
            "How long after its cron due time the leader created a scheduled run.",
            buckets=DELAY_BUCKETS,
            registry=r,
        ),
        notifications=Counter(
            "haflow_notifications",
            "Tries to deliver a notification, by outcome: delivered, retry (failed, tried "
            "again later), failed (its last try failed: given up), lost (the outcome could "
            "not be recorded; the next claim delivers it again).",
            ["outcome"],
            registry=r,
        ),
        dag_runs_finished=Counter(
            "haflow_dag_runs_finished",
            "Runs the leader ended, by DAG and outcome (success, failed); at most "
            f"{MAX_DAG_LABELS} DAGs by name, the rest as dag_id={OTHER_DAGS!r}.",
            ["dag_id", "state"],
            registry=r,
        ),
        dag_run_duration=Histogram(
            "haflow_dag_run_duration_seconds",
            "From a run's start to its end, by DAG (the same bound on DAG names).",
            ["dag_id"],
            buckets=DURATION_BUCKETS,
            registry=r,
        ),
    )
    _zero(s.notifications, NOTIFY_OUTCOMES)
    _zero(s.elections, ELECTION_REASONS)
    _zero(s.stepdowns, STEPDOWN_REASONS)
    _zero(s.reclaimed, RECLAIM_REASONS)
    return s


@dataclass(frozen=True)
class AttemptMetricSet:
    claims: Counter
    finished: Counter
    duration: Histogram
    zombies: Counter
    unreported: Counter
    abandoned: Counter


def attempt_metric_set(registry: CollectorRegistry | None = None) -> AttemptMetricSet:
    """What the processes that run attempts record (Celery pool and local executor processes)."""
    r = registry
    s = AttemptMetricSet(
        claims=Counter(
            "haflow_attempt_claims",
            "Claims of attempts by this worker: `claimed`, or `rejected` (duplicate message).",
            ["result"],
            registry=r,
        ),
        finished=Counter(
            "haflow_task_attempts_finished",
            "Attempts this worker ran whose end was recorded, by attempt state.",
            ["state"],
            registry=r,
        ),
        duration=Histogram(
            "haflow_task_duration_seconds",
            "From claim to end of an attempt, as its worker measured it.",
            buckets=DURATION_BUCKETS,
            registry=r,
        ),
        zombies=Counter(
            "haflow_zombie_reports_rejected",
            "End reports of this worker rejected because the attempt had been taken away.",
            registry=r,
        ),
        unreported=Counter(
            "haflow_attempt_reports_failed",
            "Attempt ends this worker could not report (metastore unreachable).",
            registry=r,
        ),
        abandoned=Counter(
            "haflow_attempts_abandoned",
            "Attempts this worker killed because they were no longer its own.",
            ["reason"],
            registry=r,
        ),
    )
    _zero(s.claims, CLAIM_RESULTS)
    _zero(s.finished, FINISHED_STATES)
    _zero(s.abandoned, ABANDON_REASONS)
    return s


@dataclass(frozen=True)
class HttpMetricSet:
    requests: Counter
    latency: Histogram


def http_metric_set(registry: CollectorRegistry | None = None) -> HttpMetricSet:
    return HttpMetricSet(
        requests=Counter(
            "haflow_http_requests",
            "Requests the webserver answered, by endpoint (the route's name), method, status.",
            ["endpoint", "method", "status"],
            registry=registry,
        ),
        latency=Histogram(
            "haflow_http_request_duration_seconds",
            "Time the webserver took to answer a request, by endpoint and method.",
            ["endpoint", "method"],
            buckets=HTTP_BUCKETS,
            registry=registry,
        ),
    )


def _zero(counter: Counter, values: tuple[str, ...]) -> None:
    for value in values:
        counter.labels(value)
