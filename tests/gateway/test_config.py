"""The config file: defaults, every problem reported at once with its path, the schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.cli import main
from gateway.cli.config import schema_text
from gateway.config import (
    DEFAULT_MAX_UPLOAD_BYTES,
    ConfigError,
    GatewayConfig,
    config_json_schema,
    load_config,
)
from gateway.rules.model import Discipline, Variant

REPO = Path(__file__).resolve().parents[2]
SCHEMA_COPY = REPO / "schemas" / "config.schema.json"

FP_HEX = "ab" * 32
FP_COLONS = ":".join(["AB"] * 32)  # the same fingerprint as FP_HEX, written differently
OTHER_FP = "cd" * 32

TLS = """
[epd_api.tls]
cert = "tls/server.pem"
key = "tls/server.key"
trust = "tls/ca.pem"
"""

IGO = """
[igo]
name = "Geboortezorg Voorbeeldstad"
agb = "53001234"
"""


def participant(agb: str, *, certificates: str = "[]", subjects: str = "[]") -> str:
    return f"""
[[participants]]
agb = "{agb}"
name = "Praktijk {agb}"
discipline = "midwifery"
variant = "A"
certificates = {certificates}
subjects = {subjects}
"""


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    (tmp_path / "tls").mkdir()
    for name in ("server.pem", "server.key", "ca.pem", "crl.pem"):
        (tmp_path / "tls" / name).write_text("placeholder\n")
    return tmp_path


def write(directory: Path, text: str) -> Path:
    path = directory / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return {p.path: p.message for p in info.value.problems}


def test_a_minimal_config_loads_with_defaults(
    config_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = write(config_dir, IGO + TLS + participant("02001234", certificates=f'["{FP_COLONS}"]'))
    # Relative paths resolve against the config file's directory, not the working directory.
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))

    config = load_config(path)

    assert config.igo.agb == "53001234"
    assert config.data_dir == config_dir / "data"
    assert config.store.url == f"sqlite:///{config_dir / 'data' / 'gateway.db'}"
    api = config.epd_api
    assert (api.host, api.port) == ("127.0.0.1", 8443)
    assert api.max_upload_bytes == DEFAULT_MAX_UPLOAD_BYTES == 20_000_000  # VECOZO: 20 MB
    assert api.idle_timeout_seconds == 30
    assert api.tls.cert == config_dir / "tls" / "server.pem"
    assert api.tls.trust == config_dir / "tls" / "ca.pem"
    assert api.tls.crl is None
    (p,) = config.participants
    assert (p.agb, p.discipline, p.variant) == ("02001234", Discipline.MIDWIFERY, Variant.A)
    assert p.certificates == (FP_HEX,)  # normalised: lowercase, no colons
    assert p.subjects == ()


def test_every_setting_can_be_given(config_dir: Path) -> None:
    text = f"""
data_dir = "/var/lib/igo-gateway"
{IGO}
[store]
url = "postgresql://gateway@db.internal:5432/igo"

[epd_api]
host = "0.0.0.0"
port = 9443
max_upload_bytes = 1048576
idle_timeout_seconds = 12.5

[epd_api.tls]
cert = "tls/server.pem"
key = "tls/server.key"
trust = "tls/ca.pem"
crl = "tls/crl.pem"
{participant("02001234", certificates=f'["{FP_HEX}"]', subjects='["EPD De Wieg"]')}
"""
    config = load_config(write(config_dir, text))

    assert config.data_dir == Path("/var/lib/igo-gateway")
    assert config.store.url == "postgresql://gateway@db.internal:5432/igo"
    assert config.epd_api.port == 9443
    assert config.epd_api.idle_timeout_seconds == 12.5
    assert config.epd_api.tls.crl == config_dir / "tls" / "crl.pem"
    assert config.participants[0].subjects == ("EPD De Wieg",)


def test_a_relative_sqlite_path_resolves_against_the_config_directory(config_dir: Path) -> None:
    config = load_config(write(config_dir, IGO + '[store]\nurl = "sqlite:///db/gw.db"\n' + TLS))

    assert config.store.url == f"sqlite:///{config_dir / 'db' / 'gw.db'}"


def test_the_store_default_follows_data_dir(config_dir: Path) -> None:
    config = load_config(write(config_dir, 'data_dir = "state"\n' + IGO + TLS))

    assert config.store.url == f"sqlite:///{config_dir / 'state' / 'gateway.db'}"


def test_all_problems_are_reported_together_with_their_paths(config_dir: Path) -> None:
    text = f"""
