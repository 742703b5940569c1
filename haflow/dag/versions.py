"""DAG code versions as people read them: a version's files, and the diff between two
(`haflow.dag.bundle`), for the CLI, the API and the pages."""

from __future__ import annotations

from haflow.dag import bundle
from haflow.metastore.records import DagVersionRow
from haflow.metastore.repository import Repository


def version_code(
    repo: Repository, dag_id: str, prefix: str | None
) -> tuple[DagVersionRow, bundle.Bundle]:
    """Version `prefix` of DAG `dag_id` (its version now if None) and its files."""
    v = repo.dags.version(dag_id, prefix)
    return v, bundle.Bundle.unpack(repo.dags.code(v.code_hash).packed, v.code_hash)


def version_diff(
    repo: Repository, dag_id: str, old: str | None, new: str | None
) -> tuple[str, str, str]:
    """(old hash, new hash, unified diff) from version `old` to `new` (default: now's)."""
    a, before = version_code(repo, dag_id, old)
    b, after = version_code(repo, dag_id, new)
    return a.code_hash, b.code_hash, bundle.diff(before, after)
