"""The checker's later rules on hand-made histories: takeover after a partitioned leader (P2),
a paused leader's takeover measured at the server's commit time, with the frozen transaction
named (P7), observations that change no node's state, and the request prober's log format."""

from __future__ import annotations

import itertools
import json
import threading
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from haflow.chaos.checker import NodeStates, Status
from haflow.chaos.history import read_requests
from haflow.chaos.model import OBSERVE, Attempt, Event, Fault, History, Run
from haflow.chaos.probe import Prober
from tests.fakes import M1, M2, NODES, Log, assert_fails, one, t

ZK = ["zk1", "zk2", "zk3"]


# -- P2: a partitioned leader ---------------------------------------------------------------


def partition_history(takeover: float, peers: list[str] | None = None) -> History:
    log = Log().elect(0, M1, 1).elect(10 + takeover, M2, 2)
    fault = Fault(t(10), "partition", "master1", {"peers": ZK if peers is None else peers})
    return History(events=tuple(log.events), faults=(fault,), nodes=NODES)


def zk_cut_history(delays: list[float | None]) -> History:
    """The leader cut off ZooKeeper from 10 s to 22 s; a run triggered each second from 11 s,
    each started after its delay (None: never)."""
    log = Log().elect(0, M1, 1)
    runs = []
    for i, delay in enumerate(delays):
        runs.append(Run("d", f"r{i}", "manual", "success", t(11 + i)))
        if delay is not None:
            log.add(11 + i + delay, "run.started", M1, None, dag_id="d", run_id=f"r{i}")
    faults = (
        Fault(t(10), "partition", "master1", {"peers": ZK}),
        Fault(t(22), "heal", "master1"),
    )
    return History(events=tuple(log.events), faults=faults, nodes=NODES, runs=tuple(runs))


def test_p2_a_leader_cut_off_from_zookeeper_only_is_judged_by_the_pause_users_see() -> None:
    v = one(zk_cut_history([0.1, 0.2, 0.1]), "P2")
    assert v.status == Status.PASS, v
    assert v.measures["zk_cut_pause_s"] == pytest.approx((0.2,))
    assert "cut off from ZooKeeper" in v.evidence[0]
    assert_fails(one(zk_cut_history([0.1, 6.0]), "P2"), "bound 5.0 s")
    assert_fails(one(zk_cut_history([0.1, None]), "P2"), "never started")
    assert_fails(one(zk_cut_history([]), "P2"), "no run was triggered")


def test_p2_fails_on_a_slow_takeover_after_a_partition() -> None:
    assert_fails(one(partition_history(12.0, peers=[]), "P2"), "from every node", "bound 11.0 s")


def test_p2_partition_of_a_standby_or_a_worker_does_not_exercise_it() -> None:
    h = partition_history(1.0)
    for node in ("master2", "worker1"):
        standby = replace(h, faults=(Fault(t(10), "partition", node, {"peers": []}),))
        assert one(standby, "P2").status == Status.NOT_EXERCISED


def test_p2_uses_the_commit_time_of_the_election() -> None:
    """The new leader began its election 1 s after the kill, but its transaction waited on a
    lock and committed 20 s later: the takeover took 20 s."""
    h = partition_history(1.0, peers=[])
    late = replace(h.events[1], committed_at=t(30))
    assert_fails(one(replace(h, events=(h.events[0], late)), "P2"), "after 20.000 s")


# -- P7: takeover while paused, the frozen transaction ----------------------------------------


def p7_history(committed_at: float | None = None, observed: bool = True) -> History:
    log = Log().elect(0, M1, 1).elect(9, M2, 2).add(31, "leader.fenced_out", M1, 1)
    events = list(log.events)
    if committed_at is not None:
        events[1] = replace(events[1], committed_at=t(committed_at))
    faults = [Fault(t(5), "pause", "master1"), Fault(t(30), "resume", "master1")]
    if observed:
        tx = {"what": "frozen_in_fenced_transaction", "backend_pid": 42, "state": "active"}
        faults.insert(1, Fault(t(5.1), OBSERVE, "master1", {**tx, "xact_start": "x"}))
    return History(events=tuple(events), faults=tuple(faults), nodes=NODES)


