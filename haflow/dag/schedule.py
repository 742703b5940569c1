"""The schedules of DAGs and the data intervals they cut time into: a cron expression (or a
preset such as `@daily`) read on the wall clock of the DAG's timezone, a fixed interval
(`timedelta`, in elapsed time whatever the zone), or `@once`.

A schedule is pure: every method maps UTC datetimes to UTC datetimes and never reads the clock,
so the scheduler passes `now` in and tests need no sleeping. Airflow semantics: the run created at
fire time t1 covers the data interval [t0, t1), where t0 is the fire before t1; an interval
schedule fires at start_date + k x interval (k >= 1); `@once` fires once, at its start_date,
for the empty interval [start_date, start_date). Each has an `expression`, the text kept in the
metastore, which `parse_schedule` turns back into the same schedule.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

from haflow.errors import DagDefinitionError, InvalidRequest

PRESETS: dict[str, str] = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}

MAX_DUE_FIRES = 1000
"""Most fire times `due_fires` returns at once; the rest come on later calls, oldest first."""

# Any fixed instant works: it only proves the expression fires at least once.
_PROBE_START = datetime(2000, 1, 1, tzinfo=UTC)


def _utc(dt: datetime, name: str) -> datetime:
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), got naive {dt.isoformat()}")
    return dt.astimezone(UTC)


def _clean(fire: datetime) -> datetime:
    # croniter can hand back fold=1 after stepping backwards; it means nothing in UTC.
    return fire.astimezone(UTC).replace(fold=0)


@dataclass(frozen=True)
class CronSchedule:
    """A five-field cron expression read on the wall clock of `timezone` (an IANA name);
    all inputs must be aware datetimes, outputs are UTC.

    The rule at daylight-saving changes (docs/design.md section 10): a wall time that occurs
    twice (autumn) fires once, at its first occurrence; a wall time that does not occur
    (spring) fires once, at the end of the gap; fire times that land on the same instant fire
    once. Data intervals stay contiguous, so an interval across a change is longer or shorter
    by the change (a daily one is 23 or 25 hours).
    """

    expression: str
    timezone: str = "UTC"

    @property
    def _zone(self) -> ZoneInfo | None:
        return None if self.timezone == "UTC" else ZoneInfo(self.timezone)

    def next_fire_after(self, dt: datetime) -> datetime:
        """The first fire time strictly after `dt`."""
        return _next_fire_after(self.expression, self.timezone, _utc(dt, "dt"))

    def prev_fire_at_or_before(self, dt: datetime) -> datetime:
        """The last fire time at or before `dt` (`dt` itself when it is a fire time)."""
        at = _utc(dt, "dt")
        zone = self._zone
        if zone is not None:
            return _local_prev(self.expression, zone, at, strict=False)
        # croniter's get_prev is strict, so the fire right after it decides whether `at` fires.
        before = _clean(croniter(self.expression, at).get_prev(datetime))
        following = self.next_fire_after(before)
        return following if following <= at else before

    def data_interval_ending_at(self, fire: datetime) -> tuple[datetime, datetime]:
        """The interval [previous fire, fire) covered by the run created at `fire`."""
        end = _utc(fire, "fire")
        zone = self._zone
        if zone is not None:
            return _local_prev(self.expression, zone, end, strict=True), end
        return _clean(croniter(self.expression, end).get_prev(datetime)), end

    def first_interval_end(self, start_date: datetime) -> datetime:
        """End of the first interval, which starts at the first fire at or after `start_date`."""
        return _first_interval_end(self, _utc(start_date, "start_date"))

    def _first_interval_end(self, start: datetime) -> datetime:
        first_start = self.prev_fire_at_or_before(start)
        if first_start < start:
            first_start = self.next_fire_after(start)
        return self.next_fire_after(first_start)

    def due_fires(
        self, start_date: datetime, after: datetime | None, now: datetime, catchup: bool
    ) -> list[datetime]:
        """Interval ends in (after, now] not before the first interval end, oldest first.

        `after` is the last interval end already created (None when there is none). Without
        catchup only the latest due fire is returned; with it at most MAX_DUE_FIRES.
        """
        current = _utc(now, "now")
        lowest = self.first_interval_end(start_date)
        if after is not None:
            lowest = max(lowest, self.next_fire_after(after))
        if lowest > current:
            return []
        if not catchup:
            return [self.prev_fire_at_or_before(current)]
        return self._fires_between(lowest, current)

    def next_due(
        self, start_date: datetime | None, last: datetime | None, now: datetime, catchup: bool
    ) -> datetime | None:
        """The next interval end the scheduler will create a run for (for display)."""
        if catchup and last is not None:
            return self.next_fire_after(last)
        return self.next_fire_after(max(now, last or now))

    def intervals_starting(
        self, start_date: datetime, first: datetime, last: datetime
    ) -> list[tuple[datetime, datetime]]:
        """The data intervals whose start lies in [first, last], oldest first (at most
        MAX_DUE_FIRES): what a backfill of that range runs, as Airflow counts logical dates."""
        lo = max(_utc(first, "first"), _utc(start_date, "start_date"))
        s = self.prev_fire_at_or_before(lo)
        if s < lo:
            s = self.next_fire_after(lo)
        out: list[tuple[datetime, datetime]] = []
        while s <= _utc(last, "last") and len(out) < MAX_DUE_FIRES:
            e = self.next_fire_after(s)
            out.append((s, e))
            s = e
        return out

    def _fires_between(self, first: datetime, last: datetime) -> list[datetime]:
        fires = [first]
        while len(fires) < MAX_DUE_FIRES:
            fire = self.next_fire_after(fires[-1])
            if fire > last:
                break
            fires.append(fire)
        return fires


def _wall(at: datetime, zone: ZoneInfo) -> datetime:
    """The naive wall-clock time of UTC instant `at` in `zone`."""
    return at.astimezone(zone).replace(tzinfo=None, fold=0)


def _instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant a naive wall time of `zone` fires at: its first occurrence when it
    occurs twice; the end of the gap when it does not occur at all."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if _wall(first, zone) == wall:
        return first
    # In a gap, fold=0 reads the wall time with the offset before the change (an instant past
    # the gap), fold=1 with the offset after (one before it): the change lies between.
    lo, hi = wall.replace(tzinfo=zone, fold=1).astimezone(UTC), first
    before = lo.astimezone(zone).utcoffset()
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if mid.astimezone(zone).utcoffset() == before:
            lo = mid
        else:
            hi = mid
    return hi.replace(microsecond=0)


# Wall times map to instants in order (never backwards), so the fires after an instant come
# from the wall times after its own. Before it, a wall time up to the size of an autumn change
# later than its own can still map to an earlier instant (its first occurrence): 3 hours
# covers every change in the tz database (the largest are 2 hours).
_MAX_FALL_BACK = timedelta(hours=3)


def _local_next(expression: str, zone: ZoneInfo, at: datetime) -> datetime:
    it = croniter(expression, _wall(at, zone))
    while True:
        fire = _instant(it.get_next(datetime), zone)
        if fire > at:
            return fire


def _local_prev(expression: str, zone: ZoneInfo, at: datetime, *, strict: bool) -> datetime:
    it = croniter(expression, _wall(at, zone) + _MAX_FALL_BACK)
    while True:
        fire = _instant(it.get_prev(datetime), zone)
        if fire < at or (fire == at and not strict):
            return fire


# The leader asks every scheduled DAG, every tick, whether a fire is due: the answer hangs on
# the fire after the last run created and on the first interval's end, which change only when a
# run is created. Cached (the functions are pure), a tick with nothing due parses no cron
# expression; uncached, 1,000 cron DAGs took 40 % of the leader's time (benchmarks/scale.py).
@dataclass(frozen=True)
class IntervalSchedule:
    """Every `seconds`, counted from the DAG's start_date."""

    seconds: float

    @property
    def expression(self) -> str:
        return f"@every {self.seconds:g}s"

    @property
    def delta(self) -> timedelta:
        return timedelta(seconds=self.seconds)

    def next_fire_after(self, dt: datetime) -> datetime:
        """The fire after one at `dt` (the grid is anchored at the start_date, which a fire
        time is on)."""
        return _utc(dt, "dt") + self.delta

    def data_interval_ending_at(self, fire: datetime) -> tuple[datetime, datetime]:
        end = _utc(fire, "fire")
        return end - self.delta, end

    def next_due(
        self, start_date: datetime | None, last: datetime | None, now: datetime, catchup: bool
    ) -> datetime | None:
        """The next interval end the scheduler will create a run for (for display)."""
        if start_date is None:
            return None if last is None else self.next_fire_after(last)
        start = _utc(start_date, "start_date")
        k = int((_utc(now, "now") - start) / self.delta) + 1
        if last is not None:
            after_last = int((_utc(last, "last") - start) / self.delta) + 1
            k = after_last if catchup else max(k, after_last)
        return start + max(k, 1) * self.delta

    def intervals_starting(
        self, start_date: datetime, first: datetime, last: datetime
    ) -> list[tuple[datetime, datetime]]:
        """The intervals [start_date + k x interval, + interval) whose start lies in
        [first, last] (k >= 0), oldest first, at most MAX_DUE_FIRES."""
        start = _utc(start_date, "start_date")
        lo, hi = _utc(first, "first"), _utc(last, "last")
        k = max(0, math.ceil((lo - start) / self.delta))
        out: list[tuple[datetime, datetime]] = []
        while start + k * self.delta <= hi and len(out) < MAX_DUE_FIRES:
            s = start + k * self.delta
            out.append((s, s + self.delta))
            k += 1
        return out

    def due_fires(
        self, start_date: datetime, after: datetime | None, now: datetime, catchup: bool
    ) -> list[datetime]:
        """Interval ends start_date + k x interval in (after, now], oldest first (only the
        latest without catchup; at most MAX_DUE_FIRES)."""
        start, current = _utc(start_date, "start_date"), _utc(now, "now")
        k_last = int((current - start) / self.delta)
        if k_last < 1:
            return []
        k_first = 1 if after is None else int((_utc(after, "after") - start) / self.delta) + 1
        if k_first > k_last:
            return []
        if not catchup:
            return [start + k_last * self.delta]
        k_end = min(k_last, k_first + MAX_DUE_FIRES - 1)
        return [start + k * self.delta for k in range(k_first, k_end + 1)]


