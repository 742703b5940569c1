"""A scenario's hands on a running chaos cluster: the fault library, the workload, observations
made from the host (open transactions, requests through haproxy), and bounded waits. Every wait
ends in a ClusterError naming what it waited for, so a stuck cluster aborts its round instead of
hanging the run."""

from __future__ import annotations

import random
import ssl
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException
from kazoo.handlers.threading import KazooTimeoutError

from haflow.chaos import patroni, rabbitmq
from haflow.chaos.checker.base import Bounds
from haflow.chaos.checker.tasks import mid_task
from haflow.chaos.cluster import ClusterError
from haflow.chaos.faults import Faults, FaultTarget, read_fault_log
from haflow.chaos.history import REQUESTS_FILE
from haflow.chaos.model import Fault
from haflow.chaos.probe import Prober
from haflow.chaos.spec import NodeDef
from haflow.chaos.sql import (
    acknowledged,
    activity,
    fenced_transaction,
    lock_run,
    watch_connection,
)
from haflow.core.clock import utcnow
from haflow.election.zookeeper import election_path
from haflow.errors import Conflict, HaflowError
from haflow.metastore.repository import Repository

Progress = Callable[[str], None]


class DrillTarget(FaultTarget, Protocol):
    """A running cluster a scenario can drill: the harness's own (`haflow.chaos.cluster.
    Cluster`) or an operator's compose deployment (`haflow.chaos.deployment.ComposeCluster`)."""

    @property
    def name(self) -> str:
        """The scheduler cluster's name: its election path, its metastore rows."""
        ...

    @property
    def state_dir(self) -> Path:
        """Where the drill's evidence goes: fault log, the tasks' records/, requests."""
        ...

    @property
    def zk_auth(self) -> str:
        """ZooKeeper digest credentials `user:password`, or ""."""
        ...

    @property
    def web_tls(self) -> ssl.SSLContext | None:
        """The TLS context to reach `web_url` with, or None for plain HTTP."""
        ...

    def nodes(self) -> list[NodeDef]:
        """Every long-running node, with its role (master, worker, zookeeper, ...)."""
        ...

    def repo(self) -> Repository:
        """The metastore, seen from the host."""
        ...

    def wait_serving(self, deadline: float) -> None: ...

    def zk_mode(self, node: str) -> str: ...

    def web_url(self, path: str) -> str: ...


