"""Two real `haflow webserver`s (gunicorn) behind a real haproxy checking /ready.

A bounded request loop runs through haproxy while one webserver is SIGKILLed (master and
workers) and the other is reloaded with SIGHUP: after haproxy's check window no request fails,
and the graceful reload drops none. Judged from each request's recorded time and outcome.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from haflow.metastore.repository import Repository
from haflow.web.credentials import hash_password, new_token, token_digest
from tests.daemons import HAFLOW, launch, stop_group
from tests.integration.conftest import unavailable
from tests.integration.web_fixtures import T0
from tests.ports import free_port
from tests.waiting import wait_for

pytestmark = [pytest.mark.parametrize("backend", ["postgresql"], indirect=True), pytest.mark.slow]
CHECK_INTER_S, FALL = 0.5, 2
WINDOW_S = CHECK_INTER_S * (FALL + 1)  # the failing checks, plus one interval of slack
HAPROXY_CFG = """
global
    maxconn 256
defaults
    mode http
    timeout connect 1s
    timeout client 10s
    timeout server 10s
    retries 2
    option redispatch
frontend fe
    bind 127.0.0.1:{lb}
    default_backend web
backend web
    balance roundrobin
    option httpchk GET /ready
    http-check expect status 200
    default-server inter {inter_ms}ms fall {fall} rise 1
    server w1 127.0.0.1:{p1} check
    server w2 127.0.0.1:{p2} check
"""


@dataclass
class Sample:
    t: float
    ok: bool
    detail: str


def _ready(port: int, token: str) -> bool:
    return _get(f"http://127.0.0.1:{port}/ready", token)[0]


def _get(url: str, token: str) -> tuple[bool, str]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=3) as resp:
            return resp.status == 200, str(resp.status)
    except urllib.error.HTTPError as exc:
        return False, f"HTTP {exc.code}"
    except OSError as exc:
        return False, repr(exc)


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for p in started:
        stop_group(p)


def test_no_request_fails_after_haproxy_drops_a_killed_webserver(
    engine: Engine, db_url: str, tmp_path: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not Path(haproxy).exists():
        unavailable("haproxy", FileNotFoundError(haproxy))
    repo = Repository(engine)
    repo.users.create("ops", hash_password("ops-password-1"), "Viewer", T0)
    token = new_token()
    repo.users.add_token("ops", token_digest(token), "lb-test", T0)

    p1, p2, lb = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "HAFLOW_HOME": str(tmp_path),
        "HAFLOW__CORE__SQL_ALCHEMY_CONN": db_url,
        "HAFLOW__WEBSERVER__SECRET_KEY": "s" * 32,
        "HAFLOW__WEBSERVER__PROXY_COUNT": "1",
    }
    web = [*HAFLOW, "webserver", "--host", "127.0.0.1", "-w", "2"]
    for port in (p1, p2):
        procs.append(launch([*web, "--port", str(port)], env, tmp_path / f"web{port}.log"))
    for port in (p1, p2):
        wait_for(
            f"webserver :{port}",
            functools.partial(_ready, port, token),
            60,
        )
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(
        HAPROXY_CFG.format(lb=lb, p1=p1, p2=p2, inter_ms=int(CHECK_INTER_S * 1000), fall=FALL)
    )
    check = subprocess.run([haproxy, "-c", "-f", str(cfg)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    procs.append(launch([haproxy, "-db", "-f", str(cfg)], env, tmp_path / "haproxy.log"))
    url = f"http://127.0.0.1:{lb}/api/v1/dags"
    wait_for("haproxy", lambda: _get(url, token)[0], 30)
    # both webservers registered themselves (the Cluster page and `haflow doctor` read this)
    wait_for("two webserver rows", lambda: len(repo.members.webservers()) == 2, 30)

    samples: list[Sample] = []
    start = time.monotonic()
    killed_at = hup_at = None
    while time.monotonic() - start < 10.0 and len(samples) < 5000:
        elapsed = time.monotonic() - start
        if killed_at is None and elapsed >= 2.0:
            os.killpg(procs[0].pid, signal.SIGKILL)
            killed_at = time.monotonic()
        if hup_at is None and elapsed >= 5.0:
            os.kill(procs[1].pid, signal.SIGHUP)  # gunicorn's graceful reload of its workers
            hup_at = time.monotonic()
        ok, detail = _get(url, token)
        samples.append(Sample(time.monotonic(), ok, detail))
        time.sleep(0.01)
    assert killed_at is not None and hup_at is not None
    after_window = [s for s in samples if s.t > killed_at + WINDOW_S]
    failed = [(round(s.t - killed_at, 2), s.detail) for s in after_window if not s.ok]
    assert len(after_window) > 50, "too few requests to judge"
    assert failed == [], f"requests failed after haproxy's check window: {failed[:5]}"
    early = [s for s in samples if killed_at <= s.t <= killed_at + WINDOW_S and not s.ok]
    print(
        f"{len(samples)} requests; {len(early)} failed within {WINDOW_S} s of the kill, "
        f"none after; SIGHUP reload at +{hup_at - killed_at:.1f} s dropped none"
    )
    assert procs[1].poll() is None, "the reloaded webserver died"
    # its workers (before and after the reload) share one multiprocess metrics directory
    served = sum(1 for s in samples if s.ok and s.t > killed_at + WINDOW_S)
    counted = _requests_counted(f"http://127.0.0.1:{p2}/metrics", token)
    assert counted >= served, (counted, served)


def _requests_counted(url: str, token: str) -> float:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        body = resp.read().decode()
    series = 'haflow_http_requests_total{endpoint="api.list_dags",method="GET",status="200"}'
    return sum(float(line.split()[-1]) for line in body.splitlines() if line.startswith(series))
