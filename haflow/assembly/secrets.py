"""The start-up check every node that reads secrets makes (webserver, worker, standalone):
its `[core] fernet_key` must decrypt every variable and connection the metastore holds, or it
does not start (a wrong key is an error at start, never plaintext or a failure mid-run)."""

from __future__ import annotations

import logging

from haflow.errors import BackendUnavailable
from haflow.metastore.repository import Repository

log = logging.getLogger(__name__)


def check_secrets_at_start(repo: Repository) -> None:
    """SecretKeyError if this node cannot decrypt what is stored. A metastore that cannot be
    reached now does not stop the start (the node waits for it like for everything else):
    then each read says so if the key is wrong."""
    try:
        repo.check_secrets()
    except BackendUnavailable as exc:
        log.warning("could not check [core] fernet_key against the metastore now: %s", exc)
