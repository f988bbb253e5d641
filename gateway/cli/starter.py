"""A directory to run a gateway from: a development PKI, a key file for the encryption at
rest and a config file that names them — written by ``igo-gateway init`` (a starting point
for a real installation) and ``igo-gateway demo`` (a ready demo)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from gateway.crypto import new_key_file
from gateway.pki import CA_CERT, SERVER_CERT, SERVER_KEY, Party, init_pki

__all__ = ["CONFIG_NAME", "PKI_DIR", "Member", "write_installation"]

CONFIG_NAME = "gateway.toml"
KEY_FILE = "keys.toml"
PKI_DIR = "pki"


@dataclass(frozen=True, slots=True)
class Member:
    agb: str
    name: str
    discipline: str  # midwifery, kraamzorg or hospital
    variant: str = "A"


def _toml_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a TOML basic string is JSON-compatible


def write_installation(
    directory: Path,
    igo: Party,
    members: Sequence[Member],
    *,
    port: int,
    header: Sequence[str],
    comments: bool,
    extra: str = "",
) -> Path:
    """Create ``directory`` with a development PKI (kept if there is one) and write its
    config file; the config file's path. ``comments`` explains every setting in the file."""
    directory.mkdir(parents=True, exist_ok=True)
    pki_dir = directory / PKI_DIR
    if not (pki_dir / CA_CERT).exists():
        parties = [igo] + [Party(m.agb, m.name) for m in members]
        init_pki(pki_dir, parties, now=datetime.now(UTC))
    if not (directory / KEY_FILE).exists():
        new_key_file(directory / KEY_FILE, now=datetime.now(UTC))
    index = json.loads((pki_dir / "index.json").read_text(encoding="utf-8"))
    fingerprints = {c["agb"]: c["fingerprint_sha256"] for c in index["clients"]}

    def note(*text: str) -> list[str]:
        return [f"# {t}" for t in text] if comments else []

    lines = [f"# {h}" for h in header]
    lines += note(
        "Check this file with: igo-gateway config check --config gateway.toml",
        "Relative paths are relative to this file's directory.",
    )
    lines += [*note("The gateway's own files: the embedded SQLite store."), 'data_dir = "data"']
    lines += ["", "[igo]", *note("The IGO's name and AGB code (zorgverlenersoort 53).")]
    lines += [f"name = {_toml_string(igo.name)}", f'agb = "{igo.agb}"']
    lines += [
        "",
        "[store]",
        *note(
            "sqlite:///PATH: the embedded default. For several gateway processes, PostgreSQL:",
            'url = "postgresql://igo_gateway@db.example.org:5432/igo_gateway"',
        ),
        'url = "sqlite:///data/gateway.db"',
        "",
        "[epd_api]",
        *note("Where the participants' EPDs connect (HTTPS with client certificates)."),
        'host = "127.0.0.1"',
        f"port = {port}",
        *note(
            "Uploads over this size (bytes; 20 MB, as VECOZO's own limit) get 413 before",
            "they are read; requests not received whole in time get 408; idle connections",
            "are closed.",
            "max_upload_bytes = 20000000",
            "request_deadline_seconds = 300",
            "idle_timeout_seconds = 30",
        ),
        "",
        "[epd_api.tls]",
        *note(
            "DEVELOPMENT certificates from `igo-gateway pki init`. In production: your own",
            "server certificate and key, and the CA bundle that issues the EPDs' certificates.",
        ),
        f'cert = "{PKI_DIR}/{SERVER_CERT}"',
        f'key = "{PKI_DIR}/{SERVER_KEY}"',
        f'trust = "{PKI_DIR}/{CA_CERT}"',
        *note(
            "A PEM file with a CRL for every CA in trust: revoked certificates are refused.",
            'crl = "pki/ca.crl.pem"',
        ),
        "",
        "[certificates]",
        *note(
            "Every configured certificate's expiry is a metric; a warning is logged at",
            "start-up and daily for those expiring within this many days (CRLs: hours).",
            "expiry_warning_days = 30",
            "crl_warning_hours = 24",
        ),
        "",
        "[metrics]",
        *note("Prometheus /metrics, /healthz and /readyz, plain HTTP, loopback by default."),
        'host = "127.0.0.1"',
        "port = 9464",
        "",
        "[encryption]",
        *note(
            "Stored files are sealed with the current key of this file (AES-256-GCM).",
            "Back it up apart from the store; rotate with igo-gateway keys rotate.",
        ),
        f'key_file = "{KEY_FILE}"',
        "",
        "[logging]",
        *note('"text" (readable) or "json" (one object per line); level debug..critical.'),
        'format = "text"',
        'level = "info"',
    ]
    for member in members:
        lines += [
            "",
            "[[participants]]",
            *note(
                "discipline: midwifery, kraamzorg or hospital; variant A: member of the IGO,",
                "B: delivers care for it under an agreement of mutual services.",
            ),
            f'agb = "{member.agb}"',
            f"name = {_toml_string(member.name)}",
            f'discipline = "{member.discipline}"',
            f'variant = "{member.variant}"',
            *note("SHA-256 fingerprints of the client certificates of this participant's EPD."),
            f'certificates = ["{fingerprints[member.agb]}"]',
        ]
    path = directory / CONFIG_NAME
    path.write_text("\n".join(lines) + "\n" + extra, encoding="utf-8")
    return path