def test_p7_measures_the_takeover_while_paused_and_names_the_frozen_transaction() -> None:
    v = one(p7_history(), "P7")
    assert v.status == Status.PASS, v
    assert v.measures["paused_takeover_s"] == (4.0,)
    assert v.measures["step_down_s"] == (1.0,)
    assert "inside a fenced transaction (backend 42, active" in v.evidence[0]


def test_p7_fails_when_the_takeover_committed_only_after_the_resume() -> None:
    """The standby's election began during the pause but waited on the frozen leader's row
    lock: it committed after the thaw, so nobody led while the leader was frozen."""
    assert_fails(one(p7_history(committed_at=30.2), "P7"), "no takeover while paused for 25.0 s")


def test_p7_fails_on_a_takeover_slower_than_its_bound() -> None:
    log = Log().elect(0, M1, 1).elect(17, M2, 2).add(31, "leader.fenced_out", M1, 1)
    h = replace(p7_history(), events=tuple(log.events))
    assert_fails(one(h, "P7"), "taken 12.000 s later (bound 11.0 s): takeover too slow")


def test_event_at_prefers_the_commit_time() -> None:
    e = Event(1, t(0), "leader.elected", M1, 1)
    assert e.at == t(0)
    assert replace(e, committed_at=t(3)).at == t(3)


def test_an_observation_changes_no_node_state() -> None:
    faults = [Fault(t(0), "pause", "master1"), Fault(t(1), OBSERVE, "master1", {"what": "x"})]
    nodes = NodeStates(faults)
    assert nodes.down_at("master1", t(2))
    nodes = NodeStates([Fault(t(1), OBSERVE, "master1", {"what": "x"})])
    assert not nodes.down_at("master1", t(2))


# -- the prober's log -------------------------------------------------------------------------


class _Flaky(BaseHTTPRequestHandler):
    calls = 0

    def do_GET(self) -> None:
        _Flaky.calls += 1
        self.send_response(200 if _Flaky.calls % 2 else 503)
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


