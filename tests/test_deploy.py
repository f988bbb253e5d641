"""The files in deploy/ stay in step with the code."""

from __future__ import annotations

from pathlib import Path

from gateway.config import load_config

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


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
