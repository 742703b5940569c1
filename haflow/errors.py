"""The one error tree of haflow: every error a user can see derives from HaflowError.

Messages say what happened, where, and what to do about it.
"""

from __future__ import annotations


class HaflowError(Exception):
    """Base of every haflow error."""


class ConfigError(HaflowError):
    """A setting is unknown, malformed or out of its allowed values."""


class DagDefinitionError(HaflowError):
    """A DAG is malformed: a cycle, a duplicate task id, a bad schedule, a bad argument."""


class DagNotFound(HaflowError):
    """No DAG with the given id is known to the metastore or the DAGs folder."""


class NotFound(HaflowError):
    """A run, task instance or other record that was asked for does not exist."""


class InvalidRequest(HaflowError):
    """A request that cannot be carried out as asked (bad JSON conf, unknown state, ...)."""


class Conflict(InvalidRequest):
    """The request would create something that already exists (a run id, a user name)."""


class BackendUnavailable(HaflowError):
    """A server haflow depends on (metastore, broker, ZooKeeper) cannot be reached."""


class MetastoreError(HaflowError):
    """The metastore refused or failed a query for a reason other than being unreachable."""


class ConcurrentChange(MetastoreError):
    """Rows a transaction was conditional on had changed (another writer, or a leader's
    snapshot gone stale); the transaction was rolled back and may be planned again."""


class SchemaOutOfDate(MetastoreError):
    """The metastore's schema is not at the revision this haflow expects."""


class LeadershipLost(HaflowError):
    """This scheduler is no longer the leader and must stop writing."""


class FencedOut(LeadershipLost):
    """A write was rejected because the leader row no longer holds this scheduler's epoch."""


class SecretKeyError(ConfigError):
    """This node's `[core] fernet_key` is missing, malformed, or cannot decrypt a value the
    metastore holds (never read as plaintext instead)."""