@dataclass(frozen=True)
class OnceSchedule:
    """`@once`: one run, due at the DAG's start_date."""

    expression: str = "@once"

    def next_fire_after(self, dt: datetime) -> None:
        return None  # the only fire is the start_date, which `due_fires` knows

    def next_due(
        self, start_date: datetime | None, last: datetime | None, now: datetime, catchup: bool
    ) -> datetime | None:
        """The start_date until the one run is created, then nothing."""
        return start_date if last is None else None

    def data_interval_ending_at(self, fire: datetime) -> tuple[datetime, datetime]:
        at = _utc(fire, "fire")
        return at, at

    def intervals_starting(
        self, start_date: datetime, first: datetime, last: datetime
    ) -> list[tuple[datetime, datetime]]:
        """Its one (empty) interval, at the start_date, if that lies in [first, last]."""
        at = _utc(start_date, "start_date")
        return [(at, at)] if _utc(first, "first") <= at <= _utc(last, "last") else []

    def due_fires(
        self, start_date: datetime, after: datetime | None, now: datetime, catchup: bool
    ) -> list[datetime]:
        start = _utc(start_date, "start_date")
        return [start] if after is None and start <= _utc(now, "now") else []


AnySchedule = CronSchedule | IntervalSchedule | OnceSchedule
"""What a DAG's `schedule` becomes."""

