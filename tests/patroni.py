"""A real Patroni-managed PostgreSQL for tests: members are containers of the deploy kit's
image (deploy/patroni, `make images` builds haflow-local/patroni) on the host's network, their
primary elected in a ZooKeeper ensemble the test gives (the test ensemble, under its chroot).

Each member has its own PostgreSQL and REST API port on 127.0.0.1; haflow reaches the primary
through the libpq multi-host URL `url()` gives, as a deployment does.
"""

from __future__ import annotations

import json
import os
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from haflow.chaos import patroni
from haflow.chaos.docker import Docker, DockerError
from tests.ports import free_ports
from tests.waiting import wait_for

IMAGE = "haflow-local/patroni"
LABEL = "haflow.test.patroni"


@dataclass(frozen=True)
class Member:
    name: str
    container: str
    pg_port: int
    api_port: int


class Patroni:
    """Members `names` of one Patroni cluster (`start` them; `remove` removes everything)."""

    def __init__(
        self,
        work: Path,
        zk_hosts: str,
        names: tuple[str, ...] = ("pg1", "pg2"),
        zk_auth: str = "",
    ):
        self.docker = Docker()
        self.zk_hosts = zk_hosts
        self.zk_auth = work / "zk_auth"  # user:password, as compose's zk_auth secret holds it
        self.zk_auth.write_text(zk_auth + "\n")
        self.zk_auth.chmod(0o644)
        self.use_zk_auth = bool(zk_auth)
        self.password = secrets.token_hex(12)
        self.secret = work / "postgres_password"
        self.secret.write_text(self.password + "\n")
        self.secret.chmod(0o644)  # read by the image's postgres user
        tag = f"{os.getpid()}-{secrets.token_hex(3)}"
        ports = free_ports(2 * len(names))
        self.members = {
            name: Member(name, f"haflow-patroni-{tag}-{name}", ports[2 * i], ports[2 * i + 1])
            for i, name in enumerate(names)
        }

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, name: str) -> None:
        m = self.members[name]
        env = {
            "PATRONI_NAME": m.name,
            "PATRONI_HOST": "127.0.0.1",
            "PATRONI_PG_PORT": str(m.pg_port),
            "PATRONI_API_PORT": str(m.api_port),
            "PATRONI_ZK_HOSTS": self.zk_hosts,
            "PATRONI_NAMESPACE": "/patroni",
            "POSTGRES_PASSWORD_FILE": "/run/secrets/postgres_password",
        }
        if self.use_zk_auth:
            env["PATRONI_ZK_AUTH_FILE"] = "/run/secrets/zk_auth"
        args = [a for k, v in env.items() for a in ("-e", f"{k}={v}")]
        self.docker.run(
            "run", "-d", "--name", m.container, "--label", LABEL, "--network", "host",
            "-v", f"{self.secret}:/run/secrets/postgres_password:ro",
            "-v", f"{self.zk_auth}:/run/secrets/zk_auth:ro",
            *args, IMAGE,
        )  # fmt: skip

    def patronictl(self, name: str, *args: str) -> str:
        """Patroni's own command line in member `name`, on the configuration it runs with."""
        container = self.members[name].container
        return self.docker.run("exec", container, "patronictl", "-c", "/tmp/patroni.yml", *args)

    def kill(self, name: str) -> None:
        self.docker.run("kill", self.members[name].container)

    def remove(self) -> None:
        names = [m.container for m in self.members.values()]
        self.docker.run("rm", "-f", "-v", *names, check=False, timeout_s=60)

    def logs(self, tail: int = 80) -> str:
        out = []
        for m in self.members.values():
            said = self.docker.run("logs", "--tail", str(tail), m.container, check=False)
            out.append(f"--- {m.name}\n{said}")
        return "\n".join(out)

    # -- what haflow connects to -------------------------------------------------------------

    def url(self, db: str = "haflow") -> str:
        """The metastore URL: every member, the one accepting writes is used."""
        hosts = "&".join(f"host=127.0.0.1:{m.pg_port}" for m in self.members.values())
        return f"postgresql://haflow:{self.password}@/{db}?{hosts}&target_session_attrs=read-write"

    def member_url(self, name: str, db: str = "haflow") -> str:
        port = self.members[name].pg_port
        return f"postgresql://haflow:{self.password}@127.0.0.1:{port}/{db}"

    # -- Patroni's view ----------------------------------------------------------------------

    def api(self, name: str, path: str, body: dict[str, Any] | None = None) -> Any:
        url = f"http://127.0.0.1:{self.members[name].api_port}{path}"
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")
        with urllib.request.urlopen(req, timeout=10) as resp:
            text = resp.read().decode()
        try:
            return json.loads(text)
        except ValueError:
            return text

    def view(self) -> patroni.View:
        """Patroni's view of the members (haflow.chaos.patroni, as the harness reads it)."""
        return patroni.view({n: f"127.0.0.1:{m.api_port}" for n, m in self.members.items()})

    def primary(self) -> str | None:
        return patroni.primary(self.view())

    def wait_ready(self, timeout_s: float = 120) -> str:
        """Wait for a primary and a streaming synchronous standby; the primary's name."""
        try:
            wait_for(
                "a primary and a streaming synchronous standby",
                lambda: patroni.replicating(self.view()),
                timeout_s,
                0.5,
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {self.view()}\n{self.logs()}") from None
        primary = self.primary()
        assert primary is not None
        return primary

    def switchover(self, candidate: str) -> None:
        """A planned switchover to `candidate` (Patroni's REST API, as patronictl does)."""
        leader = self.primary()
        assert leader is not None and leader != candidate, self.view()
        try:
            self.api(leader, "/switchover", {"leader": leader, "candidate": candidate})
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"switchover refused: {exc.read().decode()}") from None

    def wait_writable(self, name: str, timeout_s: float = 60) -> float:
        """Wait until `name` accepts writes (promoted); the time.time() it was first seen so."""
        from sqlalchemy import text

        from haflow.metastore.engine import create_engine

        engine = create_engine(self.member_url(name))
        seen: list[float] = []

        def writable() -> bool:
            try:
                with engine.connect() as conn:
                    if not conn.execute(text("SELECT pg_is_in_recovery()")).scalar():
                        seen.append(time.time())
                        return True
            except Exception:  # restarting, not accepting connections yet
                pass
            return False

        try:
            wait_for(f"{name} to accept writes", writable, timeout_s, 0.05)
        finally:
            engine.dispose()
        return seen[0]


def image_present() -> bool:
    try:
        return bool(Docker().inspect(IMAGE, kind="image"))
    except DockerError:
        return False
