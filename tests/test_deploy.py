"""The files in deploy/ stay in step with the code: configs load, manifests parse, every
metric a dashboard or an alert uses exists, and promtool accepts rules and output."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.admin.metrics import AdminMetrics
from gateway.config import AdminConfig, GatewayConfig, MetricsConfig, load_config
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


UNIT = DEPLOY / "igo-gateway.service"
INSTALLED = "/opt/igo-gateway/.venv/bin/igo-gateway"


def test_the_service_unit_runs_serve_and_does_not_restart_it_on_a_bad_config(
    tmp_path: Path,
) -> None:
    unit = UNIT.read_text(encoding="utf-8")
    assert f"\nExecStart={INSTALLED} serve --config /etc/igo-gateway/gateway.toml\n" in unit
    assert "User=igo-gateway" in unit
    # serve exits 2 for an invalid config: restarting it every 5 s for ever helps nobody.
    # RestartPreventExitStatus= sees the main process only: a config check as
    # ExecStartPre= would fail before it and be restarted for ever.
    assert "\nRestartPreventExitStatus=2\n" in unit
    assert "\nRestart=on-failure\n" in unit
    assert "\nExecStartPre=" not in unit
    bad = tmp_path / "gateway.toml"
    bad.write_text('[igo]\nname = "IGO"\nagb = "12"\n', encoding="utf-8")
    served = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "serve", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert served.returncode == 2, served.stderr


def _unit_here(tmp_path: Path) -> Path:
    """The unit with its installed program replaced by a stand-in that exists here (the
    checks need the program to exist); everything else as shipped."""
    program = tmp_path / "igo-gateway"
    program.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
    program.chmod(0o755)
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text(encoding="utf-8").replace(INSTALLED, str(program)))
    return unit


def test_systemd_accepts_the_service_unit(tmp_path: Path) -> None:
    """``systemd-analyze verify``: every key known, every value parsed — it only warns
    about either, so any output at all is a failure."""
    analyze = required_tool("systemd-analyze")
    done = subprocess.run(
        [analyze, "verify", str(_unit_here(tmp_path))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout + done.stderr == ""


def test_the_service_unit_is_hardened(tmp_path: Path) -> None:
    """``systemd-analyze security``: the exposure stays at 2.0 or below (1.1 now; the unit
    before hardening scored 8.5). The threshold is on systemd's internal 0-100 scale."""
    analyze = required_tool("systemd-analyze")
    done = subprocess.run(
        [analyze, "security", "--offline=true", "--threshold=20", str(_unit_here(tmp_path))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr


def test_every_yaml_file_parses() -> None:
    files = sorted(DEPLOY.rglob("*.yaml")) + sorted(DEPLOY.rglob("*.yml"))
    assert len(files) >= 7
    for path in files:
        assert list(yaml.safe_load_all(path.read_text(encoding="utf-8"))), path


def kubernetes_all(kind: str) -> list[dict[str, Any]]:
    return [
        dict(doc)
        for path in sorted((DEPLOY / "kubernetes").glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8"))
        if doc and doc.get("kind") == kind
    ]


def kubernetes(kind: str) -> dict[str, Any]:
    found = kubernetes_all(kind)
    assert found, f"no {kind} in deploy/kubernetes"
    return found[0]


def _with_store_url_file(config: dict[str, Any], tmp_path: Path, url: str) -> dict[str, Any]:
    """``config`` with its store URL file (a mounted secret in production) in ``tmp_path``."""
    secret = tmp_path / "store-url"
    secret.write_text(url + "\n", encoding="utf-8")
    return {**config, "store": {**config["store"], "url_file": str(secret)}}


def test_the_kubernetes_config_is_read_as_it_is_with_its_secrets_from_files(
    tmp_path: Path,
) -> None:
    text = kubernetes("ConfigMap")["data"]["gateway.toml"]
    assert "@" not in text  # no template to fill in: nothing secret in the ConfigMap
    raw = tomllib.loads(text)
    assert raw["store"]["url_file"] == "/etc/igo-gateway/store/url"
    assert raw["encryption"]["key_file"] == "/run/igo-gateway/keys/keys.toml"
    config = GatewayConfig.model_validate(
        _with_store_url_file(raw, tmp_path, "postgresql://igo:pw@db:5432/igo")
    )
    assert config.store.url == "postgresql://igo:pw@db:5432/igo"
    assert config.metrics.host == "0.0.0.0"
    assert config.admin.enabled
    assert config.admin.host == "0.0.0.0"
    assert config.admin.tls is not None


def _mounts(container: dict[str, Any]) -> dict[str, str]:
    return {m["mountPath"]: m["name"] for m in container["volumeMounts"]}


def test_the_pods_take_the_store_url_and_the_key_file_from_secrets() -> None:
    spec = kubernetes("Deployment")["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert "command" not in container  # the image's entrypoint, no shell, no sed
    assert container["args"] == ["serve", "--config", "/etc/igo-gateway/config/gateway.toml"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = _mounts(container)
    assert volumes[mounts["/etc/igo-gateway/store"]]["secret"]["secretName"] == "igo-gateway-store"
    assert volumes[mounts["/etc/igo-gateway/config"]]["configMap"]["name"] == "igo-gateway"
    # The key file: from its Secret, copied owner-only into memory by the init container.
    (init,) = spec["initContainers"]
    assert init["command"][:3] == ["install", "-m", "0600"]
    init_mounts = _mounts(init)
    assert volumes[init_mounts["/etc/igo-gateway/keys"]]["secret"]["secretName"] == (
        "igo-gateway-keys"
    )
    keys = volumes[mounts["/run/igo-gateway/keys"]]
    assert keys["emptyDir"]["medium"] == "Memory"
    assert init_mounts["/run/igo-gateway/keys"] == mounts["/run/igo-gateway/keys"]


def test_the_pods_probe_the_operations_endpoint_and_publish_the_admin_site() -> None:
    (container,) = kubernetes("Deployment")["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["operations"] == MetricsConfig().port
    assert ports["admin"] == AdminConfig().port
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    services = kubernetes_all("Service")
    admin = [s for s in services if any(p["targetPort"] == "admin" for p in s["spec"]["ports"])]
    assert [s["spec"]["type"] for s in admin] == ["ClusterIP"]  # never the public address


def test_the_kubernetes_manifests_match_the_api_schemas() -> None:
    """Every manifest against the Kubernetes API's OpenAPI schemas, strictly (an unknown
    or misspelt field is an error)."""
    import kubernetes_validate  # noqa: PLC0415 - a test dependency

    version = kubernetes_validate.latest_version()
    count = 0
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            kubernetes_validate.validate(doc, version, strict=True)
            count += 1
    assert count >= 5
    broken = kubernetes("Deployment")
    broken["spec"]["template"]["spec"]["containers"][0]["comand"] = ["sh"]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, version, strict=True)


def test_the_container_image_runs_as_a_non_root_user() -> None:
    text = (DEPLOY / "Containerfile").read_text(encoding="utf-8")
    final_stage = text.rsplit("\nFROM ", 1)[1]
    assert "USER 10001:10001" in final_stage
    assert 'CMD ["serve", "--config", "/etc/igo-gateway/gateway.toml"]' in final_stage


DASHBOARD = DEPLOY / "grafana/dashboards/igo-gateway.json"


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def dashboard_expressions() -> list[str]:
    return [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]


def test_the_dashboard_can_be_narrowed_to_instances_and_insurers() -> None:
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    assert set(variables) >= {"instance", "insurer"}
    for variable in variables.values():
        assert variable["multi"]
        assert variable["includeAll"]
        assert variable["definition"].startswith("label_values(igo_gateway_")
    for expr in dashboard_expressions():
        assert 'instance=~"$instance"' in expr, expr
        if "insurer" in expr:
            assert 'insurer=~"$insurer"' in expr, expr


def test_the_dashboard_shows_bundling_claims_the_queue_and_the_store() -> None:
    used = {family(m) for e in dashboard_expressions() for m in _METRIC.findall(e)}
    assert {
        "igo_gateway_lines_decided",  # bundling
        "igo_gateway_bundling_latency_seconds",
        "igo_gateway_integral_claims",  # claims
        "igo_gateway_integral_credited_eurocents",
        "igo_gateway_outbound_files",  # the queue
        "igo_gateway_outbound_oldest_unanswered_age_seconds",
        "igo_gateway_store_transaction_seconds",  # store latency
    } <= used
    ids = [p["id"] for p in dashboard()["panels"]]
    assert len(ids) == len(set(ids))


def test_every_dashboard_expression_is_valid_promql(tmp_path: Path) -> None:
    """Each expression (Grafana's variables set to "all") as a recording rule, checked by
    promtool."""
    promtool = required_tool("promtool")
    rules = [
        {
            "record": f"dashboard:panel_{n}",
            "expr": e.replace("$instance", ".*").replace("$insurer", ".*"),
        }
        for n, e in enumerate(dashboard_expressions())
    ]
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_dashboards_and_alerts_use_only_metrics_that_exist() -> None:
    exposed = exposed_metric_names()
    expressions = dashboard_expressions()
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


# --- compose ----------------------------------------------------------------------------------


def compose_command() -> list[str]:
    """``docker compose`` (the plugin) where it works, else ``docker-compose``; in CI one of
    them is required (``.ci/run`` installs Debian's docker-compose)."""
    docker = shutil.which("docker")
    if docker is not None:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, text=True, check=False
        )
        if probe.returncode == 0:
            return [docker, "compose"]
    return [required_tool("docker-compose")]


def compose_config() -> dict[str, Any]:
    """compose.yaml as compose itself reads it (``config``: checked and normalised)."""
    done = subprocess.run(
        [*compose_command(), "-f", str(DEPLOY / "compose.yaml"), "config"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    loaded: dict[str, Any] = yaml.safe_load(done.stdout)
    return loaded


def test_compose_accepts_the_file_and_runs_alertmanager_beside_prometheus() -> None:
    services = compose_config()["services"]
    assert {"postgres", "gateway", "prometheus", "alertmanager", "grafana"} <= set(services)
    prometheus = _yaml(DEPLOY / "prometheus/prometheus.yml")
    (alerting,) = prometheus["alerting"]["alertmanagers"]
    assert alerting["static_configs"][0]["targets"] == ["alertmanager:9093"]


def _yaml(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return loaded


def _published(service: dict[str, Any]) -> dict[int, str]:
    """Container port → the host address it is published on."""
    found = {}
    for port in service.get("ports", []):
        if isinstance(port, dict):
            found[int(port["target"])] = str(port.get("host_ip", "0.0.0.0"))
        else:  # "[HOST_IP:]PUBLISHED:TARGET[/proto]"
            parts = str(port).split("/")[0].split(":")
            found[int(parts[-1])] = parts[0] if len(parts) == 3 else "0.0.0.0"
    return found


def test_the_compose_gateway_takes_its_secrets_from_files_and_publishes_the_admin_site(
    tmp_path: Path,
) -> None:
    gateway = compose_config()["services"]["gateway"]
    secrets = {s if isinstance(s, str) else s["source"] for s in gateway["secrets"]}
    assert {"store_url", "gateway_keys"} <= secrets
    published = _published(gateway)
    assert published[8443] == "0.0.0.0"
    assert published[AdminConfig().port] == "127.0.0.1"  # the admin site, this host only
    raw = tomllib.loads((DEPLOY / "compose/gateway.toml").read_text(encoding="utf-8"))
    assert raw["store"]["url_file"] == "/run/secrets/store_url"
    assert raw["encryption"]["key_file"] == "/run/secrets/gateway_keys"
    config = GatewayConfig.model_validate(
        _with_store_url_file(raw, tmp_path, "postgresql://igo_gateway:pw@postgres/igo_gateway")
    )
    assert config.admin.enabled
    assert config.admin.host == "0.0.0.0"
    assert config.admin.port == AdminConfig().port
    assert config.metrics.host == "0.0.0.0"


def test_alertmanager_accepts_its_config() -> None:
    amtool = required_tool("amtool")
    done = subprocess.run(
        [amtool, "check-config", str(DEPLOY / "alertmanager/alertmanager.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


# --- the image's build context ----------------------------------------------------------------


def _ignored(path: str, patterns: list[str]) -> bool:
    """Whether Docker's build context leaves ``path`` out: a pattern matches the path or
    a directory above it (``*`` within a name, ``**`` across names; ``!`` re-includes)."""
    ignored = False
    parts = path.split("/")
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern.removeprefix("!").strip("/")
        regex = "".join(
            ".*"
            if tok == "**"
            else "[^/]*"
            if tok == "*"
            else "[^/]"
            if tok == "?"
            else re.escape(tok)
            for tok in re.split(r"(\*\*|\*|\?)", body)
        )
        regex = regex.replace(".*/", "(.*/)?")
        if any(re.fullmatch(regex, "/".join(parts[:n])) for n in range(1, len(parts) + 1)):
            ignored = not negate
    return ignored


def test_the_build_context_leaves_out_local_state_and_keys() -> None:
    lines = (DEPLOY.parent / ".dockerignore").read_text(encoding="utf-8").splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    for path in (
        ".venv/bin/python",
        ".git/config",
        "demo-gateway/keys.toml",
        "demo-gateway/pki/ca.key",
        "demo-gateway/data/gateway.db",
        "some/where/keys.toml",
        "deploy/compose/keys.toml",
        "deploy/compose/store_url",
        "deploy/compose/postgres_password",
        "deploy/compose/tls/server.key",
        "gateway/__pycache__/app.cpython-311.pyc",
        "data/gateway.db",
        ".mypy_cache/3.11/x.json",
    ):
        assert _ignored(path, patterns), path
    # What the Containerfile copies stays in.
    copied = re.findall(r"^COPY (?!--from)(.+) \S+$", (DEPLOY / "Containerfile").read_text(), re.M)
    sources = [source for line in copied for source in line.split()]
    assert sources
    for source in sources:
        assert (DEPLOY.parent / source).exists(), source
        assert not _ignored(source, patterns), source
    for kept in ("gateway/pki.py", "gateway/app.py", "adapters/tls.py", "schemas"):
        assert not _ignored(kept, patterns), kept
