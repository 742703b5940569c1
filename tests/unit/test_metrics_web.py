"""The webserver's metrics API: request recording, the /metrics body, and gunicorn's
multiprocess mode (run in subprocesses, since that mode is chosen for a whole process)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from haflow.metrics.webserver import observe_request, render_metrics


def _samples(body: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_requests_are_counted_by_endpoint_method_and_status() -> None:
    before = _samples(render_metrics()[0])
    key = (
        "haflow_http_requests_total",
        (("endpoint", "api.dags"), ("method", "GET"), ("status", "200")),
    )
    observe_request("api.dags", "GET", 200, 0.02)
    observe_request("api.dags", "GET", 200, 0.3)
    observe_request("api.dags", "GET", 404, 0.01)
    body, content_type = render_metrics()
    after = _samples(body)
    assert content_type.startswith("text/plain")
    assert after[key] - before.get(key, 0.0) == 2
    bucket = (
        "haflow_http_request_duration_seconds_bucket",
        (("endpoint", "api.dags"), ("le", "0.025"), ("method", "GET")),
    )
    assert after[bucket] - before.get(bucket, 0.0) == 2
    assert any(name == "haflow_build_info" for name, _ in after)


GUNICORN_LIKE = """
import os, sys
from pathlib import Path
from types import SimpleNamespace
from haflow.metrics import webserver as web

directory = Path(sys.argv[1])
directory.mkdir(exist_ok=True)
(directory / "counter_99999.db").write_bytes(b"stale")   # a previous run's file
assert web.prepare_multiprocess_dir(directory) == directory
assert not (directory / "counter_99999.db").exists()
assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(directory)
for status in (200, 500):          # two "gunicorn workers", each answering one request
    pid = os.fork()
    if pid == 0:
        web.observe_request("ui.index", "GET", status, 0.05)
        os._exit(0)
    os.waitpid(pid, 0)
    web.child_exit(None, SimpleNamespace(pid=pid))
body, content_type = web.render_metrics()
sys.stdout.write(content_type + "\\n" + body.decode())
"""


def test_gunicorn_workers_add_up_in_multiprocess_mode(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(GUNICORN_LIKE), str(tmp_path / "prom")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    content_type, body = out.split("\n", 1)
    assert content_type.startswith("text/plain")
    samples = _samples(body.encode())
    ok = (("endpoint", "ui.index"), ("method", "GET"), ("status", "200"))
    failed = (("endpoint", "ui.index"), ("method", "GET"), ("status", "500"))
    assert samples[("haflow_http_requests_total", ok)] == 1
    assert samples[("haflow_http_requests_total", failed)] == 1
    count = (
        "haflow_http_request_duration_seconds_count",
        (("endpoint", "ui.index"), ("method", "GET")),
    )
    assert samples[count] == 2
    assert any(name == "haflow_build_info" for name, _ in samples)


def test_prepare_without_a_path_makes_a_private_directory(tmp_path: Path) -> None:
    script = (
        "import os; os.environ.pop('PROMETHEUS_MULTIPROC_DIR', None)\n"
        "from haflow.metrics.webserver import prepare_multiprocess_dir\n"
        "d = prepare_multiprocess_dir(); print(d, d.is_dir())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    ).stdout.split()
    assert out[1] == "True" and "haflow-webserver-metrics-" in out[0]
    Path(out[0]).rmdir()
