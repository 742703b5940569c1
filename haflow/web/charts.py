"""Charts drawn on the server as SVG: a run's attempts on a time axis (Gantt), and a DAG's
run durations side by side. Pure: plain rows in, shapes in pixels out; the templates draw
them (no script, nothing outside the page's CSP).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

LABEL_W, ROW_H, BAR_H, PLOT_W, AXIS_H, MARGIN = 180, 24, 14, 640, 22, 8
CHART_H, BAR_W, BAR_GAP, AXIS_W = 160, 18, 6, 60


@dataclass(frozen=True)
class AttemptSpan:
    """One attempt as the Gantt chart needs it."""

    task_id: str
    attempt: int
    state: str
    queued_at: datetime
    started_at: datetime | None
    ended_at: datetime | None


@dataclass(frozen=True)
class Bar:
    label: str
    state: str
    x: float  # where it starts running (or was queued, if it never started)
    width: float
    y: float
    wait_x: float  # where it was queued: the wait is drawn from here to x
    title: str


@dataclass(frozen=True)
class Tick:
    at: float  # x of a time axis (Gantt), y of a duration axis
    label: str


@dataclass(frozen=True)
class Chart:
    bars: list[Bar]
    ticks: list[Tick]
    width: float
    height: float


def _seconds_label(s: float) -> str:
    if s >= 3600:
        return f"{s / 3600:.1f} h"
    if s >= 60:
        return f"{s / 60:.1f} min"
    return f"{s:.1f} s" if s < 10 else f"{s:.0f} s"


def gantt(spans: Sequence[AttemptSpan], now: datetime) -> Chart:
    """A row per attempt (in order of queueing), on one time axis from the first queueing to
    the last end (or `now`, for what still runs)."""
    rows = sorted(spans, key=lambda a: (a.queued_at, a.task_id, a.attempt))
    if not rows:
        return Chart([], [], LABEL_W + PLOT_W + 2 * MARGIN, AXIS_H + 2 * MARGIN)
    t0 = rows[0].queued_at
    t1 = max(a.ended_at or now for a in rows)
    span = max((t1 - t0).total_seconds(), 0.001)

    def x(t: datetime) -> float:
        return LABEL_W + MARGIN + PLOT_W * (t - t0).total_seconds() / span

    bars = []
    for i, a in enumerate(rows):
        start = a.started_at or a.queued_at
        end = a.ended_at or now
        ran = (end - start).total_seconds() if a.started_at else 0.0
        bars.append(
            Bar(
                label=f"{a.task_id} #{a.attempt}",
                state=a.state,
                x=x(start),
                width=max(x(end) - x(start), 2.0),
                y=MARGIN + i * ROW_H,
                wait_x=x(a.queued_at),
                title=f"{a.task_id} attempt {a.attempt}: {a.state}, ran {_seconds_label(ran)}",
            )
        )
    ticks = [
        Tick(LABEL_W + MARGIN + PLOT_W * k / 4, "+" + _seconds_label(span * k / 4))
        for k in range(5)
    ]
    height = MARGIN * 2 + len(rows) * ROW_H + AXIS_H
    return Chart(bars, ticks, LABEL_W + PLOT_W + 2 * MARGIN + 40, height)


@dataclass(frozen=True)
class RunSpan:
    run_id: str
    state: str
    seconds: float | None  # None: not started, or not ended


def durations(runs: Sequence[RunSpan]) -> Chart:
    """A column per run (oldest left), its height its duration; unfinished runs are left out."""
    done = [r for r in runs if r.seconds is not None]
    top = max((r.seconds or 0.0 for r in done), default=0.0) or 1.0
    bars = []
    for i, r in enumerate(done):
        h = max(CHART_H * (r.seconds or 0.0) / top, 2.0)
        bars.append(
            Bar(
                label=r.run_id,
                state=r.state,
                x=AXIS_W + MARGIN + i * (BAR_W + BAR_GAP),
                width=BAR_W,
                y=MARGIN + CHART_H - h,
                wait_x=0.0,
                title=f"{r.run_id}: {r.state} in {_seconds_label(r.seconds or 0.0)}",
            )
        )
    ticks = [Tick(MARGIN + CHART_H * (1 - k / 2), _seconds_label(top * k / 2)) for k in range(3)]
    width = AXIS_W + 2 * MARGIN + max(len(done), 1) * (BAR_W + BAR_GAP)
    return Chart(bars, ticks, width, CHART_H + 2 * MARGIN)
