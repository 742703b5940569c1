"""A chaos run's report: each property's verdict with its evidence, and measured times as
min / p50 / p95 / max over the repeats. Printed as a table, or as one JSON object whose last
line is the whole report, as the benchmarks print theirs."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

from haflow.chaos.checker import Status, Verdict


def percentile(values: Sequence[float], q: float) -> float:
    """The `q` quantile (0..1) by the nearest-rank method."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def summary(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {}
    return {
        "n": float(len(values)),
        "min": min(values),
        "p50": percentile(values, 0.5),
        "p95": percentile(values, 0.95),
        "max": max(values),
    }


def merge(rounds: Iterable[Sequence[Verdict]]) -> list[Verdict]:
    """One verdict per property over several repeats: FAIL if any failed, PASS if any passed,
    evidence and measures concatenated."""
    by_prop: dict[str, list[Verdict]] = {}
    for verdicts in rounds:
        for v in verdicts:
            by_prop.setdefault(v.prop, []).append(v)
    return [_merge_one(vs) for vs in by_prop.values()]


def _merge_one(vs: list[Verdict]) -> Verdict:
    statuses = {v.status for v in vs}
    status = next(s for s in (Status.FAIL, Status.PASS, Status.NOT_EXERCISED) if s in statuses)
    measures: dict[str, tuple[float, ...]] = {}
    for v in vs:
        for k, values in v.measures.items():
            measures[k] = measures.get(k, ()) + values
    evidence = tuple(line for v in vs for line in v.evidence)
    return Verdict(vs[0].prop, vs[0].title, status, evidence, measures)


def as_json(scenario: str, verdicts: Sequence[Verdict], ok: bool, extra: dict[str, Any]) -> str:
    """The report as one JSON object; `ok` is the run's own verdict (`Outcome.ok`)."""
    return json.dumps(
        {
            "scenario": scenario,
            "ok": ok,
            **extra,
            "properties": {
                v.prop: {
                    "status": str(v.status),
                    "title": v.title,
                    "evidence": list(v.evidence),
                    "measures": {k: summary(vals) for k, vals in v.measures.items()},
                }
                for v in verdicts
            },
        },
        default=str,
    )


def as_table(scenario: str, verdicts: Sequence[Verdict], evidence_lines: int = 5) -> str:
    lines = [f"scenario {scenario}", ""]
    for v in verdicts:
        lines.append(f"{v.prop:<4} {v.status:<14} {v.title}")
        lines += [f"       {e}" for e in v.evidence[:evidence_lines]]
        if len(v.evidence) > evidence_lines:
            lines.append(f"       ... {len(v.evidence) - evidence_lines} more")
    measured = [(v.prop, k, summary(vals)) for v in verdicts for k, vals in v.measures.items()]
    if measured:
        lines += ["", f"{'measure (s)':<28} {'n':>4} {'min':>8} {'p50':>8} {'p95':>8} {'max':>8}"]
        for prop, key, s in measured:
            lines.append(
                f"{prop + ' ' + key:<28} {int(s['n']):>4} {s['min']:>8.3f} {s['p50']:>8.3f} "
                f"{s['p95']:>8.3f} {s['max']:>8.3f}"
            )
    return "\n".join(lines)
