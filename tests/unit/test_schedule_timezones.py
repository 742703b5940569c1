"""Cron schedules on a time zone's wall clock, across both daylight-saving changes of
Europe/Berlin and America/New_York (2026).

The rule (docs/design.md section 10): a wall time that occurs twice fires once, at its first
occurrence; a wall time that does not occur fires once, at the end of the gap; fires that land
on the same instant fire once; intervals are contiguous. Each case is checked against the
expected UTC instants written out by hand, and against a brute-force reading of the rule
minute by minute.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from haflow.dag import DAG, CronSchedule, parse_schedule
from haflow.errors import DagDefinitionError

BERLIN, NEW_YORK = "Europe/Berlin", "America/New_York"


def z(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def fires(s: CronSchedule, start: datetime, end: datetime) -> list[datetime]:
    """Every fire in (start, end], by stepping next_fire_after."""
    out, at = [], start
    while (at := s.next_fire_after(at)) <= end:
        out.append(at)
    return out


def oracle(expression: str, zone: str, start: datetime, end: datetime) -> list[datetime]:
    """The rule read literally, minute by minute: the first instant whose wall time is a cron
    time (a wall time seen twice counts at its first instant); a cron wall time never seen
    (skipped) fires at the first instant after it."""
    tz = ZoneInfo(zone)
    first_seen: dict[datetime, datetime] = {}
    instants = []
    at = start - timedelta(hours=3)
    while at <= end + timedelta(hours=3):
        first_seen.setdefault(at.astimezone(tz).replace(tzinfo=None), at)
        instants.append(at)
        at += timedelta(minutes=1)
    walls = sorted(first_seen)
    out = set()
    wall = walls[0]
    while wall <= walls[-1]:
        if croniter.match(expression, wall):
            if wall in first_seen:
                out.add(first_seen[wall])
            else:  # skipped: the first instant whose wall time is later
                out.add(next(i for i in instants if i.astimezone(tz).replace(tzinfo=None) > wall))
        wall += timedelta(minutes=1)
    return sorted(f for f in out if start < f <= end)


CASES = [
    # Berlin, spring (Sun 29 Mar 2026, 02:00 CET -> 03:00 CEST, at 01:00 UTC)
    (
        "0 9 * * *", BERLIN, z(2026, 3, 27), z(2026, 3, 31),
        [z(2026, 3, 27, 8), z(2026, 3, 28, 8), z(2026, 3, 29, 7), z(2026, 3, 30, 7)],
    ),
    (  # 02:30 does not exist on the 29th: it fires once, at 03:00 CEST
        "30 2 * * *", BERLIN, z(2026, 3, 27), z(2026, 3, 31),
        [z(2026, 3, 27, 1, 30), z(2026, 3, 28, 1, 30), z(2026, 3, 29, 1), z(2026, 3, 30, 0, 30)],
    ),
    (  # hourly: 02:00 is skipped and 03:00 is the end of the gap: one fire, 23 on the day
        "0 * * * *", BERLIN, z(2026, 3, 28, 23), z(2026, 3, 29, 22),
        [z(2026, 3, 29, h) for h in range(0, 23)],
    ),
    (  # :30 hourly: the skipped 02:30 fires at 03:00, then 03:30 as usual
        "30 * * * *", BERLIN, z(2026, 3, 28, 23), z(2026, 3, 29, 2),
        [z(2026, 3, 28, 23, 30), z(2026, 3, 29, 0, 30), z(2026, 3, 29, 1), z(2026, 3, 29, 1, 30)],
    ),
    # Berlin, autumn (Sun 25 Oct 2026, 03:00 CEST -> 02:00 CET, at 01:00 UTC)
    (
        "0 9 * * *", BERLIN, z(2026, 10, 23), z(2026, 10, 27),
        [z(2026, 10, 23, 7), z(2026, 10, 24, 7), z(2026, 10, 25, 8), z(2026, 10, 26, 8)],
    ),
    (  # 02:30 happens twice on the 25th: it fires once, at the first (CEST)
        "30 2 * * *", BERLIN, z(2026, 10, 23), z(2026, 10, 27),
        [z(2026, 10, 23, 0, 30), z(2026, 10, 24, 0, 30), z(2026, 10, 25, 0, 30),
         z(2026, 10, 26, 1, 30)],
    ),
    (  # hourly: the repeated 02:00 fires once; 24 fires in the 25-hour day
        "0 * * * *", BERLIN, z(2026, 10, 24, 22), z(2026, 10, 25, 22),
        [z(2026, 10, 24, 23), z(2026, 10, 25, 0)] + [z(2026, 10, 25, h) for h in range(2, 23)],
    ),
    # New York, spring (Sun 8 Mar 2026, 02:00 EST -> 03:00 EDT, at 07:00 UTC)
    (  # 02:00 does not exist on the 8th: it fires at 03:00 EDT
        "0 2 * * *", NEW_YORK, z(2026, 3, 6), z(2026, 3, 10),
        [z(2026, 3, 6, 7), z(2026, 3, 7, 7), z(2026, 3, 8, 7), z(2026, 3, 9, 6)],
    ),
    # New York, autumn (Sun 1 Nov 2026, 02:00 EDT -> 01:00 EST, at 06:00 UTC)
    (  # 01:30 happens twice on the 1st: once, at the first (EDT)
        "30 1 * * *", NEW_YORK, z(2026, 10, 30), z(2026, 11, 3),
        [z(2026, 10, 30, 5, 30), z(2026, 10, 31, 5, 30), z(2026, 11, 1, 5, 30),
         z(2026, 11, 2, 6, 30)],
    ),
    (  # every 20 minutes through the repeated hour: the second pass fires nothing
        "*/20 * * * *", NEW_YORK, z(2026, 11, 1, 4, 50), z(2026, 11, 1, 7, 10),
        [z(2026, 11, 1, 5), z(2026, 11, 1, 5, 20), z(2026, 11, 1, 5, 40), z(2026, 11, 1, 7)],
    ),
]  # fmt: skip


@pytest.mark.parametrize(("expression", "zone", "start", "end", "expected"), CASES)
def test_fires_follow_the_rule_across_the_changes(
    expression: str, zone: str, start: datetime, end: datetime, expected: list[datetime]
) -> None:
    s = CronSchedule(expression, zone)
    got = fires(s, start, end)
    assert got == expected
    assert got == oracle(expression, zone, start, end)
    assert len(set(got)) == len(got)  # never doubled


@pytest.mark.parametrize(("expression", "zone", "start", "end", "expected"), CASES)
def test_previous_fires_and_intervals_agree_with_the_next_ones(
    expression: str, zone: str, start: datetime, end: datetime, expected: list[datetime]
) -> None:
    s = CronSchedule(expression, zone)
    for before, fire in itertools.pairwise(expected):
        assert s.prev_fire_at_or_before(fire) == fire
        assert s.prev_fire_at_or_before(fire - timedelta(seconds=1)) == before
        assert s.data_interval_ending_at(fire) == (before, fire)  # contiguous
        # every instant in between goes back to `before` and on to `fire`
        mid = before + (fire - before) / 2
        assert (s.prev_fire_at_or_before(mid), s.next_fire_after(mid)) == (before, fire)


def test_catchup_creates_each_interval_once_across_a_year_of_changes() -> None:
    """Daily at 02:30 in Berlin through 2026: 365 runs, contiguous, one per local day."""
    s = CronSchedule("30 2 * * *", BERLIN)
    due = s.due_fires(z(2025, 12, 31), None, z(2026, 12, 31, 2), catchup=True)
    assert len(due) == 365 == len({f.astimezone(ZoneInfo(BERLIN)).date() for f in due})
    lengths = {(b - a) for a, b in itertools.pairwise(due)}
    # 02:30 is skipped on 29 March (it fires at 03:00): 23.5 hours, then 23.5 back to 02:30
    assert lengths == {timedelta(hours=23.5), timedelta(hours=24), timedelta(hours=25)}


def test_a_dag_reads_its_schedule_and_naive_dates_in_its_timezone() -> None:
    with DAG(
        "local",
        schedule="0 9 * * *",
        timezone="Europe/Berlin",
        start_date=datetime(2026, 1, 1),
        end_date=datetime(2026, 2, 1, 12),
        fileloc="/dags/local.py",
    ) as dag:
        pass
    assert dag.timezone == BERLIN
    assert dag.start_date == z(2025, 12, 31, 23) and dag.end_date == z(2026, 2, 1, 11)
    assert dag.schedule_obj == CronSchedule("0 9 * * *", BERLIN)
    assert dag.structure()["timezone"] == BERLIN
    with DAG("own", schedule="@daily", start_date=datetime(2026, 1, 1, tzinfo=ZoneInfo(NEW_YORK)),
             fileloc="/dags/own.py") as own:  # fmt: skip
        pass
    assert own.timezone == NEW_YORK  # the start_date's zone, as in Airflow
    assert own.schedule_obj == CronSchedule("0 0 * * *", NEW_YORK)
    assert parse_schedule("@daily", dag_id="d", fileloc=None, timezone=BERLIN) == CronSchedule(
        "0 0 * * *", BERLIN
    )


@pytest.mark.parametrize("bad", ["Mars/Olympus", "", " UTC", 3, "../etc/passwd"])
def test_an_unknown_timezone_is_an_error_naming_the_dag_file_and_value(bad: object) -> None:
    with pytest.raises(DagDefinitionError) as err:
        DAG("d", schedule="@daily", start_date=datetime(2026, 1, 1), timezone=bad,  # type: ignore[arg-type]
            fileloc="/dags/d.py")  # fmt: skip
    assert "DAG 'd' in /dags/d.py: unknown timezone " + repr(bad) in str(err.value)


def test_an_end_date_before_the_start_date_is_refused() -> None:
    with pytest.raises(DagDefinitionError, match=r"end_date .* is before start_date"):
        DAG("d", start_date=datetime(2026, 2, 1), end_date=datetime(2026, 1, 1), fileloc="f.py")
