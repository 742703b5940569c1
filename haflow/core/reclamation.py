"""Reclamation: when the leader takes a running attempt away from its worker, and when it
publishes a queued attempt again. Pure decisions; the protocol is in docs/design.md ("Worker
liveness").

The metastore heartbeat is the truth, ZooKeeper the fast hint:
- A worker renews each running attempt's `heartbeat_at` every `[worker] heartbeat_sec`, stamped
  by the metastore's own clock (`metastore.dbclock`), and kills the attempt when no renewal has
  succeeded for its self-fence window W = `timeout - self_fence_margin`, counted from when the
  last good one was *sent* (`worker.runner._Watch`). Losing ZooKeeper alone never stops it.
- The leader reclaims an attempt only when its heartbeat, judged on the metastore's clock, is
  older than `[worker] timeout`, or, when the worker's ZooKeeper node has vanished
  (`scheduler.worker_watch`, the hint), older than W + `[worker] reclaim_margin`. The hint
  shortens the wait to that point; it never skips it. Since the stamp comes after the send,
  a reclaimed attempt has always been stopped by its worker already, or its node is dead or
  frozen (a frozen one kills it on thaw, before anything else: see the design).
- The reclaim itself is a conditional update of the attempt (`running` at that number), and
  the worker's late report of it is rejected (`report.rejected`), so nothing counts twice.
- A queued attempt not claimed after `[scheduler] queued_timeout` is published again, backing
  off (`stale_queued`); a duplicate message fails its claim and is dropped.
What follows a reclaimed attempt is the one rule of `core.attempt_end`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from haflow.core.attempt_end import Ending, EndPolicy, Tally, after_attempt
from haflow.core.snapshot import Limits, RunSnap, TIChange, TISnap
from haflow.core.states import TaskState


def supervise(run: RunSnap, now: datetime, limits: Limits) -> list[TIChange]:
    """Reclaim silent attempts and time out overrunning ones (the worker's own timer is first).
    Silence is judged on the metastore's clock (`limits.metastore_now`, else `now`)."""
    clock = limits.metastore_now or now
    changes = []
    for ti in run.tis.values():
        if ti.state is not TaskState.RUNNING:
            continue
        why = reclaim_reason(ti, clock, limits)
        if why is not None:
            changes.append(ended(ti, now, Ending.RECLAIMED, limits, why))
        elif _overran(ti, now, limits.timeout_grace_s):
            changes.append(ended(ti, now, Ending.TIMED_OUT, limits, "execution timeout"))
    return changes


def reclaim_reason(ti: TISnap, metastore_now: datetime, limits: Limits) -> str | None:
    """Why the running attempt of `ti` is lost, or None while its worker may still run it."""
    last_sign = ti.heartbeat_at or ti.started_at
    if last_sign is None:
        return None
    silent = (metastore_now - last_sign).total_seconds()
    if ti.worker_id is not None and ti.worker_id in limits.gone_workers:
        if silent > limits.self_fence_s + limits.reclaim_margin_s:
            return f"worker's ZooKeeper session ended; no heartbeat for {silent:.1f} s"
        return None
    if silent > limits.worker_timeout_s:
        return f"worker stopped heartbeating ({silent:.1f} s)"
    return None


def ended(ti: TISnap, now: datetime, ending: Ending, limits: Limits, why: str) -> TIChange:
    """The change that closes the running attempt of `ti` as `ending` (core.attempt_end)."""
    nxt = after_attempt(
        Tally(ti.failures, ti.losses, ti.retries, ti.retry_delay_s, ti.retry_backoff_cap_s),
        ending,
        EndPolicy(limits.max_losses, limits.reclaim_consumes_retry),
        now,
    )
    return TIChange(
        ti.id,
        ti.attempt,
        TaskState.RUNNING,
        nxt.state,
        failures=nxt.failures,
        losses=nxt.losses if ending.lost else None,
        next_try_at=nxt.next_try_at,
        attempt_state=str(ending.attempt_state),
        reason=f"{why}; {nxt.note}" if nxt.note else why,
    )


def stale_queued(ti: TISnap, now: datetime, queued_timeout_s: float) -> bool:
    """Publish a queued attempt again when its message may be lost, backing off: each wait is
    as long as the attempt has already waited, so a long backlog on a broker does not fill up
    with copies (about log2 of the backlog's age of them; duplicates are dropped by the claim)."""
    if ti.queued_at is None:
        return False
    waited = ti.queued_at - (ti.first_queued_at or ti.queued_at)
    return now - ti.queued_at > max(timedelta(seconds=queued_timeout_s), waited)


def _overran(ti: TISnap, now: datetime, grace_s: float) -> bool:
    if ti.timeout_s is None or ti.started_at is None:
        return False
    return now - ti.started_at > timedelta(seconds=ti.timeout_s + grace_s)