class Drill:
    """One scenario's hands on the cluster: faults, the workload, bounded waits. `since`
    (on a deployment with a past) leaves out runs created before the drill began."""

    def __init__(
        self,
        cluster: DrillTarget,
        rng: random.Random,
        progress: Progress,
        since: datetime | None = None,
        bounds: Bounds | None = None,
    ) -> None:
        self.cluster = cluster
        self.bounds = bounds or Bounds()
        self.faults = Faults(cluster)
        self.rng = rng
        self.say = progress
        self.since = since
        self.triggered: list[tuple[str, str]] = []
        """(dag_id, run_id) of every run this drill triggered, in order: the work a fault is
        aimed at (a deployment's older runs, or a stale row, never are)."""

    @property
    def repo(self) -> Repository:
        return self.cluster.repo()

    def wait(self, what: str, check: Callable[[], Any], timeout_s: float) -> Any:
        """Poll `check` until it returns something truthy (returned); ClusterError on timeout."""
        deadline = time.monotonic() + timeout_s
        error: HaflowError | None = None
        while time.monotonic() < deadline:
            try:
                found = check()
            except HaflowError as exc:
                found, error = None, exc
            if found:
                return found
            time.sleep(0.1)
        last = f" (the last error: {type(error).__name__}: {error})" if error else ""
        raise ClusterError(f"timed out after {timeout_s} s waiting for {what}{last}")

    # -- leadership -------------------------------------------------------------------------

    def leader(self) -> tuple[str, int]:
        """(node, epoch) of the current leader, from the metastore's leader row."""
        row = self.wait("a leader", self.repo.leadership.current, 60)
        return str(row.holder).split(":", 1)[0], int(row.epoch)

    def wait_new_leader(
        self, after_epoch: int, timeout_s: float = 60, observe: Sequence[str] = ()
    ) -> tuple[str, int]:
        """The (node, epoch) of the first leader above `after_epoch` seen in the leader row;
        meanwhile, every second, the database activity of the `observe` nodes is recorded."""
        last = [0.0]

        def newer() -> Any:
            if observe and time.monotonic() - last[0] >= 1.0:
                last[0] = time.monotonic()
                self.observe_db(observe)
            row = self.repo.leadership.current()
            return row if row is not None and row.epoch > after_epoch else None

        row = self.wait(f"a leader after epoch {after_epoch}", newer, timeout_s)
        return str(row.holder).split(":", 1)[0], int(row.epoch)

    def observe_db(self, nodes: Sequence[str]) -> None:
        """Record in the fault log what PostgreSQL shows of `nodes`' busy backends (state, wait
        event, open transaction): the evidence of who blocks whom during a fault."""
        addresses = {self.cluster.address(n): n for n in nodes}
        with watch_connection(self.repo.engine) as conn:
            seen = activity(conn, list(addresses))
        for backend in seen:
            self.faults.observe(addresses.get(backend["addr"], "?"), "db_activity", backend)

    # -- workload ---------------------------------------------------------------------------

    def trigger(self, dag_id: str, runs: int = 1) -> list[str]:
        self.wait(f"DAG {dag_id} to be parsed", lambda: self.repo.dags.get(dag_id), 60)
        ids = [self._trigger_one(dag_id) for _ in range(runs)]
        self.triggered += [(dag_id, run_id) for run_id in ids]
        return ids

    def _trigger_one(self, dag_id: str, timeout_s: float = 60) -> str:
        """Trigger a run as a user would while the metastore fails over: again on an error,
        until it lands. The run's id is chosen once, so a try whose commit landed but whose
        answer was lost is found (Conflict) rather than triggered twice."""
        run_id = f"chaos__{utcnow().isoformat()}"

        def landed() -> str:
            try:
                return self.repo.runs.trigger(dag_id, {}, utcnow(), run_id=run_id).run_id
            except Conflict:
                return run_id

        return str(self.wait(f"run {run_id} of {dag_id} to be triggered", landed, timeout_s))

    def trickle(self, dag_id: str, for_s: float, every_s: float = 0.5) -> int:
        """Trigger a run of `dag_id` every `every_s` for `for_s` (blocking): work that arrives
        while a fault lasts, whose start delays show the pause users see. Returns how many."""
        deadline = time.monotonic() + for_s
        n = 0
        while time.monotonic() < deadline:
            self.trigger(dag_id)
            n += 1
            time.sleep(max(0.0, min(every_s, deadline - time.monotonic())))
        return n

    def attempt_running_on(self, worker: str, timeout_s: float = 60) -> Any:
        """An attempt of the drill's own runs running on `worker` now (waits, bounded)."""
        return self.wait(
            f"an attempt of the drill's runs running on {worker}",
            lambda: next(iter(self._running_attempts({worker})), None),
            timeout_s,
        )

    def busy_worker(self, timeout_s: float = 60) -> tuple[str, Any]:
        """(worker, attempt): a worker node running an attempt of the drill's own runs at this
        moment, read from the metastore just before the fault is aimed (waits, bounded, until
        some worker runs one). Among several, one at random; its attempt the one started last,
        so the fault has the most of its work left to interrupt."""
        workers = {n.name for n in self.cluster.nodes() if n.role == "worker"}

        def found() -> tuple[str, Any] | None:
            running = self._running_attempts(workers)
            if not running:
                return None
            worker = self.rng.choice(sorted({str(a.worker_id) for a in running}))
            mine = [a for a in running if a.worker_id == worker]
            return worker, max(mine, key=lambda a: a.started_at)

        busy: tuple[str, Any] = self.wait(
            f"a worker of {sorted(workers)} to run an attempt of the drill's runs",
            found,
            timeout_s,
        )
        return busy

    def landed(self, fault: Fault, attempt: Any) -> None:
        """ClusterError unless `attempt` was still running when `fault` struck its worker (by
        the checker's own rule, `mid_task`): a fault that hit a worker with nothing to lose
        proves nothing, so its round fails."""
        now = next(
            (a for a in self.repo.history.attempts(attempt.ti_id) if a.attempt == attempt.attempt),
            None,
        )
        if now is None or not mid_task(
            now.state, now.started_at, now.ended_at, fault.ts, self.bounds.fault_grace_s
        ):
            state = "gone" if now is None else f"{now.state} at {now.ended_at}"
            raise ClusterError(
                f"the {fault.action} of {fault.node} at {fault.ts:%H:%M:%S.%f} did not land: "
                f"attempt {attempt.attempt} of task instance {attempt.ti_id} had ended ({state})"
            )

    def _running_attempts(self, workers: set[str]) -> list[Any]:
        """The attempts of the drill's runs in state running on one of `workers`."""
        return [
            a
            for a in self.repo.history.running_attempts(self.triggered)
            if a.state == "running" and a.worker_id in workers
        ]

    def wait_runs_done(self, timeout_s: float) -> None:
        def done() -> bool:
            runs = self.repo.runs.find(limit=10_000)
            if self.since is not None:
                runs = [r for r in runs if r.created_at >= self.since]
            return all(r.state in ("success", "failed") for r in runs)  # none: nothing to wait

        self.wait("every run to finish", done, timeout_s)

    def standby(self) -> str:
        """A master whose scheduler does not lead now."""
        return self.standby_of(self.leader()[0])

    def standby_of(self, leader: str) -> str:
        """The first master other than `leader` (no metastore read: usable while blocked)."""
        masters = [n.name for n in self.cluster.nodes() if n.role == "master"]
        return next(m for m in masters if m != leader)

    def pause_mid_transaction(
        self, node: str, barrier_dag: str, timeout_s: float = 60.0, states: Sequence[str] = ()
    ) -> dict[str, Any]:
        """Freeze `node` while its scheduler is inside a fenced transaction, every time.

        A barrier makes the moment certain instead of raced for: a run of `barrier_dag` is
        triggered while that DAG is paused, its row is locked from the host (`FOR UPDATE`),
        and the DAG is unpaused. The leader's next fenced transaction locks the `leader` row,
        then blocks on the run's row as it starts the run: PostgreSQL shows it waiting on a
        lock while holding the `leader` row. Only then is the node frozen, and the barrier
        released: the server finishes the statement for a client that can no longer answer,
        so the transaction stays open on the `leader` row (`idle in transaction`, or `active`
        mid-way through a pipelined statement). `states` limits which of those is accepted;
        a freeze that settles in another state is thawed and tried again with a new run.
        The frozen transaction is recorded in the fault log as an observation."""
        deadline = time.monotonic() + timeout_s
        tries = 0
        while time.monotonic() < deadline:
            tries += 1
            after = self._freeze_at_barrier(node, barrier_dag, tries, deadline)
            if after is not None and (not states or after["state"] in states):
                self.faults.observe(node, "frozen_in_fenced_transaction", after)
                return after
            self.faults.resume(node)
            self.say(f"{node} froze with its transaction {after and after['state']}; again")
        raise ClusterError(
            f"could not freeze {node} inside a fenced transaction in {timeout_s} s ({tries} tries)"
        )

    def _freeze_at_barrier(
        self, node: str, dag_id: str, tries: int, deadline: float
    ) -> dict[str, Any] | None:
        """One try: block the leader's fenced transaction on a locked run row, freeze the node,
        release the row; the transaction as it settles (None if it had ended)."""
        repo, address = self.repo, self.cluster.address(node)
        repo.dags.set_paused(dag_id, True, utcnow())
        (run_id,) = self.trigger(dag_id)
        run_pk = repo.runs.get(dag_id, run_id).pk
        with watch_connection(repo.engine) as watch, repo.engine.connect() as held:
            lock_run(held, run_pk)  # the barrier, until `held` rolls back
            repo.dags.set_paused(dag_id, False, utcnow())
            blocked = self.wait(
                f"{node}'s fenced transaction to block on run {run_id}",
                lambda: _blocked(fenced_transaction(watch, address)),
                max(1.0, deadline - time.monotonic()),
            )
            self.faults.pause(node, {"try": tries, "barrier": run_id, "seen_before": blocked})
            held.rollback()
            after = _settled(watch, address)
        same = after is not None and after["xact_start"] == blocked["xact_start"]
        return after if same else None

    # -- the metastore under Patroni -------------------------------------------------------

    def metastore_members(self, but: str = "") -> dict[str, str]:
        """Patroni member -> address, every member but `but` (a stopped or cut-off member has
        no address on a compose deployment); ClusterError on a cluster with one PostgreSQL."""
        names = [n.name for n in self.cluster.nodes() if n.role == "patroni"]
        if not names:
            raise ClusterError("this cluster's metastore is one server, not Patroni members")
        return {name: self.cluster.address(name) for name in names if name != but}

    def metastore_primary(self) -> str:
        """The member that is primary, once a synchronous standby streams from it."""
        members = self.metastore_members()

        def found() -> str | None:
            seen = patroni.view(members)
            return patroni.primary(seen) if patroni.replicating(seen) else None

        return str(self.wait("a metastore primary and its synchronous standby", found, 120))

    def acknowledged(self, primary: str) -> Fault:
        """Record what the metastore has committed so far (read from it now), on `primary`:
        P14 finds all of it after the fault that follows."""
        committed = acknowledged(self.repo.engine, since=self.since)
        return self.faults.observe(primary, "acknowledged", committed)

    def lose_metastore_primary(self, fault: str) -> str:
        """Record what the primary acknowledged, then `fault` its node ("kill": SIGKILL;
        "partition": cut it off every node) and wait for another member's promotion. The
        lost primary's name (a partitioned one is for the caller to heal)."""
        primary = self.metastore_primary()
        self.acknowledged(primary)
        self.say(f"{fault}: the metastore primary {primary}")
        if fault == "kill":
            self.faults.kill(primary, "KILL")
        elif fault == "partition":
            self.faults.partition(primary)
        else:
            raise ValueError(f"no metastore fault {fault!r}: kill or partition")
        self.say(f"{self.wait_promoted(primary)} promoted")
        return primary

    def wait_promoted(self, old: str, timeout_s: float = 120) -> str:
        """Wait until another member than `old` answers as a running primary (asking only
        them: `old` may be unreachable); record when, as `promoted`. Its name."""
        others = self.metastore_members(but=old)

        def promoted() -> str | None:
            return patroni.primary(patroni.view(others), among=others)

        new = str(self.wait(f"a member other than {old} to be promoted", promoted, timeout_s))
        self.faults.observe(new, "promoted", {"from": old})
        return new

    # -- the broker as a RabbitMQ cluster ---------------------------------------------------

    def queue_leader(self, queue: str) -> str:
        """The RabbitMQ node that leads quorum queue `queue` (its Raft leader), asked of a
        running node; waited for until the queue exists."""
        nodes = [n.name for n in self.cluster.nodes() if n.role == "rabbitmq"]
        if not nodes:
            raise ClusterError("this cluster's broker is one Redis, not a RabbitMQ cluster")

        def leader() -> str | None:
            for node in nodes:
                found = rabbitmq.queue_leader(
                    self.faults.docker, self.cluster.container(node), queue
                )
                if found:
                    return found
            return None

        return str(self.wait(f"the leader of queue {queue}", leader, 60))

    def zk_leader(self) -> str:
        """The ZooKeeper member that leads the ensemble now."""
        members = [n.name for n in self.cluster.nodes() if n.role == "zookeeper"]
        return str(
            self.wait(
                "a ZooKeeper leader",
                lambda: next((m for m in members if self.cluster.zk_mode(m) == "leader"), None),
                60,
            )
        )

    def prober(self, path: str = "/ready", interval_s: float = 0.05) -> Prober:
        """A prober of `path` through haproxy, logging to the cluster's requests.jsonl."""
        log = self.cluster.state_dir / REQUESTS_FILE
        return Prober(self.cluster.web_url(path), log, interval_s, tls=self.cluster.web_tls)

    def sleep_until_second(self, second: float, max_wait_s: float = 70.0) -> None:
        """Sleep until the wall clock shows `second` past a minute (the next such time)."""
        now = utcnow()
        target = now.replace(microsecond=0, second=0) + timedelta(seconds=second)
        while target <= now:
            target += timedelta(minutes=1)
        wait = (target - now).total_seconds()
        if wait > max_wait_s:
            raise ClusterError(f"would wait {wait:.0f} s for second {second} of a minute")
        time.sleep(wait)

    # -- steady state -----------------------------------------------------------------------

    def restore(self, timeout_s: float = 120) -> None:
        """Bring every node back (heal, resume, restart) and wait for steady state. A node still
        shutting down (after SIGTERM it may take seconds) is restarted once it has exited."""
        deadline = time.monotonic() + timeout_s
        for fault in self._partitioned():
            self.faults.heal(fault)
        self.wait(
            "every master a live candidate",
            lambda: self._revive() and self._candidates_complete(),
            timeout_s,
        )
        self.cluster.wait_serving(deadline)

    def _revive(self) -> bool:
        """Resume paused nodes and restart stopped ones; true when none needed it."""
        acted = False
        for node, state in self.cluster.container_states().items():
            if state == "paused":
                self.faults.resume(node)
                acted = True
            elif state in ("exited", "dead", "created"):
                self.faults.restart(node)
                acted = True
        return not acted

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
            for s in self.repo.members.schedulers()
            if s["state"] in ("leader", "standby") and (now - s["heartbeat_at"]).total_seconds() < 3
        ]
        if sorted(live) != sorted(masters):
            return False
        hosts = ",".join(
            f"{self.cluster.address(n.name)}:2181"
            for n in self.cluster.nodes()
            if n.role == "zookeeper"
        )
        auth = self.cluster.zk_auth
        zk = KazooClient(hosts=hosts, timeout=5, auth_data=[("digest", auth)] if auth else None)
        try:
            zk.start(timeout=5)
            return len(zk.get_children(election_path(self.cluster.name))) == len(masters)
        # KazooTimeoutError is no KazooException: no member answered within 5 s (the
        # ensemble re-electing after a member's kill); the restore polls again.
        except (KazooException, KazooTimeoutError, OSError, HaflowError):
            return False
        finally:
            zk.stop()
            zk.close()


def _read_faults(cluster: DrillTarget) -> list[Any]:
    return read_fault_log(cluster.fault_log)


def _blocked(tx: dict[str, Any] | None) -> dict[str, Any] | None:
    """The fenced transaction when it waits on a lock (the barrier), else None."""
    return tx if tx is not None and tx["wait"].startswith("Lock:") else None


def _settled(conn: Any, address: str, within_s: float = 0.3) -> dict[str, Any] | None:
    """The frozen node's open fenced transaction once the server has finished whatever
    statement it was still running for it (`active` with no wait event): then it is either idle
    in the transaction, or waiting for the frozen client (ClientRead), or on a lock."""
    deadline = time.monotonic() + within_s
    while True:
        tx = fenced_transaction(conn, address)
        running = tx is not None and tx["state"] == "active" and tx["wait"] == ":"
        if not running or time.monotonic() > deadline:
            return tx
        time.sleep(0.01)
