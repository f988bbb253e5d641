"""The files in deploy/ stay in step with the code: configs load, manifests parse, every
metric a dashboard or an alert uses exists, and promtool accepts rules and output."""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import yaml

from gateway.admin.metrics import AdminMetrics
from gateway.config import GatewayConfig, MetricsConfig, load_config
from gateway.metrics import Metrics
from tests.tools import required_tool

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
_METRIC = re.compile(r"\b(igo_gateway_[a-z_]+)")
_SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")


def exposed_metric_names() -> set[str]:
    """What ``serve`` exposes: the gateway's metrics and the admin site's, on one registry."""
    metrics = Metrics()
    AdminMetrics(metrics.registry)
    text = metrics.exposition().decode()
    return {family(line.split()[2]) for line in text.splitlines() if line.startswith("# TYPE ")}


def family(name: str) -> str:
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def test_the_example_config_is_a_valid_config() -> None:
    # The certificate files it names live on the production host, not here.
    config = load_config(DEPLOY / "gateway.example.toml", check_files=False)
    assert config.igo.agb.startswith("53")
    assert config.store.url.startswith("sqlite:///")
    assert len(config.participants) == 2


def test_the_service_unit_runs_serve_with_the_config_it_checks_first() -> None:
    unit = (DEPLOY / "igo-gateway.service").read_text(encoding="utf-8")
    assert "igo-gateway config check --config /etc/igo-gateway/gateway.toml" in unit
    assert "igo-gateway serve --config /etc/igo-gateway/gateway.toml" in unit
    assert "User=igo-gateway" in unit


def test_every_yaml_file_parses() -> None:
    files = sorted(DEPLOY.rglob("*.yaml")) + sorted(DEPLOY.rglob("*.yml"))
    assert len(files) >= 7
    for path in files:
        assert list(yaml.safe_load_all(path.read_text(encoding="utf-8"))), path


def kubernetes(kind: str) -> dict[str, Any]:
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc and doc.get("kind") == kind:
                return dict(doc)
    raise AssertionError(f"no {kind} in deploy/kubernetes")


def test_the_kubernetes_config_is_a_valid_config_on_postgresql() -> None:
    template = kubernetes("ConfigMap")["data"]["gateway.toml.in"]
    text = template.replace("@IGO_STORE_URL@", "postgresql://igo@db:5432/igo")
    config = GatewayConfig.model_validate(tomllib.loads(text))
    assert config.store.url.startswith("postgresql://")
    assert config.metrics.host == "0.0.0.0"


def test_the_pods_probe_the_operations_endpoint() -> None:
    (container,) = kubernetes("Deployment")["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["operations"] == MetricsConfig().port
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["securityContext"]["allowPrivilegeEscalation"] is False


def test_the_container_image_runs_as_a_non_root_user() -> None:
    text = (DEPLOY / "Containerfile").read_text(encoding="utf-8")
    final_stage = text.rsplit("\nFROM ", 1)[1]
    assert "USER 10001:10001" in final_stage
    assert 'CMD ["serve", "--config", "/etc/igo-gateway/gateway.toml"]' in final_stage


def test_dashboards_and_alerts_use_only_metrics_that_exist() -> None:
    exposed = exposed_metric_names()
    dashboard = json.loads((DEPLOY / "grafana/dashboards/igo-gateway.json").read_text())
    expressions = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    rules = yaml.safe_load((DEPLOY / "prometheus/alerts.yml").read_text())
    expressions += [r["expr"] for g in rules["groups"] for r in g["rules"]]
    used = {family(m) for e in expressions for m in _METRIC.findall(e)}
    assert used
    assert used <= exposed, used - exposed


def test_promtool_accepts_the_rules_the_config_and_the_metrics() -> None:
    promtool = required_tool("promtool")
    for args in (
        ["check", "rules", str(DEPLOY / "prometheus/alerts.yml")],
        ["check", "config", str(DEPLOY / "prometheus/prometheus.yml")],
    ):
        done = subprocess.run([promtool, *args], capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
    metrics = Metrics()
    metrics.uploads.labels("KZ301", "33001234", "accepted").inc()
    metrics.http_duration.labels("/berichtenservice/berichten/rest-push/v1/berichten").observe(0.2)
    metrics.certificate_expiry.labels("epd_server", "localhost").set(1.8e9)
    metrics.crl_next_update.labels("epd_crl", "IGO CA").set(1.8e9)
    checked = subprocess.run(
        [promtool, "check", "metrics"],
        input=metrics.exposition().decode(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_certificate_alerts_fire_when_they_should() -> None:
    """promtool's unit tests of the alert rules (deploy/prometheus/alerts.test.yml): a
    certificate with 10 days left warns, one with 60 does not, an expired one is critical,
    a CRL due within a day is critical."""
    promtool = required_tool("promtool")
    done = subprocess.run(
        [promtool, "test", "rules", "alerts.test.yml"],
        cwd=DEPLOY / "prometheus",
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
