"""Collect a chaos cluster's recorded history into `haflow.chaos.model.History`.

Sources, all records made while things happened: the metastore (event log, runs, attempts, read
through the repository from the host), the tasks' own records (JSON lines in each node's records
folder on the host), the fault log, and the prober's request log through haproxy.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import fields
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from croniter import croniter

from haflow.chaos.faults import read_fault_log
from haflow.chaos.model import Attempt, Delivery, Event, History, Request, Run, TaskRecord
from haflow.chaos.receiver import DELIVERIES_FILE
from haflow.chaos.spec import RECORDS_FILE
from haflow.chaos.sql import commit_times
from haflow.metastore.repository import Repository

if TYPE_CHECKING:  # the drill imports this module
    from haflow.chaos.drill import DrillTarget

REQUESTS_FILE = "requests.jsonl"
LEADERSHIP_EVENTS = "leader."
PAGE = 1000
_Row = TypeVar("_Row", Event, Attempt, Run, TaskRecord, Request, Delivery)


def collect(
    cluster: DrillTarget,
    due: dict[str, tuple[datetime, ...]] | None = None,
    since: datetime | None = None,
) -> History:
    """Everything recorded so far on `cluster`, or since
    `since` on a deployment with a past; `due` lists the cron DAGs' expected runs. Elections
    and resignations before `since` stay: the epoch in force when the drill began is judged
    against its own election."""
    repo = cluster.repo()
    runs = [r for r in _runs(repo) if since is None or r.created_at >= since]
    events = [
        e
        for e in _events(repo)
        if since is None or e.ts >= since or e.kind.startswith(LEADERSHIP_EVENTS)
    ]
    return History(
        events=tuple(events),
        attempts=tuple(_attempts(repo, runs)),
        runs=tuple(runs),
        records=tuple(read_records(cluster.state_dir / "records")),
        faults=tuple(read_fault_log(cluster.fault_log)),
        requests=tuple(read_requests(cluster.state_dir / REQUESTS_FILE)),
        deliveries=tuple(read_deliveries(cluster.state_dir / "records")),
        nodes={n.name: n.role for n in cluster.nodes()},
        due=due or {},
        pools={p.name: p.slots for p in repo.pools.list()},
    )


def _events(repo: Repository) -> Iterable[Event]:
    committed = commit_times(repo.engine)
    since = 0
    while True:
        page = repo.history.events(since_id=since, limit=PAGE)
        for e in page:
            yield Event(
                e.id,
                e.ts,
                e.kind,
                e.actor,
                e.epoch,
                e.dag_id,
                e.run_id,
                e.task_id,
                e.attempt,
                e.detail,
                committed.get(e.id),
            )
        if len(page) < PAGE:
            return
        since = page[-1].id


def _runs(repo: Repository) -> list[Run]:
    out: list[Run] = []
    while True:
        page = repo.runs.find(limit=PAGE, offset=len(out))
        out += [
            Run(
                r.dag_id,
                r.run_id,
                r.run_type,
                r.state,
                r.created_at,
                r.data_interval_end if r.run_type == "scheduled" else None,
                r.data_interval_start,
                r.data_interval_end,
                r.code_hash,
            )
            for r in page
        ]
        if len(page) < PAGE:
            return out


def _attempts(repo: Repository, runs: list[Run]) -> Iterable[Attempt]:
    for run in runs:
        for ti in repo.history.task_instances(run.dag_id, run.run_id):
            for a in repo.history.attempts(ti.id):
                yield Attempt(
                    run.dag_id,
                    run.run_id,
                    ti.task_id,
                    a.attempt,
                    a.state,
                    a.epoch,
                    a.worker_id,
                    a.queued_at,
                    a.started_at,
                    a.ended_at,
                    a.reason,
                    ti.pool,
                    ti.pool_slots,
                )


def _json_lines(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of a file written line by line (none if it does not exist); a line
    cut short by a killed node is skipped."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return
    for line in lines:
        try:
            yield json.loads(line)
        except ValueError:
            continue


def read_records(folder: Path) -> list[TaskRecord]:
    """The tasks' own records from every node's records file under `folder`."""
    return [
        TaskRecord(
            d["dag_id"],
            d["run_id"],
            d["task_id"],
            int(d["attempt"]),
            d["node"],
            d["kind"],
            datetime.fromisoformat(d["ts"]),
            d.get("code_hash", ""),
        )
        for path in sorted(folder.glob(f"*/{RECORDS_FILE}"))
        for d in _json_lines(path)
    ]


def read_deliveries(folder: Path) -> list[Delivery]:
    """What the receiver node recorded, if the cluster has one."""
    return [
        Delivery(
            d["key"],
            d["event"],
            d["dag_id"],
            d["run_id"],
            d.get("task_id"),
            d.get("attempt"),
            d.get("revision"),
            datetime.fromisoformat(d["ts"]),
        )
        for d in _json_lines(folder / "receiver" / DELIVERIES_FILE)
    ]


def read_requests(path: Path) -> list[Request]:
    return [
        Request(
            datetime.fromisoformat(d["ts"]),
            d["ok"],
            d.get("status"),
            d.get("error", ""),
            float(d.get("took_s", 0.0)),
        )
        for d in _json_lines(path)
    ]


def due_times(schedule: str, start: datetime, end: datetime) -> tuple[datetime, ...]:
    """The times in (start, end] at which a cron `schedule` falls due."""
    it = croniter(schedule, start)
    out: list[datetime] = []
    while True:
        nxt = it.get_next(datetime)
        if nxt > end:
            return tuple(out)
        out.append(nxt)


def load_history(path: Path, fault_log: Path | None = None) -> History:
    """A history kept as JSON (`haflow.chaos.scenario._keep`), read back; its faults, which the
    file leaves out, from `fault_log` when given. Fields a file lacks (written before they
    existed) take their defaults; fields the model no longer has are ignored."""
    data = json.loads(path.read_text())
    return History(
        events=tuple(_row(Event, d) for d in data.get("events", ())),
        attempts=tuple(_row(Attempt, d) for d in data.get("attempts", ())),
        runs=tuple(_row(Run, d) for d in data.get("runs", ())),
        records=tuple(_row(TaskRecord, d) for d in data.get("records", ())),
        faults=tuple(read_fault_log(fault_log)) if fault_log is not None else (),
        requests=tuple(_row(Request, d) for d in data.get("requests", ())),
        deliveries=tuple(_row(Delivery, d) for d in data.get("deliveries", ())),
        nodes=dict(data.get("nodes", {})),
        due={
            dag: tuple(datetime.fromisoformat(ts) for ts in times)
            for dag, times in data.get("due", {}).items()
        },
        pools={name: int(slots) for name, slots in data.get("pools", {}).items()},
    )


def _row(cls: type[_Row], d: dict[str, Any]) -> _Row:
    """One dataclass row from its JSON form: times were written as text (`str(datetime)`)."""
    kw: dict[str, Any] = {}
    for f in fields(cls):
        if f.name not in d:
            continue
        value = d[f.name]
        if isinstance(value, str) and "datetime" in str(f.type):
            value = datetime.fromisoformat(value)
        kw[f.name] = value
    return cls(**kw)
