"""The deployment files under deploy/ checked by the real tools that will read them.

One test per validator, each a real run of the tool (docker-compose 1.29, haproxy, systemd,
ZooKeeper's own config parser, promtool), and each shown able to fail on a broken copy. A
missing tool skips locally and fails under CI=true.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from haflow.config.schema import DEFAULT_TASK_ENV, split_key
from haflow.errors import ConfigError
from haflow.metastore.engine import servers
from tests.integration.conftest import unavailable

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
ZK_JARS = ("zookeeper.jar", "zookeeper-jute.jar", "slf4j-api.jar", "slf4j-nop.jar")
ZK_HELPER = Path(__file__).with_name("ParseZkConfig.java")
HAFLOW_SERVICES = {"haflow-init", "master1", "master2", "worker1", "worker2"}


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        unavailable(name, FileNotFoundError(f"{name} is not on PATH"))
        raise AssertionError("unreachable")
    return path


def run(*args: str | Path, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=60, check=False, **kw
    )


# --- docker-compose ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def secrets_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Secret files made by deploy/make-secrets.sh, as an operator would."""
    target = tmp_path_factory.mktemp("secrets") / "s"
    out = run("sh", DEPLOY / "make-secrets.sh", target)
    assert out.returncode == 0, out.stderr
    return target


