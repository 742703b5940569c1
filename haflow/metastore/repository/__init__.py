"""Every query haflow runs against the metastore lives in this package, and nowhere else.

`Repository` is the one object the rest of haflow talks to; its parts are grouped by concern
in sibling modules (history builds on runs, runs on DAGs). The invariants are stated in `_base`.
"""

from __future__ import annotations

from haflow.metastore.repository.attempts import AttemptQueries
from haflow.metastore.repository.leadership import LeadershipQueries
from haflow.metastore.repository.overview import OverviewQueries
from haflow.metastore.repository.scheduling import SchedulingQueries
from haflow.metastore.repository.web import WebQueries


class Repository(LeadershipQueries, SchedulingQueries, AttemptQueries, OverviewQueries, WebQueries):
    """The metastore seen through haflow's operations. `actor` names the writer in events."""


__all__ = ["Repository"]
