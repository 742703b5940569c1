"""Failover drills: how long until a standby leads after the leader is killed or stopped.

    python benchmarks/failover.py [--drills 20] [--quick] [--json]

Starts a real 3-node ZooKeeper ensemble (Debian's package) and a fresh PostgreSQL database,
runs three `haflow scheduler` processes (failover policy), then N times: SIGKILL the leader
and time from the signal to the next `leader.elected` event in the event log; N times:
SIGTERM the leader and time from the signal, and from its `leader.resigned` event, to the next
election. Each victim is restarted as a standby, and the next drill waits for steady state
(three live schedulers, three ZooKeeper candidates: the victim's session has expired).
Prints min / p50 / p95 / max per kind (and the design's targets: 5 s for SIGKILL, 1 s for
SIGTERM); `--json` adds one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path

from common import ZkEnsemble, ensure_services, fresh_postgres, start_haflow, stop_group, summary
from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from haflow.election.zookeeper import election_path
from haflow.metastore.engine import create_engine
from haflow.metastore.records import EventRow
from haflow.metastore.repository import Repository

SESSION_S = 6.0


class Drill:
    def __init__(self, home: Path, url: str, zk_hosts: str) -> None:
        (home / "dags").mkdir(parents=True)
        self.home = home
        self.env = {
            **os.environ,
            "HAFLOW_HOME": str(home),
            "HAFLOW__CORE__SQL_ALCHEMY_CONN": url,
            "HAFLOW__CORE__PARALLELISM": "1",
            "HAFLOW__SCHEDULER__CLUSTER": "drill",
            "HAFLOW__SCHEDULER__HEARTBEAT_SEC": "0.5",
            "HAFLOW__ELECTION__MODE": "zookeeper",
            "HAFLOW__ELECTION__ZK_HOSTS": zk_hosts,
            "HAFLOW__ELECTION__ZK_SESSION_TIMEOUT": str(SESSION_S),
            "HAFLOW__LOGGING__LEVEL": "WARNING",
        }
        self.repo = Repository(create_engine(url), cluster="drill")
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.zk = KazooClient(hosts=zk_hosts)
        self.zk.start(timeout=30)

    def start_one(self) -> None:
        p = start_haflow("scheduler", env=self.env, log=self.home / "schedulers.log")
        self.procs[p.pid] = p

    def live(self) -> int:
        return sum(
            1
            for s in self.repo.members.schedulers()
            if s["state"] in ("leader", "standby")
            and int(s["id"].split(":")[1]) in self.procs
            and self.procs[int(s["id"].split(":")[1])].poll() is None
        )

    def elected_after(self, epoch: int, limit_s: float = 30.0) -> EventRow:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            found = [
                e
                for e in self.repo.history.events(kinds=["leader.elected"])
                if (e.epoch or 0) > epoch
            ]
            if found:
                return found[0]
            time.sleep(0.02)
        raise SystemExit(
            f"no leader after epoch {epoch} within {limit_s} s; see {self.home / 'schedulers.log'}"
        )

    def wait_ready(self, n: int = 3) -> None:
        """Steady state before a drill: n live schedulers and exactly n ZooKeeper candidates,
        i.e. the previous victim's session has expired (a second failure within the session
        timeout is another drill: the successor may wait for that session to expire)."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.live() == n and self.contenders() == n and self.current() is not None:
                return
            time.sleep(0.05)
        raise SystemExit(f"the cluster did not settle to {n} schedulers within 60 s")

    def contenders(self) -> int:
        try:
            return len(self.zk.get_children(election_path("drill")))
        except NoNodeError:
            return 0

    def current(self) -> EventRow | None:
        events = self.repo.history.events(kinds=["leader.elected"])
        return events[-1] if events else None

    def run(self, sig: int) -> dict[str, float]:
        leader = self.current()
        assert leader is not None
        pid = int(leader.actor.split(":")[1])
        sent = time.time()
        os.kill(pid, sig)
        new = self.elected_after(leader.epoch or 0)
        self.procs.pop(pid).wait(30)
        out = {"from_signal": (new.ts - datetime.fromtimestamp(sent).astimezone()).total_seconds()}
        if sig == signal.SIGTERM:
            resigned = [
                e
                for e in self.repo.history.events(kinds=["leader.resigned"])
                if e.epoch == leader.epoch
            ]
            if resigned:
                out["from_resign"] = (new.ts - resigned[0].ts).total_seconds()
        self.start_one()
        return out

    def close(self) -> None:
        for p in self.procs.values():
            stop_group(p, grace_s=10)
        self.repo.engine.dispose()
        self.zk.stop()
        self.zk.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--drills", type=int, default=20)
    ap.add_argument("--quick", action="store_true", help="5 drills of each kind")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    drills = 5 if args.quick else args.drills
    ensure_services()
    results: dict[str, list[float]] = {"kill9": [], "sigterm": [], "sigterm_from_resign": []}
    with fresh_postgres("haflow_drill") as url, tempfile.TemporaryDirectory() as tmp:
        zk = ZkEnsemble(Path(tmp) / "zk")
        zk.start()
        drill = Drill(Path(tmp) / "home", url, zk.hosts)
        try:
            for _ in range(3):
                drill.start_one()
            drill.wait_ready()
            for kind, sig in (("kill9", signal.SIGKILL), ("sigterm", signal.SIGTERM)):
                for i in range(drills):
                    drill.wait_ready()
                    r = drill.run(sig)
                    results[kind].append(r["from_signal"])
                    if "from_resign" in r:
                        results["sigterm_from_resign"].append(r["from_resign"])
                    print(f"{kind} drill {i + 1}/{drills}: {r['from_signal']:.3f} s", flush=True)
        finally:
            drill.close()
            zk.stop()
    table = {k: summary(v) for k, v in results.items() if v}
    targets = {"kill9": 5.0, "sigterm": 1.0, "sigterm_from_resign": 1.0}
    print(f"\n{'takeover (s)':<22}{'min':>8}{'p50':>8}{'p95':>8}{'max':>8}{'target':>8}")
    for k, s in table.items():
        print(
            f"{k:<22}"
            + "".join(f"{s[c]:>8.3f}" for c in ("min", "p50", "p95", "max"))
            + f"{targets[k]:>8.1f}"
        )
    if args.json:
        print(
            json.dumps(
                {
                    "drills": drills,
                    **{f"{k}_{c}_s": round(v, 3) for k, s in table.items() for c, v in s.items()},
                }
            )
        )


if __name__ == "__main__":
    main()