EVERY = re.compile(r"@every\s+([0-9]+(?:\.[0-9]+)?)s")
"""`@every Ns`: an interval schedule kept as text (a DAG's timedelta, say)."""


@functools.lru_cache(maxsize=1 << 16)
def _next_fire_after(expression: str, timezone: str, start: datetime) -> datetime:
    if timezone != "UTC":
        return _local_next(expression, ZoneInfo(timezone), start)
    return _clean(croniter(expression, start).get_next(datetime))


@functools.lru_cache(maxsize=1 << 16)
def _first_interval_end(schedule: CronSchedule, start: datetime) -> datetime:
    return schedule._first_interval_end(start)


def parse_schedule(
    expr: str | timedelta | None, *, dag_id: str, fileloc: str | None, timezone: str = "UTC"
) -> AnySchedule | None:
    """Turn a DAG's `schedule` argument (or the expression kept for it) into a schedule,
    cron expressions read in `timezone` (checked by `check_timezone`); None means manual
    runs only."""
    if expr is None:
        return None
    where = f"DAG {dag_id!r} in {fileloc or '<unknown file>'}"
    if isinstance(expr, timedelta):
        return _interval(expr.total_seconds(), expr, where)
    if not isinstance(expr, str):
        raise DagDefinitionError(
            f"{where}: schedule must be a cron string, a timedelta, '@once' or None, got {expr!r}"
        )
    text = expr.strip()
    if text == "@once":
        return OnceSchedule()
    every = EVERY.fullmatch(text)
    if every:
        return _interval(float(every.group(1)), expr, where)
    cron = PRESETS.get(text, text)
    if not _is_valid_cron(cron):
        presets = ", ".join(PRESETS)
        raise DagDefinitionError(
            f"{where}: invalid schedule {expr!r}; use a five-field cron expression "
            f"(minute hour day-of-month month day-of-week), one of {presets}, '@once', "
            "or a timedelta"
        )
    return CronSchedule(cron, timezone)


