"""`haflow worker` guards: no root without --allow-root; the Celery settings that avoid loss."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from haflow.assembly.worker import run_worker
from haflow.config import load_settings
from haflow.errors import ConfigError
from haflow.worker.celery_app import broker_settings, make_app


def settings(tmp_path: Path, broker: str, **more: str):  # type: ignore[no-untyped-def]
    return load_settings(
        home=tmp_path,
        environ={
            "HAFLOW__CELERY__BROKER_URL": broker,
            "HAFLOW__CELERY__VISIBILITY_TIMEOUT": "7200",
            **{f"HAFLOW__CELERY__{k.upper()}": v for k, v in more.items()},
        },
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can be refused")
def test_root_is_refused_without_allow_root(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="refusing to run a worker as root"):
        run_worker(
            settings(tmp_path, "redis://127.0.0.1:1/0"),
            concurrency=1,
            queues=["default"],
            hostname="w",
            allow_root=False,
        )


def test_safe_celery_settings(tmp_path: Path) -> None:
    conf = broker_settings(settings(tmp_path, "amqp://guest:guest@127.0.0.1:5672//"))
    assert conf["task_acks_late"] and conf["task_reject_on_worker_lost"]
    assert conf["worker_prefetch_multiplier"] == 1
    assert conf["accept_content"] == ["json"] and conf["task_serializer"] == "json"
    assert conf["broker_transport_options"] == {"confirm_publish": True}
    assert conf["result_backend"] is None
    # [celery] remote_control = auto: off with RabbitMQ, on with Redis (see remote_control)
    assert conf["worker_enable_remote_control"] is False
    redis = broker_settings(settings(tmp_path, "redis://127.0.0.1:6379/0"))
    assert redis["broker_transport_options"] == {"visibility_timeout": 7200.0}
    assert redis["worker_enable_remote_control"] is True


def test_queue_type_is_classic_unless_quorum_is_asked(tmp_path: Path) -> None:
    amqp = "amqp://guest:guest@127.0.0.1:5672//"
    classic = broker_settings(settings(tmp_path, amqp))
    assert classic["task_default_queue_type"] == "classic"
    quorum = broker_settings(settings(tmp_path, amqp, queue_type="quorum"))
    assert quorum["task_default_queue_type"] == quorum["task_create_missing_queue_type"]
    assert quorum["task_create_missing_queue_type"] == "quorum"
    assert quorum["worker_detect_quorum_queues"] is True
    with pytest.raises(ConfigError, match="queue_type"):
        settings(tmp_path, amqp, queue_type="mirrored")


def test_missing_broker_url_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[celery\] broker_url"):
        make_app(settings(tmp_path, ""))
