"""Collect the figures of `haflow chaos run NAME --json` runs into a Markdown table.

    python chaos/results.py artifacts/chaos/*.json            # or any files whose last line is
    python chaos/results.py run1.txt run2.txt --date 2026-11-24  # a run's JSON object

One row per (property, scenario): its status, each measured figure as min / p50 / p95 / max
over the repeats, the repeats and the command that reproduces it. Nothing is run here.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def last_json(path: Path) -> dict[str, Any] | None:
    for line in reversed(path.read_text().splitlines()):
        if line.startswith("{"):
            data = json.loads(line)
            return data if isinstance(data, dict) else None
    return None


def _figures(measures: dict[str, dict[str, float]]) -> str:
    out = []
    for name, s in measures.items():
        out.append(
            f"{name}: {s['min']:.3f} / {s['p50']:.3f} / {s['p95']:.3f} / {s['max']:.3f} s "
            f"(n={int(s['n'])})"
        )
    return "; ".join(out) or "-"


def rows(report: dict[str, Any], date: str) -> list[str]:
    name = report["scenario"]
    repeats = report.get("repeats", 1)
    seed = report.get("seed", 0)
    cmd = f"`haflow chaos run {name} --repeat {repeats}" + (f" --seed {seed}`" if seed else "`")
    out = []
    for prop, v in sorted(report["properties"].items()):
        status = v["status"] + (" (round aborted)" if report.get("aborted") else "")
        out.append(
            f"| {prop} | {name} | {status} | {_figures(v['measures'])} | {repeats} | {cmd} "
            f"| {date} |"
        )
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--date", default=datetime.now(UTC).strftime("%Y-%m-%d"))
    args = parser.parse_args(argv)
    lines = [
        "| property | scenario | result | figure: min / p50 / p95 / max "
        "| repeats | command | date |",
        "|---|---|---|---|---|---|---|",
    ]
    body = []
    for path in args.files:
        report = last_json(path)
        if report is None:
            print(f"{path}: no JSON object found", file=sys.stderr)
            continue
        body += rows(report, args.date)
    print("\n".join(lines + sorted(body)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