colour = "blue"

[igo]
name = "Geboortezorg Voorbeeldstad"
agb = "12345678"

[store]
url = "mysql://somewhere/db"

[epd_api]
port = 70000
max_upload_bytes = 0

[epd_api.tls]
cert = "tls/server.pem"
key = "tls/missing.key"
trust = "tls/ca.pem"
{participant("02001234")}
[[participants]]
agb = "0200123"
name = "  "
discipline = "dentist"
variant = "D"
certificates = ["not-a-fingerprint"]
"""
    problems = problems_of(write(config_dir, text))

    assert problems == {
        "colour": "unknown setting",
        "igo.agb": "must start with 53, the zorgverlenersoort of integrale geboortezorg",
        "store.url": "must be sqlite:///PATH or postgresql://USER@HOST/DB",
        "epd_api.port": "input should be less than or equal to 65535",
        "epd_api.max_upload_bytes": "input should be greater than or equal to 1",
        "epd_api.tls.key": f"no such file: {config_dir / 'tls' / 'missing.key'}",
        "participants[1].agb": "must be 8 digits (an AGB code)",
        "participants[1].name": "must not be empty",
        "participants[1].discipline": "input should be 'midwifery', 'kraamzorg' or 'hospital'",
        "participants[1].variant": "input should be 'A', 'B' or 'C'",
        "participants[1].certificates[0]": (
            "must be a SHA-256 fingerprint: 64 hex digits, with or without colons"
        ),
    }


def test_the_error_message_lists_every_problem(config_dir: Path) -> None:
    path = write(config_dir, TLS)
    with pytest.raises(ConfigError) as info:
        load_config(path)

    message = str(info.value)
    assert message.startswith(f"{path}: 1 problem")
    assert "  igo: required but missing" in message.splitlines()


def test_a_fingerprint_must_identify_exactly_one_participant(config_dir: Path) -> None:
    text = (
        IGO
        + TLS
        + participant("02001234", certificates=f'["{FP_HEX}"]', subjects='["EPD"]')
        + participant("33001234", certificates=f'["{OTHER_FP}", "{FP_COLONS}"]')
        + participant("02001234", subjects='["EPD"]')
    )
    problems = problems_of(write(config_dir, text))

    assert problems == {
        "participants[1].certificates[1]": (
            f"{FP_HEX} also identifies participants[0]; it must identify exactly one participant"
        ),
        "participants[2].agb": "02001234 is also participants[0]",
        "participants[2].subjects[0]": (
            "EPD also identifies participants[0]; it must identify exactly one participant"
        ),
    }


def test_identity_conflicts_are_reported_beside_other_problems(config_dir: Path) -> None:
    text = (
        IGO.replace("53001234", "5300")
        + TLS
        + participant("02001234", certificates=f'["{FP_HEX}"]')
        + participant("33001234", certificates=f'["{FP_COLONS}"]')
    )
    problems = problems_of(write(config_dir, text))

    assert set(problems) == {"igo.agb", "participants[1].certificates[0]"}


def test_conflicts_are_refused_in_a_config_built_in_code(config_dir: Path) -> None:
    p = {"discipline": "hospital", "variant": "B", "certificates": [FP_HEX]}
    with pytest.raises(ValidationError, match="identify exactly one participant"):
        GatewayConfig.model_validate(
            {
                "igo": {"name": "IGO", "agb": "53001234"},
                "epd_api": {"tls": {"cert": "a", "key": "b", "trust": "c"}},
                "participants": [
                    {"agb": "01000001", "name": "A", **p},
                    {"agb": "01000002", "name": "B", **p},
                ],
            }
        )


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[igo\nname = 1\n"))


def test_files_need_not_exist_when_asked_not_to_check(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, IGO + TLS), check_files=False)

    assert config.epd_api.tls.key == tmp_path / "tls" / "server.key"


def test_the_committed_schema_is_up_to_date() -> None:
    committed = json.loads(SCHEMA_COPY.read_text(encoding="utf-8"))

    assert committed == config_json_schema(), (
        "schemas/config.schema.json is stale: "
        "run `igo-gateway config schema > schemas/config.schema.json`"
    )
    assert SCHEMA_COPY.read_text(encoding="utf-8") == schema_text()


def test_the_schema_describes_the_file_format() -> None:
    schema = config_json_schema()

    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(schema["required"]) == {"igo", "epd_api"}
    assert schema["additionalProperties"] is False
    participant_schema = schema["$defs"]["ParticipantConfig"]
    assert participant_schema["properties"]["agb"]["pattern"] == r"^\d{8}$"
    assert schema["$defs"]["IgoConfig"]["properties"]["agb"]["pattern"] == r"^53\d{6}$"


def test_cli_check(config_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(config_dir, IGO + TLS)
    assert main(["config", "check", "--config", str(good)]) == 0
    out = capsys.readouterr().out
    assert out.endswith("ok\n")
    assert "the shipped EXAMPLE" in out

    catalogue = config_dir / "catalogue.toml"
    catalogue.write_text('codelijst = "047"\n[[integral]]\ncode = "X"\n', encoding="utf-8")
    broken = write(
        config_dir,
        IGO
        + TLS.replace("[epd_api.tls]", '[bundling]\ncatalogue = "catalogue.toml"\n\n[epd_api.tls]'),
    )
    assert main(["config", "check", "--config", str(broken)]) == 1
    assert "integral.0.name" in capsys.readouterr().out

    bad = write(config_dir, IGO.replace("53001234", "99") + TLS)
    assert main(["config", "check", "--config", str(bad)]) == 1
    assert "igo.agb: must be 8 digits (an AGB code)" in capsys.readouterr().out


def test_cli_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "schema"]) == 0
    assert json.loads(capsys.readouterr().out) == config_json_schema()


def test_an_admin_crl_needs_the_client_ca_it_revokes_for(config_dir: Path) -> None:
    admin = '\n[admin.tls]\ncert = "tls/server.pem"\nkey = "tls/server.key"\ncrl = "tls/crl.pem"\n'

    problems = problems_of(write(config_dir, IGO + TLS + admin))

    assert problems == {"admin.tls": "crl needs client_ca (it revokes client certificates)"}
    with_ca = admin + 'client_ca = "tls/ca.pem"\n'
    config = load_config(write(config_dir, IGO + TLS + with_ca))
    assert config.admin.tls is not None
    assert config.admin.tls.crl == config_dir / "tls" / "crl.pem"


def test_certificate_warnings_default_to_30_days_and_24_hours(config_dir: Path) -> None:
    config = load_config(write(config_dir, IGO + TLS))

    assert config.certificates.expiry_warning_days == 30
    assert config.certificates.crl_warning_hours == 24


# --- the store URL from a file (a mounted secret) -------------------------------------------


def test_the_store_url_can_come_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "store-url"
    secret.write_text("postgresql://igo:s3cret@db:5432/igo\n", encoding="utf-8")
    config_file = tmp_path / "gateway.toml"
    config_file.write_text(
        '[igo]\nname = "IGO"\nagb = "53001234"\n\n[store]\nurl_file = "store-url"\n\n'
        '[epd_api.tls]\ncert = "s.pem"\nkey = "s.key"\ntrust = "ca.pem"\n',
        encoding="utf-8",
    )
    config = load_config(config_file, check_files=False)
    assert config.store.url == "postgresql://igo:s3cret@db:5432/igo"
    assert config.store.url_file == secret


def test_a_store_url_file_that_cannot_be_read_or_is_given_with_url_is_refused(
    tmp_path: Path,
) -> None:
    config_file = tmp_path / "gateway.toml"
    base = (
        '[igo]\nname = "IGO"\nagb = "53001234"\n\n'
        '[epd_api.tls]\ncert = "s.pem"\nkey = "s.key"\ntrust = "ca.pem"\n'
    )
    config_file.write_text(base + '[store]\nurl_file = "missing"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="cannot read the store URL"):
        load_config(config_file, check_files=False)
    (tmp_path / "url").write_text("postgresql://igo:s3cret@db/igo", encoding="utf-8")
    config_file.write_text(
        base + '[store]\nurl = "sqlite:///x.db"\nurl_file = "url"\n', encoding="utf-8"
    )
    with pytest.raises(ConfigError, match="not both") as refused:
        load_config(config_file, check_files=False)
    assert "s3cret" not in str(refused.value)
    (tmp_path / "url").write_text("mysql://igo:s3cret@db/igo", encoding="utf-8")
    config_file.write_text(base + '[store]\nurl_file = "url"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="must be sqlite") as refused:
        load_config(config_file, check_files=False)
    assert "s3cret" not in str(refused.value)
