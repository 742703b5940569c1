"""The server-drawn charts: a run's attempts on one time axis, a DAG's run durations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from haflow.web.charts import LABEL_W, MARGIN, PLOT_W, AttemptSpan, RunSpan, durations, gantt

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def test_gantt_draws_each_attempt_on_one_axis_with_its_wait() -> None:
    chart = gantt(
        [
            AttemptSpan("b", 1, "success", at(4), at(5), at(10)),
            AttemptSpan("a", 1, "failed", at(0), at(1), at(3)),
            AttemptSpan("a", 2, "running", at(3), at(4), None),  # still runs: up to now
        ],
        now=at(20),
    )
    a1, a2, b1 = chart.bars  # in the order they were queued
    assert [b.label for b in chart.bars] == ["a #1", "a #2", "b #1"]
    left, per_s = LABEL_W + MARGIN, PLOT_W / 20
    assert (a1.wait_x, a1.x, a1.width) == pytest.approx((left, left + per_s, 2 * per_s))
    assert a2.x + a2.width == pytest.approx(left + PLOT_W)  # to `now`
    assert b1.y > a2.y > a1.y
    assert "ran 5.0 s" in b1.title
    assert [t.label for t in chart.ticks] == ["+0.0 s", "+5.0 s", "+10 s", "+15 s", "+20 s"]


def test_gantt_of_a_run_without_attempts_is_empty() -> None:
    assert gantt([], now=T0).bars == []


def test_durations_scale_to_the_longest_run_and_leave_out_unfinished_ones() -> None:
    chart = durations(
        [
            RunSpan("r1", "success", 30.0),
            RunSpan("r2", "failed", 120.0),
            RunSpan("r3", "running", None),
        ]
    )
    r1, r2 = chart.bars
    assert (r1.label, r2.label) == ("r1", "r2")
    assert r2.y < r1.y  # taller
    assert r2.x > r1.x
    assert r2.title == "r2: failed in 2.0 min"
    assert chart.ticks[-1].label == "2.0 min"