def test_the_prober_records_each_request_for_the_checker(tmp_path: Path) -> None:
    server = HTTPServer(("127.0.0.1", 0), _Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    log = tmp_path / "requests.jsonl"
    try:
        prober = Prober(f"http://127.0.0.1:{server.server_port}/ready", log, interval_s=0.01)
        with prober:
            threading.Event().wait(0.3)
    finally:
        server.shutdown()
        server.server_close()
    refused = Prober("http://127.0.0.1:1/ready", log, timeout_s=1).request()
    assert not refused["ok"] and refused["status"] is None and refused["error"]
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert len(lines) == prober.sent >= 4
    requests = read_requests(log)
    assert {r.ok for r in requests} == {True, False}
    assert {r.status for r in requests if not r.ok} == {503}
    assert all(a.ts <= b.ts for a, b in itertools.pairwise(requests))


def test_p8_judges_the_prober_log_with_a_kill(tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    rows = [(9.0, True), (10.2, False), (12.5, False), (13.5, True), (20.0, True)]
    log.write_text(
        "".join(
            json.dumps({"ts": t(s).isoformat(), "ok": ok, "status": 200}) + "\n" for s, ok in rows
        )
    )
    h = History(
        faults=(Fault(t(10), "kill", "master2"),), requests=tuple(read_requests(log)), nodes=NODES
    )
    v = one(h, "P8")
    assert v.status == Status.PASS, v
    assert v.measures["lb_failing_s"] == (2.5,)
    late = replace(h, requests=(*h.requests, replace(h.requests[1], ts=t(14), ok=False)))
    assert_fails(one(late, "P8"), "failed")


# -- P3: a cut-off worker's task stops by itself ---------------------------------------------


def test_p3_measures_how_long_a_cut_off_workers_task_ran_on() -> None:
    from haflow.chaos.model import Attempt, TaskRecord

    victim = Attempt("d", "r", "a", 1, "lost", 1, "worker1", t(0), t(1), t(14))
    successor = Attempt("d", "r", "a", 2, "success", 1, "worker2", t(13), t(13.5), t(20))
    records = tuple(
        TaskRecord("d", "r", "a", n, node, kind, t(at))
        for n, node, kind, at in [
            (1, "worker1", "start", 1),
            (1, "worker1", "tick", 15.8),
            (2, "worker2", "start", 16.0),
        ]
    )
    h = History(
        attempts=(victim, successor),
        records=records,
        faults=(Fault(t(10), "partition", "worker1", {"peers": []}),),
        nodes=NODES,
    )
    v = one(h, "P3")
    assert v.status == Status.PASS, v
    assert v.measures["partitioned_task_ran_s"] == (5.8,)
    assert one(h, "P5").status == Status.PASS
    overlapping = replace(
        h, records=(*records, TaskRecord("d", "r", "a", 1, "worker1", "tick", t(17)))
    )
    assert_fails(one(overlapping, "P5"), "attempt 2 started")


# -- the scenario catalogue ------------------------------------------------------------------


def test_every_scenario_of_issue_7_is_there_and_judges_known_properties() -> None:
    from haflow.chaos.checker import CHECKS
    from haflow.chaos.scenario import load_scenario, scenario_names

    wanted = {
        "leader-kill9",
        "leader-sigterm",
        "leader-pause",
        "leader-partition-zk",
        "leader-partition-all",
        "worker-kill9",
        "worker-partition",
        "zk-member-kill",
        "zk-ensemble-down",
        "broker-restart",
        "webserver-kill",
        "cron-failover",
        "random-faults",
    }
    scenarios = {load_scenario(n).name: load_scenario(n) for n in scenario_names()}
    assert wanted <= set(scenarios)
    for sc in scenarios.values():
        assert set(sc.properties) <= set(CHECKS), sc.name
        assert sc.masters <= 2 and sc.workers <= 2, sc.name  # small clusters on 2 cores
    assert scenarios["cron-failover"].cron == {"chaos_cron": "* * * * *"}
    assert scenarios["webserver-kill"].webserver is True


def test_the_random_sequence_is_reproducible_from_its_seed() -> None:
    import random

    from haflow.chaos.scenario import load_scenario

    menu = sorted(load_scenario("random-faults").schedule.__globals__["MENU"])

    def plan(seed: int) -> list[str]:
        rng = random.Random(seed)
        return [rng.choice(menu) for _ in range(4)]

    assert plan(7) == plan(7)
    assert len({tuple(plan(s)) for s in range(20)}) > 1


# -- P3: a worker cut off from ZooKeeper only ------------------------------------------------


def zk_cut_worker_history(state: str, successor: bool) -> History:
    victim = Attempt("d", "r", "a", 1, state, 1, "worker1", t(0), t(1), t(18))
    attempts = [victim]
    if successor:
        attempts.append(Attempt("d", "r", "a", 2, "success", 1, "worker2", t(12)))
    fault = Fault(t(5), "partition", "worker1", {"peers": ZK})
    return History(
        events=tuple(Log().elect(0, M1, 1).events),
        attempts=tuple(attempts),
        faults=(fault,),
        nodes=NODES,
    )


def test_p3_a_worker_cut_off_from_zookeeper_only_keeps_its_attempts() -> None:
    v = one(zk_cut_worker_history("success", successor=False), "P3")
    assert v.status == Status.PASS, v
    assert "ran on to success, nothing reclaimed" in "\n".join(v.evidence)
    assert_fails(one(zk_cut_worker_history("lost", successor=True), "P3"), "should have run on")
