"""Fakes for the fast unit tests, shaped like the real objects they stand in for, and the
builders of hand-made chaos histories. Unit tests only: every behaviour faked here is also
proven against the real servers in tests/integration or chaos/.

- `FakeSchedulerRepo`: the parts of `Repository` the scheduler daemon uses (`leadership`,
  `members`, `record_event`), keeping the leader row's epoch as the metastore does;
- `FakeAttemptRepo`: the `attempts` group a worker's runner uses, on a fake clock;
- `FakeLoop`, `FakeExecutor`: the scheduler's loop and executor seams;
- `Log`, `t`, `one`, `assert_fails`, `NODES`, `M1`, `M2`: chaos histories and verdicts.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from haflow.chaos.checker import Bounds, Status, Verdict, check
from haflow.chaos.model import Event, History
from haflow.core.attempt_end import Ending
from haflow.errors import BackendUnavailable, FencedOut
from haflow.metastore.records import AttemptRef, ClaimedAttempt

# -- the scheduler daemon's repository ------------------------------------------------------


class FakeSchedulerRepo:
    """Keeps the leader row's epoch like the metastore does; resign is fenced. `down` makes
    every leadership write fail as an unreachable metastore does."""

    def __init__(self) -> None:
        self.epoch = 0
        self.events: list[tuple[str, int | None]] = []
        self.down = False
        self.engine = self
        self.leadership = _FakeLeadership(self)
        self.members = _FakeMembers()

    def dispose(self) -> None:
        pass

    def record_event(self, kind: str, now: datetime, **fields: Any) -> None:
        self.events.append((kind, fields.get("epoch")))


class _FakeLeadership:
    def __init__(self, repo: FakeSchedulerRepo) -> None:
        self.repo = repo

    def take(self, holder: str, mode: str, now: datetime, reason: str = "") -> int:
        if self.repo.down:
            raise BackendUnavailable("metastore unreachable")
        self.repo.epoch += 1
        self.repo.events.append(("leader.elected", self.repo.epoch))
        return self.repo.epoch

    def resign(self, epoch: int, holder: str, now: datetime, reason: str) -> None:
        if epoch != self.repo.epoch:
            raise FencedOut(f"epoch {epoch} is gone")
        self.repo.events.append(("leader.resigned", epoch))


class _FakeMembers:
    def heartbeat_scheduler(self, sid: str, **kw: Any) -> None:
        pass


class FakeLoop:
    """Ticks only under the leader row's current epoch, as the fenced real loop does."""

    def __init__(self, repo: FakeSchedulerRepo) -> None:
        self.repo = repo
        self.ticks: list[int] = []
        self.took_over: list[int] = []

    def tick(self, epoch: int) -> bool:
        if epoch != self.repo.epoch:
            raise FencedOut(f"epoch {epoch} is gone")
        self.ticks.append(epoch)
        return False

    def take_over(self, epoch: int) -> None:
        self.took_over.append(epoch)


class FakeExecutor:
    def healthy(self) -> bool:
        return True

    def maintain(self) -> None:
        pass


# -- a worker's attempts ----------------------------------------------------------------------


class Clock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class FakeAttemptRepo:
    """Claims succeed after `claim_takes` seconds of the fake clock; reports are recorded."""

    def __init__(
        self,
        clock: Clock,
        claim_takes: float,
        fileloc: str,
        timeout_s: float | None = None,
        task_id: str = "t",
    ) -> None:
        self.attempts = _FakeAttempts(self, clock, claim_takes, fileloc, timeout_s, task_id)
        self.reports: list[Ending] = []
        self.reasons: list[str] = []
        self.logs: list[str] = []


class _FakeAttempts:
    def __init__(
        self,
        repo: FakeAttemptRepo,
        clock: Clock,
        claim_takes: float,
        fileloc: str,
        timeout_s: float | None,
        task_id: str,
    ) -> None:
        self.repo = repo
        self.task_id = task_id
        self.clock = clock
        self.claim_takes = claim_takes
        self.fileloc = fileloc
        self.timeout_s = timeout_s

    def claim(self, ref: AttemptRef, worker_id: str, now: datetime) -> ClaimedAttempt:
        self.clock.t += self.claim_takes
        return ClaimedAttempt(
            ref.ti_id,
            ref.attempt,
            "d",
            "r",
            self.task_id,
            self.fileloc,
            self.timeout_s,
            {},
            None,
            None,
        )

    def finish(
        self,
        ti_id: int,
        attempt: int,
        worker_id: str,
        ending: Ending,
        reason: str,
        now: datetime,
        log: str = "",
        **kw: Any,
    ) -> bool:
        self.repo.reports.append(ending)
        self.repo.reasons.append(reason)
        self.repo.logs.append(log)
        return True

    def append_log(self, *a: Any) -> None:
        pass

    def heartbeat(self, *a: Any) -> bool:
        return True


# -- chaos histories ----------------------------------------------------------------------------

T0 = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)
NODES = {
    "master1": "master",
    "master2": "master",
    "worker1": "worker",
    "worker2": "worker",
    "zk1": "zookeeper",
    "zk2": "zookeeper",
    "zk3": "zookeeper",
}
M1 = "master1:11:aaaaaa"
M2 = "master2:22:bbbbbb"


def t(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


class Log:
    """Builds an event log with increasing ids (commit order)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def add(self, at: float, kind: str, actor: str, epoch: int | None = None, **kw: object) -> Log:
        self.events.append(
            Event(len(self.events) + 1, t(at), kind, actor, epoch, **kw)  # type: ignore[arg-type]
        )
        return self

    def elect(self, at: float, actor: str, epoch: int, mode: str = "zookeeper") -> Log:
        return self.add(at, "leader.elected", actor, epoch, detail=json.dumps({"mode": mode}))


def one(h: History, prop: str, bounds: Bounds | None = None) -> Verdict:
    (v,) = check(h, [prop], bounds)
    return v


def assert_fails(v: Verdict, *words: str) -> None:
    assert v.status == Status.FAIL, v
    text = "\n".join(v.evidence)
    for w in words:
        assert w in text, f"{w!r} not in evidence:\n{text}"
