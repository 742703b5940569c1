"""Cron schedules: parsing, presets, fire times, data intervals and which runs are due."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from haflow.dag import CronSchedule, parse_schedule
from haflow.dag.schedule import MAX_DUE_FIRES, IntervalSchedule, OnceSchedule
from haflow.errors import DagDefinitionError


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, sec: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, sec, tzinfo=UTC)


DAILY = CronSchedule("0 0 * * *")
HOURLY = CronSchedule("0 * * * *")


def test_none_means_unscheduled() -> None:
    assert parse_schedule(None, dag_id="d", fileloc="f.py") is None


@pytest.mark.parametrize(
    ("preset", "cron"),
    [
        ("@hourly", "0 * * * *"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@weekly", "0 0 * * 0"),
        ("@monthly", "0 0 1 * *"),
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
    ],
)
def test_presets_map_to_cron(preset: str, cron: str) -> None:
    assert parse_schedule(preset, dag_id="d", fileloc=None) == CronSchedule(cron)


def test_plain_cron_is_kept() -> None:
    assert parse_schedule("*/5 * * * *", dag_id="d", fileloc=None) == CronSchedule("*/5 * * * *")


@pytest.mark.parametrize(
    "bad", ["not a cron", "61 * * * *", "* * * *", "0 0 31 2 *", "@fortnightly", "* * * * * *"]
)
def test_bad_cron_names_dag_file_and_expression(bad: str) -> None:
    with pytest.raises(DagDefinitionError) as info:
        parse_schedule(bad, dag_id="my_dag", fileloc="/dags/my.py")
    message = str(info.value)
    assert "my_dag" in message
    assert "/dags/my.py" in message
    assert repr(bad) in message


def test_once_runs_once_at_its_start_date() -> None:
    once = parse_schedule("@once", dag_id="d", fileloc=None)
    assert isinstance(once, OnceSchedule) and once.expression == "@once"
    start = utc(2024, 1, 1, 6)
    assert once.due_fires(start, None, utc(2024, 1, 1), catchup=False) == []  # not yet
    assert once.due_fires(start, None, utc(2024, 3, 1), catchup=True) == [start]
    assert once.due_fires(start, start, utc(2024, 3, 1), catchup=True) == []  # created
    assert once.data_interval_ending_at(start) == (start, start)
    assert once.next_due(start, None, utc(2024, 3, 1), False) == start
    assert once.next_due(start, start, utc(2024, 3, 1), False) is None


def test_an_interval_fires_on_a_grid_from_the_start_date() -> None:
    every = parse_schedule(timedelta(hours=6), dag_id="d", fileloc=None)
    assert isinstance(every, IntervalSchedule) and every.expression == "@every 21600s"
    assert parse_schedule(every.expression, dag_id="d", fileloc=None) == every  # round trip
    start = utc(2024, 1, 1, 1)
    now = utc(2024, 1, 2, 2)  # 25 h later: fires at 7, 13, 19, 1 o'clock
    assert every.due_fires(start, None, now, catchup=True) == [
        utc(2024, 1, 1, 7),
        utc(2024, 1, 1, 13),
        utc(2024, 1, 1, 19),
        utc(2024, 1, 2, 1),
    ]
    assert every.due_fires(start, None, now, catchup=False) == [utc(2024, 1, 2, 1)]
    assert every.due_fires(start, utc(2024, 1, 1, 13), now, catchup=True) == [
        utc(2024, 1, 1, 19),
        utc(2024, 1, 2, 1),
    ]
    assert every.due_fires(start, utc(2024, 1, 2, 1), now, catchup=True) == []
    assert every.data_interval_ending_at(utc(2024, 1, 1, 7)) == (start, utc(2024, 1, 1, 7))
    assert every.next_due(start, utc(2024, 1, 2, 1), now, False) == utc(2024, 1, 2, 7)
    with pytest.raises(DagDefinitionError, match="shorter than 1 s"):
        parse_schedule(timedelta(milliseconds=10), dag_id="d", fileloc=None)


def test_next_fire_is_strictly_after() -> None:
    assert DAILY.next_fire_after(utc(2024, 1, 1)) == utc(2024, 1, 2)
    assert DAILY.next_fire_after(utc(2024, 1, 1, 12)) == utc(2024, 1, 2)


def test_prev_fire_includes_the_instant_itself() -> None:
    assert DAILY.prev_fire_at_or_before(utc(2024, 1, 3)) == utc(2024, 1, 3)
    assert DAILY.prev_fire_at_or_before(utc(2024, 1, 3, 0, 0, 1)) == utc(2024, 1, 3)
    assert DAILY.prev_fire_at_or_before(utc(2024, 1, 2, 23, 59)) == utc(2024, 1, 2)


def test_other_timezones_are_converted_to_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    fire = DAILY.next_fire_after(datetime(2024, 1, 2, 1, 0, tzinfo=plus_two))
    assert fire == utc(2024, 1, 2)
    assert fire.tzinfo is UTC


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        DAILY.next_fire_after(datetime(2024, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        DAILY.due_fires(datetime(2024, 1, 1), None, utc(2024, 1, 5), True)


def test_data_interval_is_previous_fire_to_fire() -> None:
    start, end = DAILY.data_interval_ending_at(utc(2024, 3, 1))
    assert (start, end) == (utc(2024, 2, 29), utc(2024, 3, 1))
    assert start.fold == 0
    assert CronSchedule("0 0 1 * *").data_interval_ending_at(utc(2024, 3, 1)) == (
        utc(2024, 2, 1),
        utc(2024, 3, 1),
    )


def test_nothing_due_before_the_first_interval_ends() -> None:
    assert DAILY.due_fires(utc(2024, 1, 1), None, utc(2024, 1, 1, 23, 59), True) == []
    assert DAILY.due_fires(utc(2024, 1, 1), None, utc(2024, 1, 2), True) == [utc(2024, 1, 2)]


def test_first_interval_starts_at_first_fire_after_start_date() -> None:
    # Starting mid-day, the first interval is [Jan 2, Jan 3): Jan 2 itself is not an end.
    start = utc(2024, 1, 1, 12)
    assert DAILY.due_fires(start, None, utc(2024, 1, 2, 6), True) == []
    assert DAILY.due_fires(start, None, utc(2024, 1, 3), True) == [utc(2024, 1, 3)]


def test_catchup_returns_every_due_fire_oldest_first() -> None:
    due = DAILY.due_fires(utc(2024, 1, 1), None, utc(2024, 1, 5, 3), True)
    assert due == [utc(2024, 1, 2), utc(2024, 1, 3), utc(2024, 1, 4), utc(2024, 1, 5)]


def test_fires_already_created_are_not_due_again() -> None:
    due = DAILY.due_fires(utc(2024, 1, 1), utc(2024, 1, 3), utc(2024, 1, 5, 3), True)
    assert due == [utc(2024, 1, 4), utc(2024, 1, 5)]
    assert DAILY.due_fires(utc(2024, 1, 1), utc(2024, 1, 5), utc(2024, 1, 5, 3), True) == []


def test_without_catchup_only_the_latest_is_due() -> None:
    due = DAILY.due_fires(utc(2024, 1, 1), None, utc(2024, 1, 5, 3), False)
    assert due == [utc(2024, 1, 5)]
    assert DAILY.due_fires(utc(2024, 1, 1), utc(2024, 1, 5), utc(2024, 1, 5, 3), False) == []
    assert DAILY.due_fires(utc(2024, 1, 1), utc(2024, 1, 2), utc(2024, 1, 5, 3), False) == [
        utc(2024, 1, 5)
    ]
    assert DAILY.due_fires(utc(2024, 1, 1), None, utc(2024, 1, 1, 5), False) == []


def test_catchup_list_is_capped_and_resumes_from_after() -> None:
    start, now = utc(2020, 1, 1), utc(2024, 1, 1)
    first = HOURLY.due_fires(start, None, now, True)
    assert len(first) == MAX_DUE_FIRES == 1000
    assert first[0] == utc(2020, 1, 1, 1)
    assert first[-1] == utc(2020, 1, 1, 1) + timedelta(hours=999)
    second = HOURLY.due_fires(start, first[-1], now, True)
    assert second[0] == first[-1] + timedelta(hours=1)
