"""The attempt batcher: calls that wait while a transaction runs go together in the next one,
each keeps its own verdict, a failed transaction fails every call in it, and heartbeats never
wait behind claims or reports."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest

from haflow.core.attempt_end import Ending, EndPolicy
from haflow.errors import BackendUnavailable
from haflow.metastore.records import AttemptRef, AttemptReport, ClaimedAttempt
from haflow.worker.batch import AttemptBatcher
from tests.waiting import wait_for

NOW = datetime(2026, 11, 26, tzinfo=UTC)


class GatedAttempts:
    """Claims wait at a gate inside their 'transaction'; odd task instances lose their claim."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.claims: list[list[int]] = []
        self.beats: list[list[tuple[int, int]]] = []
        self.reports: list[list[int]] = []
        self.fail_reports = False

    def claim_many(
        self, refs: Sequence[AttemptRef], worker_id: str, now: datetime
    ) -> list[ClaimedAttempt | None]:
        self.claims.append([r.ti_id for r in refs])
        assert self.gate.wait(10)
        return [
            None if r.ti_id % 2 else ClaimedAttempt(r.ti_id, r.attempt, "d", "r", "t", "f", None)
            for r in refs
        ]

    def beat(self, keys: Sequence[tuple[int, int]], worker_id: str, logs: Any = ()) -> set[Any]:
        self.beats.append(list(keys))
        return {k for k in keys if k[0] != 13}

    def finish_many(
        self, reports: Sequence[AttemptReport], worker_id: str, policy: EndPolicy
    ) -> list[bool]:
        self.reports.append([r.ti_id for r in reports])
        if self.fail_reports:
            raise BackendUnavailable("metastore unreachable: connection refused")
        return [True for _ in reports]


@pytest.fixture
def fake() -> Iterator[tuple[GatedAttempts, AttemptBatcher]]:
    attempts = GatedAttempts()
    batcher = AttemptBatcher(attempts)  # type: ignore[arg-type]
    yield attempts, batcher
    attempts.gate.set()
    batcher.close()


def test_claims_waiting_on_a_transaction_go_together_in_the_next(
    fake: tuple[GatedAttempts, AttemptBatcher],
) -> None:
    attempts, batcher = fake
    with ThreadPoolExecutor(6) as pool:
        first = pool.submit(batcher.claim, AttemptRef(100, 1, 1), "w1", NOW)
        wait_for("the first claim's transaction", lambda: attempts.claims)
        rest = [pool.submit(batcher.claim, AttemptRef(n, 1, 1), "w1", NOW) for n in range(1, 6)]
        wait_for("five claims waiting", lambda: batcher._claims._queue.qsize() == 5)
        attempts.gate.set()
        assert first.result(10) is not None
        verdicts = [f.result(10) for f in rest]
    assert attempts.claims == [[100], [1, 2, 3, 4, 5]]
    assert [v is not None for v in verdicts] == [False, True, False, True, False]


def test_a_heartbeat_does_not_wait_behind_a_claim(
    fake: tuple[GatedAttempts, AttemptBatcher],
) -> None:
    attempts, batcher = fake
    with ThreadPoolExecutor(2) as pool:
        stuck = pool.submit(batcher.claim, AttemptRef(2, 1, 1), "w1", NOW)
        wait_for("the claim's transaction", lambda: attempts.claims)
        assert batcher.heartbeat(12, 1, "w1", log="out\n", now=NOW)  # the claim still waits
        assert not batcher.heartbeat(13, 1, "w1")  # no longer ours
        assert not stuck.done()
        attempts.gate.set()
        assert stuck.result(10) is not None


def test_a_failed_transaction_fails_every_call_in_it(
    fake: tuple[GatedAttempts, AttemptBatcher],
) -> None:
    attempts, batcher = fake
    attempts.fail_reports = True
    with pytest.raises(BackendUnavailable, match="connection refused"):
        batcher.finish(1, 1, "w1", Ending.SUCCESS, "", NOW)
    attempts.fail_reports = False
    assert batcher.finish(1, 1, "w1", Ending.SUCCESS, "", NOW)
    assert attempts.reports == [[1], [1]]


def test_a_closed_batcher_refuses_calls(fake: tuple[GatedAttempts, AttemptBatcher]) -> None:
    _, batcher = fake
    batcher.close()
    with pytest.raises(RuntimeError, match="closed"):
        batcher.heartbeat(1, 1, "w1")