def compose_config(path: Path, secrets: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HAFLOW_SECRETS_DIR": str(secrets)}
    return run(tool("docker-compose"), "-f", path, "config", env=env)


@pytest.fixture(scope="module")
def compose(secrets_dir: Path) -> dict[str, Any]:
    """The compose file as docker-compose resolves it (anchors merged, variables filled)."""
    out = compose_config(COMPOSE, secrets_dir)
    assert out.returncode == 0, out.stderr
    assert out.stderr.strip() == "", f"docker-compose warned: {out.stderr}"
    config: dict[str, Any] = yaml.safe_load(out.stdout)
    return config


def test_compose_file_is_valid_for_docker_compose(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {
        *("zk1", "zk2", "zk3", "postgres", "rabbitmq", "haproxy", "prometheus", "grafana"),
        *HAFLOW_SERVICES,
    }
    for name in ("master1", "master2", "worker1", "worker2"):
        conditions = {dep: d["condition"] for dep, d in services[name]["depends_on"].items()}
        assert conditions.pop("haflow-init") == "service_completed_successfully"
        assert set(conditions) == {"postgres", "rabbitmq", "zk1", "zk2", "zk3"}
        assert set(conditions.values()) == {"service_healthy"}, name
        for dep in conditions:
            assert services[dep]["healthcheck"]["test"], dep
    assert services["master1"]["command"] == ["haflow-master"]
    assert services["haflow-init"]["command"] == ["haflow-init"]
    prometheus_deps = services["prometheus"]["depends_on"]
    assert prometheus_deps["haflow-init"]["condition"] == "service_completed_successfully"
    assert services["worker1"]["command"][:2] == ["haflow", "worker"]


def test_compose_keeps_the_web_secret_key_from_workers(compose: dict[str, Any]) -> None:
    """Workers run DAG authors' tasks: they get neither the webserver's secret_key (which signs
    every session) nor a setting naming it; masters get both."""
    services = compose["services"]

    def secrets_of(name: str) -> set[str]:
        return {s if isinstance(s, str) else s["source"] for s in services[name]["secrets"]}

    for name in ("worker1", "worker2"):
        assert "secret_key" not in secrets_of(name), name
        assert not [k for k in services[name]["environment"] if "SECRET_KEY" in k], name
    for name in ("master1", "master2"):
        assert "secret_key" in secrets_of(name), name
        assert services[name]["environment"]["HAFLOW__WEBSERVER__SECRET_KEY_SECRET"]
    ports = services["grafana"]["ports"]
    assert all(str(p).startswith("127.0.0.1:") for p in ports), ports  # docker-compose v1 form


def test_compose_serves_https_and_guards_zookeeper_and_sessions(compose: dict[str, Any]) -> None:
    services = compose["services"]
    lb = services["haproxy"]
    assert [s if isinstance(s, str) else s["source"] for s in lb["secrets"]] == ["tls_pem"]
    assert lb["environment"]["HAFLOW_TLS_PEM"] == "/run/secrets/tls_pem"
    published = [p["target"] if isinstance(p, dict) else str(p) for p in lb["ports"]]
    assert 8443 in published, lb["ports"]
    for name in HAFLOW_SERVICES:
        env = services[name]["environment"]
        assert env["HAFLOW__ELECTION__ZK_AUTH_SECRET"] == "/run/secrets/zk_auth", name
        assert "zk_auth" in [
            s if isinstance(s, str) else s["source"] for s in services[name]["secrets"]
        ]
    for name in ("master1", "master2"):
        assert services[name]["environment"]["HAFLOW__WEBSERVER__COOKIE_SECURE"] == "true"


def test_compose_secrets_come_from_make_secrets(compose: dict[str, Any], secrets_dir: Path) -> None:
    for name, secret in compose["secrets"].items():
        path = Path(secret["file"])
        assert path.parent == secrets_dir, name
        assert path.is_file() and path.read_text().strip(), f"make-secrets.sh did not make {path}"
        assert (DEPLOY / "secrets" / f"{path.name}.example").is_file(), f"no example of {name}"
    url = (secrets_dir / "sql_alchemy_conn").read_text().strip()
    assert url.startswith(
        "postgresql://haflow:" + (secrets_dir / "postgres_password").read_text().strip()
    )
    broker = (secrets_dir / "broker_url").read_text().strip()
    mq_conf = (secrets_dir / "rabbitmq.conf").read_text()
    assert f"default_pass = {broker.split(':')[2].split('@')[0]}" in mq_conf


def test_broken_compose_file_is_refused(tmp_path: Path, secrets_dir: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    text = COMPOSE.read_text()
    assert "condition: service_healthy" in text
    broken.write_text(text.replace("condition: service_healthy", "condition: service_heathy", 1))
    out = compose_config(broken, secrets_dir)
    assert out.returncode != 0
    assert "service_heathy" in out.stderr


def environment_names(compose: dict[str, Any]) -> set[str]:
    names: set[str] = set()
    for service in compose["services"].values():
        env = service.get("environment") or {}
        names.update(env if isinstance(env, dict) else (e.split("=", 1)[0] for e in env))
    return names


def unknown_settings(names: set[str]) -> list[str]:
    """Each HAFLOW__SECTION__KEY[_SECRET|_CMD] name that the loader would refuse, with why."""
    problems = []
    for name in sorted(n for n in names if n.startswith("HAFLOW__")):
        section, _, key = name.removeprefix("HAFLOW__").lower().partition("__")
        try:
            split_key(section, key, name)
        except ConfigError as exc:
            problems.append(str(exc))
    return problems


def test_every_haflow_variable_names_a_real_setting(compose: dict[str, Any]) -> None:
    resolved = environment_names(compose)
    written = set(re.findall(r"\bHAFLOW__[A-Z0-9_]+", COMPOSE.read_text()))
    written.discard("HAFLOW__SECTION__KEY")  # the placeholder in the header comment
    written.discard("HAFLOW__SECTION__KEY_SECRET")
    assert {n for n in resolved if n.startswith("HAFLOW__")} <= written
    assert len(written) >= 10
    assert unknown_settings(written) == []


def test_the_drill_override_adds_records_and_dags_to_the_haflow_nodes(secrets_dir: Path) -> None:
    """deploy/compose.chaos.yml (haflow.chaos.deployment checks the same at a drill's start):
    the masters read the drill's DAGs folder in place of their own, every master and worker
    writes its records folder, and tasks see the HAFLOW_CHAOS_ variables."""
    env = {"PATH": "/usr/bin:/bin", "HAFLOW_SECRETS_DIR": str(secrets_dir)}
    env["HAFLOW_CHAOS_DIR"] = "/srv/drill"
    out = run(
        tool("docker-compose"), "-f", COMPOSE, "-f", DEPLOY / "compose.chaos.yml", "config", env=env
    )
    assert out.returncode == 0 and out.stderr.strip() == "", out.stderr
    services = yaml.safe_load(out.stdout)["services"]
    for name in ("master1", "master2", "worker1", "worker2"):
        service = services[name]
        mounts = {v.split(":")[1]: v.split(":")[0] for v in service.get("volumes", [])}
        assert mounts["/records"] == f"/srv/drill/records/{name}", name
        if name.startswith("master"):
            assert mounts == {"/opt/haflow/dags": "/srv/drill/dags", "/records": mounts["/records"]}
        environment = service["environment"]
        assert environment["HAFLOW_CHAOS_NODE"] == name
        assert environment["HAFLOW_CHAOS_RECORDS"] == "/records/records.jsonl"
        allowed = environment["HAFLOW__WORKER__TASK_ENV_ALLOWLIST"]
        assert allowed == f"{DEFAULT_TASK_ENV} HAFLOW_CHAOS_*", name
    assert unknown_settings({"HAFLOW__WORKER__TASK_ENV_ALLOWLIST"}) == []


def test_the_ha_override_replaces_both_single_servers(secrets_dir: Path) -> None:
    """deploy/compose.ha.yml: two Patroni members behind one multi-host URL, three RabbitMQ
    nodes in one failover list, quorum queues, and every dependency still a healthy server
    (the single servers' names are kept, so the base file's depends_on hold)."""
    env = {"PATH": "/usr/bin:/bin", "HAFLOW_SECRETS_DIR": str(secrets_dir)}
    out = run(
        tool("docker-compose"), "-f", COMPOSE, "-f", DEPLOY / "compose.ha.yml", "config", env=env
    )
    assert out.returncode == 0 and out.stderr.strip() == "", out.stderr
    config = yaml.safe_load(out.stdout)
    services = config["services"]
    members = ("postgres", "postgres2")
    for name in members:
        pg = services[name]
        assert pg["image"] == "haflow/patroni" and pg["build"]["context"].endswith("patroni")
        assert pg["environment"]["PATRONI_NAME"] == name
        assert pg["environment"]["PATRONI_ZK_AUTH_FILE"] == "/run/secrets/zk_auth"
        assert pg["healthcheck"]["test"] == ["CMD", "patroni-ready"]
        assert {d for d, c in pg["depends_on"].items()} == {"zk1", "zk2", "zk3"}
    nodes = ("rabbitmq", "rabbitmq2", "rabbitmq3")
    for name in nodes:
        mq = services[name]
        assert mq["hostname"] == name and "erlang_cookie" in str(mq["secrets"])
        assert any("80-cluster.conf" in v for v in mq["volumes"]), name
    conf = (DEPLOY / "rabbitmq" / "cluster.conf").read_text()
    assert [f"rabbit@{n}" for n in nodes] == re.findall(r"nodes\.\d = (\S+)", conf)
    for name in HAFLOW_SERVICES:
        assert services[name]["environment"]["HAFLOW__CELERY__QUEUE_TYPE"] == "quorum", name
    assert {"rabbitmq2", "rabbitmq3"} <= set(services["haflow-init"]["depends_on"])
    assert unknown_settings(environment_names(config)) == []

    files = {k: Path(v["file"]) for k, v in config["secrets"].items()}
    url = files["sql_alchemy_conn"].read_text().strip()
    assert files["sql_alchemy_conn"].name == "sql_alchemy_conn.ha"
    assert servers(url) == [(m, 5432) for m in members]
    assert "target_session_attrs=read-write" in url
    broker = files["broker_url"].read_text().strip().split(";")
    assert [u.split("@")[1] for u in broker] == [f"{n}:5672//" for n in nodes]
    assert files["erlang_cookie"].read_text().strip()
    for name in ("sql_alchemy_conn.ha", "broker_url.ha", "erlang_cookie"):
        assert (DEPLOY / "secrets" / f"{name}.example").is_file(), name


def test_a_misspelt_haflow_variable_is_caught() -> None:
    problems = unknown_settings(
        {"HAFLOW__CORE__EXECUTER", "HAFLOW__CORE__EXECUTOR_SECRET", "HAFLOW__CORE__EXECUTOR"}
    )
    assert len(problems) == 2
    assert "did you mean 'executor'" in problems[0] or "did you mean 'executor'" in problems[1]


# --- haproxy -------------------------------------------------------------------------------

# The masters' names resolve only inside the cluster's network: haproxy starts them down
# (init-addr none) and says so. Any other warning is a failure.
UNRESOLVED = re.compile(r"could not resolve address 'master\d', disabling server")


def haproxy_check(path: Path, secrets: Path) -> subprocess.CompletedProcess[str]:
    """`haproxy -c` with the environment compose gives it (the TLS PEM make-secrets.sh made)."""
    env = {
        "PATH": "/usr/sbin:/usr/bin:/bin",
        "HAFLOW_TLS_PEM": str(secrets / "tls.pem"),
        "HAFLOW_HTTPS_PORT": "8443",
    }
    return run(tool("haproxy"), "-c", "-f", path, env=env)


def test_haproxy_config_is_valid(secrets_dir: Path) -> None:
    out = haproxy_check(DEPLOY / "haproxy.cfg", secrets_dir)
    assert out.returncode == 0, out.stderr
    assert "Configuration file is valid" in out.stdout + out.stderr
    warnings = [
        line for line in out.stderr.splitlines() if "[WARNING]" in line or "[ALERT]" in line
    ]
    assert [w for w in warnings if not UNRESOLVED.search(w)] == []
    cfg = (DEPLOY / "haproxy.cfg").read_text()
    assert "http-check send meth GET uri /ready" in cfg and "option redispatch" in cfg
    assert "ssl crt" in cfg and "Strict-Transport-Security" in cfg


def test_make_secrets_makes_a_certificate_for_haproxy(secrets_dir: Path) -> None:
    pem = (secrets_dir / "tls.pem").read_text()
    assert "BEGIN CERTIFICATE" in pem and "PRIVATE KEY" in pem
    out = run("openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", secrets_dir / "tls.pem")
    assert "DNS:localhost" in out.stdout and "IP Address:127.0.0.1" in out.stdout, out.stdout


def test_broken_haproxy_config_is_refused(tmp_path: Path, secrets_dir: Path) -> None:
    broken = tmp_path / "haproxy.cfg"
    broken.write_text((DEPLOY / "haproxy.cfg").read_text().replace("fall 2", "fall two"))
    out = haproxy_check(broken, secrets_dir)
    assert out.returncode != 0
    assert "fall" in out.stderr


# --- systemd -------------------------------------------------------------------------------


def verify_units(units: list[Path], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """systemd-analyze verify on copies whose ExecStart names this checkout's haflow.

    verify refuses an ExecStart binary that does not exist; the units name the documented
    install path /opt/haflow/venv, so the copies point at the virtualenv running the tests.
    """
    haflow = Path(shutil.which("haflow", path=str(ROOT / ".venv" / "bin")) or "")
    if not haflow.is_file():
        unavailable("the virtualenv's haflow", FileNotFoundError(str(haflow)))
    names = []
    for unit in units:
        text = unit.read_text()
        assert "/opt/haflow/venv/bin/haflow " in text, unit
        (tmp_path / unit.name).write_text(text.replace("/opt/haflow/venv/bin/haflow", str(haflow)))
        names.append(unit.name.replace("@.", "@main."))  # a template is verified as an instance
    return run(tool("systemd-analyze"), "verify", "--man=no", *names, cwd=tmp_path)


def test_systemd_units_verify(tmp_path: Path) -> None:
    assert {u.name for u in UNITS} == {
        "haflow-scheduler.service",
        "haflow-webserver.service",
        "haflow-worker@.service",
    }
    out = verify_units(UNITS, tmp_path)
    assert out.returncode == 0, out.stderr
    # verify reports unknown keys and bad values as warnings with exit 0: any line about one
    # of the units is a failure.
    assert [line for line in (out.stdout + out.stderr).splitlines() if "haflow" in line] == []
    for unit in UNITS:
        text = unit.read_text()
        assert "User=haflow" in text and "Restart=on-failure" in text, unit.name


def test_broken_systemd_unit_is_reported(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    broken = tmp_path / "src" / "haflow-scheduler.service"
    broken.write_text(
        (DEPLOY / "systemd" / "haflow-scheduler.service")
        .read_text()
        .replace("Restart=on-failure", "Restart=sometimes")
    )
    out = verify_units([broken], tmp_path)
    assert "Failed to parse service restart specifier" in out.stderr


# --- ZooKeeper -----------------------------------------------------------------------------


def parse_zoo_cfg(cfg: Path, tmp_path: Path, myid: int = 1) -> subprocess.CompletedProcess[str]:
    """Parse with ZooKeeper's QuorumPeerConfig, as a member with `myid` would at start.

    The parser reads <dataDir>/myid, so the copy's dataDir is a temporary folder holding it.
    """
    java = tool("java")
    jars = [Path("/usr/share/java") / j for j in ZK_JARS]
    missing = [j for j in jars if not j.is_file()]
    if missing:
        unavailable("ZooKeeper's jars", FileNotFoundError(", ".join(map(str, missing))))
    data = tmp_path / f"data{myid}"
    data.mkdir()
    (data / "myid").write_text(f"{myid}\n")
    text = re.sub(r"(?m)^dataDir=.*$", f"dataDir={data}", cfg.read_text())
    copy = tmp_path / f"zoo{myid}.cfg"
    copy.write_text(text)
    classpath = ":".join(map(str, jars))
    return run(java, "-cp", classpath, ZK_HELPER, copy)


def test_zookeeper_config_parses_as_a_three_member_ensemble(tmp_path: Path) -> None:
    out = parse_zoo_cfg(DEPLOY / "zookeeper" / "zoo.cfg", tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    parsed = dict(line.split("=", 1) for line in out.stdout.splitlines())
    assert parsed["distributed"] == "true"
    assert parsed["clientPort"] == "2181"
    servers = {k: v for k, v in parsed.items() if k.startswith("server.")}
    assert servers == {f"server.{i}": f"zk{i}:2888:3888" for i in (1, 2, 3)}
    # haflow's [election] zk_session_timeout default (6 s) must be a session ZooKeeper grants.
    assert int(parsed["minSessionTimeout"]) <= 6000 <= int(parsed["maxSessionTimeout"])


def test_broken_zookeeper_config_is_refused(tmp_path: Path) -> None:
    broken = tmp_path / "zoo.cfg"
    text = (DEPLOY / "zookeeper" / "zoo.cfg").read_text()
    broken.write_text(text.replace("server.2=zk2:2888:3888", "server.2=zk2:2888"))
    out = parse_zoo_cfg(broken, tmp_path)
    assert out.returncode == 1
    assert "invalid" in out.stdout and "zk2:2888" in out.stdout


# --- Prometheus ----------------------------------------------------------------------------


@pytest.fixture
def prometheus_dir(tmp_path: Path) -> Iterator[Path]:
    """deploy/prometheus/prometheus.yml next to the rules and the metrics token, laid out as
    compose mounts them (promtool requires the token file to exist)."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "token").mkdir()
    (tmp_path / "token" / "haflow-metrics-token").write_text("token-made-by-haflow-init\n")
    rules = ROOT / "dashboards" / "prometheus" / "rules"
    for rule in sorted(rules.glob("*-alerts.yml")) if rules.is_dir() else []:
        shutil.copy(rule, tmp_path / "rules" / rule.name)
    shutil.copy(DEPLOY / "prometheus" / "prometheus.yml", tmp_path / "prometheus.yml")
    yield tmp_path


def test_prometheus_config_is_valid_and_scrapes_every_daemon(
    prometheus_dir: Path, compose: dict[str, Any]
) -> None:
    out = run(tool("promtool"), "check", "config", prometheus_dir / "prometheus.yml")
    assert out.returncode == 0, out.stdout + out.stderr
    config = yaml.safe_load((prometheus_dir / "prometheus.yml").read_text())
    targets = {
        t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]
    }
    services = compose["services"]
    for name in ("master1", "master2"):
        env = services[name]["environment"]
        assert f"{name}:{env['HAFLOW__SCHEDULER__METRICS_PORT']}" in targets
        assert f"{name}:{env['HAFLOW__WEBSERVER__PORT']}" in targets
    for name in ("worker1", "worker2"):
        assert f"{name}:{services[name]['environment']['HAFLOW__WORKER__METRICS_PORT']}" in targets
    # The same jobs and labels as dashboards/prometheus/prometheus.yml, which the rules expect.
    reference = ROOT / "dashboards" / "prometheus" / "prometheus.yml"
    if reference.is_file():
        theirs = yaml.safe_load(reference.read_text())["scrape_configs"]
        ours = config["scrape_configs"]
        assert [j["job_name"] for j in ours] == [j["job_name"] for j in theirs]
        for mine, other in zip(ours, theirs, strict=True):
            assert mine["static_configs"] == other["static_configs"], mine["job_name"]


def test_broken_prometheus_config_is_refused(prometheus_dir: Path) -> None:
    cfg = prometheus_dir / "prometheus.yml"
    text = cfg.read_text()
    assert "scrape_interval: 15s" in text
    cfg.write_text(text.replace("scrape_interval: 15s", "scrape_interval: 15 seconds"))
    out = run(tool("promtool"), "check", "config", cfg)
    assert out.returncode != 0
    assert "15 seconds" in out.stdout + out.stderr


def test_prometheus_config_needs_the_metrics_token(prometheus_dir: Path) -> None:
    (prometheus_dir / "token" / "haflow-metrics-token").unlink()
    out = run(tool("promtool"), "check", "config", prometheus_dir / "prometheus.yml")
    assert out.returncode != 0
    assert "haflow-metrics-token" in out.stdout + out.stderr
