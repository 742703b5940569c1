"""The ZooKeeper test ensemble and its fault helpers do what later tests rely on."""

from __future__ import annotations

from kazoo.protocol.states import KazooState

from tests.integration.zk_fixtures import ZkClientFactory
from tests.zkensemble import (
    StateRecorder,
    ZkEnsemble,
    drop_connection,
    expire_session,
    wait_until,
)


def test_client_writes_under_its_chroot(
    zk_ensemble: ZkEnsemble, zk_chroot: str, zk_client_factory: ZkClientFactory
) -> None:
    client = zk_client_factory()
    client.create("/job", b"payload")

    unrooted = zk_client_factory(hosts=zk_ensemble.hosts)
    assert unrooted.get(f"{zk_chroot}/job")[0] == b"payload"


def test_expire_session_loses_the_session_and_its_ephemerals(
    zk_client_factory: ZkClientFactory,
) -> None:
    client = zk_client_factory()
    observer = zk_client_factory()
    client.create("/owner", ephemeral=True)
    recorder = StateRecorder(client)

    expire_session(client)

    assert KazooState.LOST in recorder.states
    assert wait_until(lambda: observer.exists("/owner") is None, timeout=10)
    assert recorder.wait_for(
        KazooState.CONNECTED, timeout=10, after=recorder.states.index(KazooState.LOST)
    )


def test_drop_connection_suspends_and_keeps_the_session(
    zk_client_factory: ZkClientFactory,
) -> None:
    client = zk_client_factory()
    client.create("/owner", ephemeral=True)
    session_id = client.client_id[0]
    recorder = StateRecorder(client)

    drop_connection(client)

    assert recorder.states[0] == KazooState.SUSPENDED
    assert recorder.wait_for(KazooState.CONNECTED, timeout=10)
    assert KazooState.LOST not in recorder.states
    assert client.client_id[0] == session_id
    assert client.exists("/owner") is not None


def test_one_member_down_of_three_keeps_serving(
    zk_ensemble: ZkEnsemble, zk_chroot: str, zk_client_factory: ZkClientFactory
) -> None:
    zk_ensemble.stop_member(0)

    client = zk_client_factory(hosts=zk_ensemble.hosts_with_chroot(zk_chroot))
    client.create("/still-writable")
    assert zk_ensemble.running() == [1, 2]


def test_losing_quorum_suspends_and_restoring_it_reconnects(
    zk_ensemble: ZkEnsemble, zk_client_factory: ZkClientFactory
) -> None:
    client = zk_client_factory()
    recorder = StateRecorder(client)

    zk_ensemble.stop_member(0)
    zk_ensemble.stop_member(1)
    assert recorder.wait_for(KazooState.SUSPENDED, timeout=10)

    suspended_at = recorder.states.index(KazooState.SUSPENDED)
    zk_ensemble.start_member(0, wait=False)
    zk_ensemble.start_member(1, wait=False)
    zk_ensemble.wait_serving(timeout=30)
    assert recorder.wait_for(KazooState.CONNECTED, timeout=15, after=suspended_at)
    client.create("/after-recovery")
