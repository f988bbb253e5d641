"""The composition root's loaders for the rules: the catalogue file is read here and the
rules' terms taken from a checked config; the pure ``gateway.rules`` is built from them.
"""

from __future__ import annotations

from pathlib import Path

from gateway.config import ConfigError, ConfigProblem, GatewayConfig
from gateway.resources import schemas_dir
from gateway.rules.catalogue import Catalogue, CatalogueError, parse_catalogue
from gateway.rules.model import Contract, InsurerTerms, Participant, Settings, Terms

__all__ = ["load_catalogue", "terms_from_config"]


def load_catalogue(path: Path | None = None) -> Catalogue:
    """The catalogue at ``path`` (default: the shipped example); every problem raises
    :class:`~gateway.config.ConfigError` with its path in the file."""
    path = path or schemas_dir() / "catalogue" / "example.toml"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(path, [ConfigProblem("", f"cannot read: {exc.strerror}")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(path, [ConfigProblem("", f"not valid TOML: {exc}")]) from None
    try:
        return parse_catalogue(text, str(path))
    except CatalogueError as exc:
        raise ConfigError(path, [ConfigProblem(w, m) for w, m in exc.problems]) from None


def terms_from_config(config: GatewayConfig) -> Terms:
    """The rules' terms (participants, contracts, settings) from a checked config."""
    participants = {
        p.agb: Participant(
            p.agb, p.variant, tuple((q.joined, q.left, q.bundled) for q in p.participation)
        )
        for p in config.participants
    }
    insurers = {
        i.uzovi: InsurerTerms(
            i.uzovi,
            {
                c.year: Contract(
                    c.year,
                    c.rule_set,
                    dict(c.tariffs),
                    c.overhead_percent,
                    frozenset(c.parallel_codes),
                    c.forward_monodisciplinary,
                )
                for c in i.contracts
            },
            i.forward_monodisciplinary,
        )
        for i in config.insurers
    }
    b = config.bundling
    settings = Settings(config.igo.agb, b.grace_days, b.postnatal_days, b.trajectory_days)
    return Terms(settings, participants, insurers)
