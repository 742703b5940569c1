"""A real ZooKeeper ensemble for integration tests: one per session, a fresh chroot per test.

Tests may stop, kill or pause members; the chroot fixture brings every member back before the
next test. Without Java or Debian's zookeeper package the tests skip locally and fail under CI.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from tests.zkensemble import ZkEnsemble, ZkUnavailable, classpath, fresh_chroot

ZkClientFactory = Callable[..., KazooClient]


@pytest.fixture(scope="session")
def zk_ensemble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZkEnsemble]:
    # Imported here: conftest imports this module, so a top-level import would be circular.
    from tests.integration.conftest import unavailable

    try:
        classpath()
    except ZkUnavailable as exc:
        unavailable("ZooKeeper", exc)
    ensemble = ZkEnsemble(tmp_path_factory.mktemp("zookeeper"))
    with ensemble:
        yield ensemble


def _admin_client(ensemble: ZkEnsemble) -> KazooClient:
    client = KazooClient(hosts=ensemble.hosts, timeout=10)
    client.start(timeout=15)
    return client


@pytest.fixture
def zk_chroot(zk_ensemble: ZkEnsemble) -> Iterator[str]:
    """A fresh, existing chroot path; removed with everything under it after the test."""
    chroot = fresh_chroot()
    admin = _admin_client(zk_ensemble)
    try:
        admin.ensure_path(chroot)
    finally:
        admin.stop()
        admin.close()
    yield chroot
    zk_ensemble.ensure_running()
    admin = _admin_client(zk_ensemble)
    try:
        admin.delete(chroot, recursive=True)
    except NoNodeError:
        pass
    finally:
        admin.stop()
        admin.close()


@pytest.fixture
def zk_hosts(zk_ensemble: ZkEnsemble, zk_chroot: str) -> str:
    """The ensemble's connection string with this test's chroot appended."""
    return zk_ensemble.hosts_with_chroot(zk_chroot)


@pytest.fixture
def zk_client_factory(zk_hosts: str) -> Iterator[ZkClientFactory]:
    """Makes started KazooClients on ``zk_hosts`` (keyword args go to KazooClient); all are
    stopped and closed after the test."""
    clients: list[KazooClient] = []

    def make(**kwargs: Any) -> KazooClient:
        kwargs.setdefault("hosts", zk_hosts)
        kwargs.setdefault("timeout", 6)
        client = KazooClient(**kwargs)
        clients.append(client)
        client.start(timeout=15)
        return client

    yield make
    for client in clients:
        client.stop()
        client.close()