def check_timezone(name: object, where: str) -> str:
    """`name` if it is an IANA time zone this machine knows ("UTC", "Europe/Berlin"), else a
    DagDefinitionError naming it."""
    if isinstance(name, str) and name and name == name.strip():
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
        else:
            return name
    raise DagDefinitionError(
        f"{where}: unknown timezone {name!r}; use an IANA name such as 'UTC', "
        "'Europe/Berlin' or 'America/New_York'"
    )


def backfill_intervals(
    expression: str | None,
    timezone: str,
    start_date: datetime | None,
    first: datetime,
    last: datetime,
    *,
    dag_id: str,
    now: datetime,
) -> list[tuple[datetime, datetime]]:
    """The data intervals of a DAG (its schedule `expression` on `timezone`, from its
    start_date) whose start lies in [first, last] and that have ended by `now`: what a
    backfill of that range runs (a later interval is the schedule's, when it ends).
    InvalidRequest for a DAG without a schedule or a start date."""
    schedule = parse_schedule(expression, dag_id=dag_id, fileloc=None, timezone=timezone)
    if schedule is None:
        raise InvalidRequest(f"DAG {dag_id!r} has no schedule: it has no intervals to run")
    if start_date is None:
        raise InvalidRequest(f"DAG {dag_id!r} has no start_date: its intervals start nowhere")
    found = schedule.intervals_starting(start_date, first, min(last, _utc(now, "now")))
    return [(s, e) for s, e in found if e <= now]


def in_utc(value: datetime, timezone: str) -> datetime:
    """`value` in UTC; a naive one is a wall time in `timezone` (the DAG's)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(timezone))
    return value.astimezone(UTC)


def local_instant(text: str, timezone: str, name: str) -> datetime:
    """An ISO date or datetime given by a user; without an offset, read in `timezone`."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{name} must be an ISO date or datetime, got {text!r}") from None
    return in_utc(value, timezone)


MIN_INTERVAL_S = 1.0


def _interval(seconds: float, given: object, where: str) -> IntervalSchedule:
    if seconds < MIN_INTERVAL_S:
        raise DagDefinitionError(
            f"{where}: schedule interval {given!r} is shorter than {MIN_INTERVAL_S:g} s"
        )
    return IntervalSchedule(seconds)


def _is_valid_cron(cron: str) -> bool:
    # Six/seven-field forms (seconds, years) would make sub-minute intervals; reject them.
    if cron.startswith("@") or len(cron.split()) != 5 or not croniter.is_valid(cron):
        return False
    try:
        croniter(cron, _PROBE_START).get_next(datetime)
    except CroniterError:  # valid syntax that never fires, e.g. "0 0 31 2 *"
        return False
    return True
