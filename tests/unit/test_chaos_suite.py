"""scripts/chaos-suite.sh (`make chaos`), without Docker: a stand-in `haflow` executable plays
the scenarios. Runs go LANES at a time (proven by the runs' own start and end records, not by a
time), every report is kept and printed, a run that failed, left a property unexercised or died
without a report fails the suite and is named with why, and a scenario listed twice is
refused before anything runs."""

from __future__ import annotations

import subprocess
from pathlib import Path

SUITE = Path(__file__).parents[2] / "scripts" / "chaos-suite.sh"
# `haflow chaos run NAME --repeat R --json`: records its start and end; unless a file says go, waits
# (5 s at most) until two runs have started; prints a report whose status the name picks;
# "crash" dies with no report
FAKE_HAFLOW = r"""#!/usr/bin/env bash
name=$3 repeat=$5 rec="$RECORD"
echo "start $name" >> "$rec"
echo "progress of $name" >&2
for _ in $(seq 50); do
  [ -e "$GO" ] || [ "$(grep -c start "$rec")" -ge 2 ] && break; sleep 0.1
done
echo "end $name" >> "$rec"
case $name in
  crash) echo "it broke" >&2; exit 2 ;;
  fails) echo "scenario $name"; echo "P4   FAIL           every run succeeds"
         echo "       1 run failed"; echo "{\"scenario\": \"$name\", \"ok\": false}"; exit 1 ;;
  idle) echo "scenario $name"; echo "P3   NOT_EXERCISED  a dead worker's work is reclaimed"
        echo "       no attempt was running"
        echo "{\"scenario\": \"$name\", \"ok\": false}"; exit 1 ;;
  *) echo "scenario $name"; echo "P1   PASS           one writer per epoch"
     echo "{\"scenario\": \"$name\", \"ok\": true, \"repeats\": $repeat}"; exit 0 ;;
esac
"""


def run_suite(
    tmp: Path, lanes: str, *runs: str, go: bool = True
) -> subprocess.CompletedProcess[str]:
    haflow = tmp / "haflow"
    haflow.write_text(FAKE_HAFLOW)
    haflow.chmod(0o755)
    if go:
        (tmp / "go").touch()
    env = {"PATH": "/usr/bin:/bin", "RECORD": str(tmp / "record"), "GO": str(tmp / "go")}
    return subprocess.run(
        ["bash", str(SUITE), str(haflow), str(tmp / "out"), lanes, *runs],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_every_run_passes_and_each_report_is_kept_and_printed(tmp_path: Path) -> None:
    done = run_suite(tmp_path, "2", "a:3", "b", "c")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "chaos: all 3 passed" in done.stdout
    out = tmp_path / "out"
    for name, repeats in (("a", 3), ("b", 1), ("c", 1)):
        assert (out / f"{name}.json").read_text().strip().endswith(f'"repeats": {repeats}}}')
        assert (out / f"{name}.rc").read_text().strip() == "0"
        assert (out / f"{name}.log").read_text() == f"progress of {name}\n"
        assert f"[{name}] progress of {name}" in done.stderr
        assert f"== {name}: exit 0" in done.stdout
        assert f"scenario {name}\nP1   PASS" in done.stdout


def test_two_lanes_run_two_at_once_and_never_three(tmp_path: Path) -> None:
    # no go file: a run waits for a second one, so the record shows which ran beside which
    done = run_suite(tmp_path, "2", "a", "b", "c", go=False)
    assert done.returncode == 0, done.stdout + done.stderr
    running, most = 0, 0
    for line in (tmp_path / "record").read_text().splitlines():
        running += 1 if line.startswith("start") else -1
        most = max(most, running)
    assert most == 2


def test_one_lane_runs_one_at_a_time_in_the_order_given(tmp_path: Path) -> None:
    done = run_suite(tmp_path, "1", "b", "a")
    assert done.returncode == 0, done.stdout + done.stderr
    record = (tmp_path / "record").read_text().splitlines()
    assert record == ["start b", "end b", "start a", "end a"]


def test_a_failed_unexercised_or_crashed_run_fails_the_suite_naming_why(tmp_path: Path) -> None:
    done = run_suite(tmp_path, "2", "ok", "fails", "idle", "crash")
    assert done.returncode == 1
    assert "chaos: FAILED: fails idle crash" in done.stdout
    summary = done.stdout[done.stdout.index("-- fails:") :]
    assert "P4   FAIL" in summary and "1 run failed" in summary
    assert "P3   NOT_EXERCISED" in summary and "no attempt was running" in summary
    assert "-- crash:\nprogress of crash\nit broke" in summary  # its log's tail


def test_a_scenario_listed_twice_or_bad_lanes_are_refused_before_anything_runs(
    tmp_path: Path,
) -> None:
    twice = run_suite(tmp_path, "2", "a", "b:3", "b")
    assert twice.returncode == 2
    assert "scenario 'b' is listed twice" in twice.stderr
    for lanes in ("0", "two", ""):
        bad = run_suite(tmp_path, lanes, "a")
        assert bad.returncode == 2
        assert "LANES must be a whole number >= 1" in bad.stderr
    assert not (tmp_path / "record").exists()
