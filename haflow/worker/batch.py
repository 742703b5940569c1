"""Many attempts' claims, heartbeats and reports as few transactions: group commit.

The threads of one worker process each run an attempt (`haflow.worker.runner`); each call they
make to the metastore goes through a lane of its kind (claims, heartbeats, reports), whose own
thread runs every call waiting in it as one transaction (`attempts.claim_many`, `beat`,
`finish_many`). A call waits while the lane's transaction before it runs, then goes with
every call that came meanwhile: an idle worker waits for nothing, a busy one spends one
transaction on many attempts. Heartbeats have a lane of their own so that a claim or a report
that waits on a lock never delays them. Every call keeps its own verdict (a claim that lost,
a zombie's report, an attempt that is no longer ours), and a transaction that fails raises its
error to every call that was in it, as a call of its own would have.
"""

from __future__ import annotations

import copy
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from haflow.core.attempt_end import DEFAULT_POLICY, Ending, EndPolicy
from haflow.metastore.records import AttemptRef, AttemptReport, ClaimedAttempt
from haflow.metastore.repository.attempts import AttemptQueries

T = TypeVar("T")
R = TypeVar("R")


class AttemptCalls(Protocol):
    """What an attempt runner asks of the metastore: the repository's `attempts` (one
    transaction a call) or an `AttemptBatcher` (one transaction for many calls)."""

    def claim(self, ref: AttemptRef, worker_id: str, now: datetime) -> ClaimedAttempt | None: ...

    def heartbeat(
        self, ti_id: int, attempt: int, worker_id: str, log: str = "", now: datetime | None = None
    ) -> bool: ...

    def finish(
        self,
        ti_id: int,
        attempt: int,
        worker_id: str,
        ending: Ending,
        reason: str,
        now: datetime,
        log: str = "",
        policy: EndPolicy = DEFAULT_POLICY,
        result: str | None = None,
        poke_at: datetime | None = None,
        sensing_since: datetime | None = None,
    ) -> bool: ...


class AttemptBatcher:
    """The metastore calls of an attempt runner (`claim`, `heartbeat`, `finish`), shared by
    the runner threads of one process; `close` stops its lanes."""

    def __init__(self, attempts: AttemptQueries, *, max_batch: int = 64) -> None:
        self.attempts = attempts
        self._claims: _Lane[_Claim, ClaimedAttempt | None] = _Lane(
            "claims", self._claim_all, max_batch
        )
        self._beats: _Lane[_Beat, bool] = _Lane("heartbeats", self._beat_all, max_batch)
        self._reports: _Lane[_Report, bool] = _Lane("reports", self._report_all, max_batch)

    def claim(self, ref: AttemptRef, worker_id: str, now: datetime) -> ClaimedAttempt | None:
        return self._claims.call(_Claim(ref, worker_id, now))

    def heartbeat(
        self, ti_id: int, attempt: int, worker_id: str, log: str = "", now: datetime | None = None
    ) -> bool:
        return self._beats.call(_Beat(ti_id, attempt, worker_id, log, now))

    def finish(
        self,
        ti_id: int,
        attempt: int,
        worker_id: str,
        ending: Ending,
        reason: str,
        now: datetime,
        log: str = "",
        policy: EndPolicy = DEFAULT_POLICY,
        result: str | None = None,
        poke_at: datetime | None = None,
        sensing_since: datetime | None = None,
    ) -> bool:
        report = AttemptReport(
            ti_id, attempt, ending, reason, now, log, result, poke_at, sensing_since
        )
        return self._reports.call(_Report(report, worker_id, policy))

    def close(self) -> None:
        for lane in (self._claims, self._beats, self._reports):
            lane.close()

    def _claim_all(self, calls: Sequence[_Claim]) -> list[ClaimedAttempt | None]:
        return _grouped(
            calls,
            lambda c: c.worker_id,
            lambda group: self.attempts.claim_many(
                [c.ref for c in group], group[0].worker_id, max(c.now for c in group)
            ),
        )

    def _beat_all(self, calls: Sequence[_Beat]) -> list[bool]:
        def beat(group: Sequence[_Beat]) -> list[bool]:
            keys = [(c.ti_id, c.attempt) for c in group]
            logs = [(c.ti_id, c.attempt, c.log, c.now) for c in group if c.log and c.now]
            ours = self.attempts.beat(keys, group[0].worker_id, logs)
            return [key in ours for key in keys]

        return _grouped(calls, lambda c: c.worker_id, beat)

    def _report_all(self, calls: Sequence[_Report]) -> list[bool]:
        return _grouped(
            calls,
            lambda c: (c.worker_id, c.policy),
            lambda group: self.attempts.finish_many(
                [c.report for c in group], group[0].worker_id, group[0].policy
            ),
        )


