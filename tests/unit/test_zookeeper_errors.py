"""A ZooKeeper ensemble that cannot be reached at start is reported clearly, without hanging."""

from __future__ import annotations

import logging
import socket
import time
from datetime import UTC, datetime

import pytest

from haflow.election.policy import fallback_note
from haflow.election.zookeeper import ZooKeeperElector, probe_hosts


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_probe_names_each_host_and_its_error() -> None:
    port = closed_port()
    report = probe_hosts(f"127.0.0.1:{port},127.0.0.1:notaport/haflow")
    assert f"127.0.0.1:{port}: " in report and "refused" in report.lower()
    assert "127.0.0.1:notaport: " in report


def test_unreachable_ensemble_at_start_is_logged_and_does_not_lead(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hosts = f"127.0.0.1:{closed_port()}"
    elector = ZooKeeperElector(
        hosts,
        "c",
        "s1",
        session_timeout_s=2.0,
        connect_timeout_s=0.5,
        fallback_note=fallback_note(6.0),
    )
    caplog.set_level(logging.ERROR, logger="haflow.election.zookeeper")
    started = time.monotonic()
    try:
        elector.start()
        assert time.monotonic() - started < 3.0
        assert elector.poll(datetime.now(UTC)) is False
    finally:
        elector.stop()
    message = caplog.text
    assert "ZooKeeper unreachable at start" in message
    assert hosts in message and "refused" in message.lower()
    assert "database fallback in use" in message
