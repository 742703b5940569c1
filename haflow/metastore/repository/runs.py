"""Runs: manual triggers and listings."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select

from haflow.core.ids import check_run_id
from haflow.core.states import RunState
from haflow.errors import (
    Conflict,
    NotFound,
)
from haflow.metastore import models as m
from haflow.metastore.records import (
    RunRow,
)
from haflow.metastore.repository._base import (
    _event,
    _run_row,
)
from haflow.metastore.repository.dags import DagQueries


class RunQueries(DagQueries):
    def trigger_run(
        self, dag_id: str, conf: Mapping[str, Any], now: datetime, run_id: str | None = None
    ) -> RunRow:
        run_id = check_run_id(run_id) if run_id is not None else f"manual__{now.isoformat()}"
        self.dag(dag_id)
        with self._tx() as conn:
            exists = conn.execute(
                select(m.DagRun.id).where(m.DagRun.dag_id == dag_id, m.DagRun.run_id == run_id)
            ).first()
            if exists:
                raise Conflict(f"DAG {dag_id!r} already has a run {run_id!r}")
            conn.execute(
                insert(m.DagRun).values(
                    dag_id=dag_id,
                    run_id=run_id,
                    run_type="manual",
                    state=RunState.QUEUED,
                    conf=json.dumps(dict(conf)),
                    created_at=now,
                    created_epoch=0,
                )
            )
            self._emit(
                conn,
                [
                    _event(
                        "run.triggered",
                        self.actor,
                        now,
                        dag_id=dag_id,
                        run_id=run_id,
                        detail={"conf": dict(conf)},
                    )
                ],
            )
        return self.run(dag_id, run_id)

    def run(self, dag_id: str, run_id: str) -> RunRow:
        with self._tx() as conn:
            row = conn.execute(
                select(m.DagRun).where(m.DagRun.dag_id == dag_id, m.DagRun.run_id == run_id)
            ).first()
        if row is None:
            raise NotFound(f"DAG {dag_id!r} has no run {run_id!r} (see `haflow dags list-runs`)")
        return _run_row(row)

    def runs(
        self,
        dag_id: str | None = None,
        *,
        state: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[RunRow]:
        stmt = select(m.DagRun).order_by(m.DagRun.id.desc()).limit(limit).offset(offset)
        if dag_id is not None:
            stmt = stmt.where(m.DagRun.dag_id == dag_id)
        if state is not None:
            stmt = stmt.where(m.DagRun.state == state)
        with self._tx() as conn:
            return [_run_row(r) for r in conn.execute(stmt)]
