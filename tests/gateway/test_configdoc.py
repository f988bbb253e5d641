"""The configuration reference in docs/ is the one the code generates, and names every key."""

from __future__ import annotations

from pathlib import Path

from gateway.config import GatewayConfig
from gateway.configdoc import reference_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_the_committed_reference_is_current() -> None:
    assert DOC.read_text(encoding="utf-8") == reference_markdown(), (
        "docs/configuration.md is stale: igo-gateway config reference > docs/configuration.md"
    )


def test_every_section_and_key_is_documented() -> None:
    text = reference_markdown()
    for name, field in GatewayConfig.model_fields.items():
        assert f"`[{name}]`" in text or f"`[[{name}]]`" in text or f"| `{name}` |" in text
        annotation = field.annotation
        inner = getattr(annotation, "model_fields", None)
        for key in inner or {}:
            assert (
                f"| `{key}` |" in text
                or f"`[{name}.{key}]`" in text
                or f"`[[{name}.{key}]]`" in text
            ), f"{name}.{key}"


def test_optional_tables_are_documented_with_their_keys() -> None:
    text = reference_markdown()
    for table in ("[notices.channels.email]", "[notices.channels.webhook]", "[admin.tls]"):
        assert f"`{table}`" in text, table
    assert "| `recipients` |" in text
    assert "| `client_ca` |" in text
