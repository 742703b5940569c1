"""The alert rules and the Prometheus configuration under dashboards/, checked by promtool:
syntax, the unit tests of every alert, and that every alert is tested and has a runbook."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from tests.integration.conftest import unavailable

DASHBOARDS = Path(__file__).resolve().parents[2] / "dashboards"
RULES = DASHBOARDS / "prometheus" / "rules"


def promtool(*args: str, cwd: Path) -> str:
    if shutil.which("promtool") is None:
        unavailable("promtool", FileNotFoundError("promtool is not installed (Debian: prometheus)"))
    done = subprocess.run(["promtool", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


def alerts() -> list[dict[str, object]]:
    doc = yaml.safe_load((RULES / "haflow-alerts.yml").read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_rules_pass_promtool_check() -> None:
    out = promtool("check", "rules", "haflow-alerts.yml", cwd=RULES)
    assert f"SUCCESS: {len(alerts())} rules found" in out


def test_every_alert_passes_its_unit_tests() -> None:
    out = promtool("test", "rules", "haflow-alerts.test.yml", cwd=RULES)
    assert "SUCCESS" in out


def test_every_alert_is_unit_tested_firing_and_has_a_runbook() -> None:
    tests = yaml.safe_load((RULES / "haflow-alerts.test.yml").read_text())["tests"]
    fired = {
        check["alertname"]
        for t in tests
        for check in t["alert_rule_test"]
        if check.get("exp_alerts")
    }
    names = [str(rule["alert"]) for rule in alerts()]
    assert sorted(fired) == sorted(names)
    for rule in alerts():
        annotations = rule["annotations"]
        assert isinstance(annotations, dict)
        assert "Runbook" in annotations["description"], rule["alert"]
        assert annotations["summary"], rule["alert"]


def test_the_scrape_config_is_valid(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("secret")
    config = (DASHBOARDS / "prometheus" / "prometheus.yml").read_text()
    assert "/etc/prometheus/haflow-metrics-token" in config
    (tmp_path / "prometheus.yml").write_text(
        config.replace("/etc/prometheus/haflow-metrics-token", str(token))
    )
    shutil.copytree(RULES, tmp_path / "rules")
    out = promtool("check", "config", "prometheus.yml", cwd=tmp_path)
    assert "is valid prometheus config file syntax" in out


def test_grafana_provisioning_points_at_the_dashboards() -> None:
    prov = yaml.safe_load(
        (DASHBOARDS / "grafana" / "provisioning" / "dashboards" / "haflow.yml").read_text()
    )
    assert prov["providers"][0]["type"] == "file"
    source = yaml.safe_load(
        (DASHBOARDS / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    assert source["datasources"][0]["type"] == "prometheus"