@dataclass(frozen=True)
class _Claim:
    ref: AttemptRef
    worker_id: str
    now: datetime


@dataclass(frozen=True)
class _Beat:
    ti_id: int
    attempt: int
    worker_id: str
    log: str
    now: datetime | None


@dataclass(frozen=True)
class _Report:
    report: AttemptReport
    worker_id: str
    policy: EndPolicy


def _grouped(
    calls: Sequence[T], key: Callable[[T], Any], run: Callable[[Sequence[T]], list[R]]
) -> list[R]:
    """`run` once per group of calls with the same `key` (in practice there is one: a
    process's threads share its worker id); the answers in the calls' order."""
    groups: dict[Any, list[int]] = {}
    for i, c in enumerate(calls):
        groups.setdefault(key(c), []).append(i)
    out: list[Any] = [None] * len(calls)
    for members in groups.values():
        for i, answer in zip(members, run([calls[i] for i in members]), strict=True):
            out[i] = answer
    return out


def _own(error: BaseException) -> BaseException:
    """A copy of `error` for one caller to raise (tracebacks would mix if every thread raised
    the same object); the error itself if it cannot be copied."""
    try:
        return copy.copy(error)
    except Exception:
        return error


@dataclass
class _Call(Generic[T, R]):
    item: T
    done: threading.Event = field(default_factory=threading.Event)
    answer: R | None = None
    error: BaseException | None = None


class _Lane(Generic[T, R]):
    """Calls of one kind from many threads, run `max_batch` at most per transaction by the
    lane's own thread."""

    def __init__(self, name: str, run: Callable[[Sequence[T]], list[R]], max_batch: int) -> None:
        self._run = run
        self._max = max(1, max_batch)
        self._queue: queue.SimpleQueue[_Call[T, R] | None] = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name=f"attempt-{name}", daemon=True)
        self._thread.start()

    def call(self, item: T) -> R:
        if self._closed:
            raise RuntimeError("the attempt batcher is closed")
        c: _Call[T, R] = _Call(item)
        self._queue.put(c)
        c.done.wait()
        if c.error is not None:
            raise _own(c.error) from c.error
        return c.answer  # type: ignore[return-value]

    def close(self) -> None:
        self._closed = True
        self._queue.put(None)
        self._thread.join(5.0)

    def _serve(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch, last = self._more([first])
            self._answer(batch)
            if last:
                return

    def _more(self, batch: list[_Call[T, R]]) -> tuple[list[_Call[T, R]], bool]:
        """Every call waiting now, up to the cap; True when the lane was closed meanwhile."""
        while len(batch) < self._max:
            try:
                c = self._queue.get_nowait()
            except queue.Empty:
                return batch, False
            if c is None:
                return batch, True
            batch.append(c)
        return batch, False

    def _answer(self, batch: list[_Call[T, R]]) -> None:
        try:
            answers = self._run([c.item for c in batch])
        except BaseException as exc:  # every call in the transaction gets its error
            for c in batch:
                c.error = exc
                c.done.set()
            if not isinstance(exc, Exception):
                raise
            return
        for c, answer in zip(batch, answers, strict=True):
            c.answer = answer
            c.done.set()
