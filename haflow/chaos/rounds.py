"""Rounds of faults shared by several scenarios (and by the random sequence of single-node
faults): each takes a `Drill`, injects one fault, waits (bounded) for the cluster's answer to
it, and undoes the fault. Steady state is restored by the caller (`Drill.restore`)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from haflow.chaos.drill import Drill
from haflow.chaos.workload import BARRIER_DAG

SESSION_S = 6.0  # [election] zk_session_timeout, the default
ZOOKEEPER = ("zk1", "zk2", "zk3")


def pause_leader_mid_transaction(drill: Drill, states: Sequence[str] = ()) -> None:
    """Freeze the leader inside a fenced transaction (with `states`: only when its backend is
    in one of them; the scenario's DAGs must include `barrier_dag_source()`), wait for a
    standby to lead, thaw it past its session, and wait for it to record `leader.fenced_out`.
    The database activity of both masters is recorded meanwhile."""
    node, epoch = drill.leader()
    drill.say(f"freezing leader {node} (epoch {epoch}) inside a fenced transaction")
    frozen = drill.pause_mid_transaction(node, BARRIER_DAG, timeout_s=60, states=states)
    drill.say(f"{node} frozen with its transaction open: {frozen}")
    try:
        new, new_epoch = drill.wait_new_leader(
            epoch, timeout_s=SESSION_S + 30, observe=(node, drill.standby_of(node))
        )
        drill.say(f"{new} leads epoch {new_epoch}; resuming {node} after its session is gone")
        time.sleep(2.0)  # the frozen leader's session has expired: a clean "past its session"
    finally:
        drill.faults.resume(node)
    drill.wait(
        f"{node} to record leader.fenced_out",
        lambda: any(
            e.epoch == epoch
            for e in drill.repo.history.events(kinds=["leader.fenced_out"], limit=10_000)
        ),
        30,
    )


def pause_leader(drill: Drill, hold_s: float = SESSION_S + 6.0) -> None:
    """Freeze the leader for `hold_s` (past its session), then thaw it."""
    node, epoch = drill.leader()
    drill.say(f"pausing leader {node} (epoch {epoch}) for {hold_s:.0f} s")
    drill.faults.pause(node)
    time.sleep(hold_s)
    drill.faults.resume(node)


def kill_leader(drill: Drill, signal: str = "KILL") -> None:
    node, epoch = drill.leader()
    drill.say(f"SIG{signal} to leader {node} (epoch {epoch})")
    drill.faults.kill(node, signal)
    new, new_epoch = drill.wait_new_leader(epoch, timeout_s=60)
    drill.say(f"{new} leads epoch {new_epoch}")


def partition_leader_from_zookeeper(drill: Drill, dag_id: str, hold_s: float = 12.0) -> None:
    """Cut the leader off ZooKeeper only for `hold_s`, triggering a run of `dag_id` every
    half second meanwhile (P2 judges how soon each started)."""
    node, epoch = drill.leader()
    drill.say(f"cutting leader {node} (epoch {epoch}) off ZooKeeper for {hold_s:.0f} s")
    drill.faults.partition(node, ZOOKEEPER)
    try:
        n = drill.trickle(dag_id, hold_s)
    finally:
        drill.faults.heal(node)
    drill.say(f"healed {node}; {n} runs triggered while it was cut off")


def partition_worker(drill: Drill, worker: str, hold_s: float = 15.0) -> None:
    drill.say(f"cutting {worker} off every node for {hold_s:.0f} s")
    drill.faults.partition(worker)
    time.sleep(hold_s)
    drill.faults.heal(worker)


def kill_and_restart(drill: Drill, node: str, down_s: float = 5.0) -> None:
    drill.say(f"SIGKILL to {node}, restarted after {down_s:.0f} s")
    drill.faults.kill(node, "KILL")
    time.sleep(down_s)
    drill.faults.restart(node)
