"""A DAG's graph laid out for SVG: columns by depth (longest path from a root), rows in order.

Pure: takes the task structure the scheduler stored and returns boxes and edges in pixels.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

BOX_W, BOX_H, GAP_X, GAP_Y, MARGIN = 170, 34, 60, 18, 12


@dataclass(frozen=True)
class Box:
    task_id: str
    x: int
    y: int
    state: str


@dataclass(frozen=True)
class Edge:
    x1: int
    y1: int
    x2: int
    y2: int


@dataclass(frozen=True)
class Layout:
    boxes: list[Box]
    edges: list[Edge]
    width: int
    height: int
    box_w: int = BOX_W
    box_h: int = BOX_H


def depths(tasks: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
    """Longest distance from a root; `tasks` is in topological order (upstreams first)."""
    depth: dict[str, int] = {}
    for tid, t in tasks.items():
        ups = [u for u in t.get("upstream", []) if u in depth]
        depth[tid] = 1 + max((depth[u] for u in ups), default=-1)
    return depth


def layout(tasks: Mapping[str, Mapping[str, Any]], states: Mapping[str, str]) -> Layout:
    depth = depths(tasks)
    rows: dict[int, int] = {}
    pos: dict[str, tuple[int, int]] = {}
    for tid in tasks:
        col = depth[tid]
        row = rows.get(col, 0)
        rows[col] = row + 1
        pos[tid] = (MARGIN + col * (BOX_W + GAP_X), MARGIN + row * (BOX_H + GAP_Y))
    boxes = [Box(tid, x, y, states.get(tid, "none")) for tid, (x, y) in pos.items()]
    edges = [
        Edge(pos[u][0] + BOX_W, pos[u][1] + BOX_H // 2, pos[tid][0], pos[tid][1] + BOX_H // 2)
        for tid, t in tasks.items()
        for u in t.get("upstream", [])
        if u in pos
    ]
    cols = max(depth.values(), default=0) + 1
    most_rows = max(rows.values(), default=1)
    return Layout(
        boxes,
        edges,
        width=2 * MARGIN + cols * BOX_W + (cols - 1) * GAP_X,
        height=2 * MARGIN + most_rows * BOX_H + (most_rows - 1) * GAP_Y,
    )
