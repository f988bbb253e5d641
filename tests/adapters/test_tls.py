"""Mutual TLS against a real server on a loopback port.

Every test starts its own server process (``_tls_server.py``, listening on 127.0.0.1 with
:func:`adapters.tls.server_context_factory`) and stops it; the clients are Python's own
``ssl`` module, and for :func:`adapters.tls.client_context_factory` a Twisted client process.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import select
import socket
import ssl
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL, crypto
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator
from twisted.logger import ILogObserver, LogEvent, formatEvent, globalLogPublisher
from zope.interface import implementer

from adapters.tls import (
    Identities,
    PeerCertificate,
    TLSSetupError,
    check_revocation_lists,
    client_context_factory,
    client_identity,
    server_context_factory,
)
from gateway.config import ConfigError, ParticipantConfig
from gateway.pki import (
    CA_CERT,
    CA_KEY,
    SERVER_CERT,
    SERVER_KEY,
    Issued,
    Party,
    init_pki,
    issue_client,
    issue_server,
    load_issued,
    new_ca,
    revocation_list,
)
from gateway.rules.model import Discipline, Variant

REPO = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"
NOW = datetime.now(UTC)  # OpenSSL checks validity against the real clock

MIDWIFE = Party("02001234", "Verloskundigenpraktijk De Wieg")
KRAAM = Party("33001234", "Kraamzorg Zon")  # known by its subject CN only
IGO = Party("53001234", "Geboortezorg Voorbeeldstad", role="igo")  # trusted, not a participant


@dataclass(frozen=True)
class Pki:
    directory: Path
    ca: Issued

    def pair(self, party: Party) -> tuple[Path, Path]:
        return (
            self.directory / f"{party.file_stem}.pem",
            self.directory / f"{party.file_stem}.key",
        )

    def fingerprint(self, party: Party) -> str:
        return load_issued(*self.pair(party)).fingerprint


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("tls") / "pki"
    init_pki(directory, [MIDWIFE, KRAAM, IGO], now=NOW, days=2)
    return Pki(directory, load_issued(directory / CA_CERT, directory / CA_KEY))


def save(directory: Path, name: str, issued: Issued) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    cert.write_bytes(issued.cert_pem())
    key.write_bytes(issued.key_pem())
    key.chmod(0o600)
    return cert, key


def write_config(directory: Path, pki: Pki, *, crl: Path | None = None) -> Path:
    crl_line = f'crl = "{crl}"' if crl is not None else ""
    path = directory / "gateway.toml"
    path.write_text(
        f"""
[igo]
name = "{IGO.name}"
agb = "{IGO.agb}"

[epd_api]
host = "{LOOPBACK}"
port = 0

[epd_api.tls]
cert = "{pki.directory / SERVER_CERT}"
key = "{pki.directory / SERVER_KEY}"
trust = "{pki.directory / CA_CERT}"
{crl_line}

[[participants]]
agb = "{MIDWIFE.agb}"
name = "{MIDWIFE.name}"
discipline = "midwifery"
variant = "A"
certificates = ["{pki.fingerprint(MIDWIFE)}"]

[[participants]]
agb = "{KRAAM.agb}"
name = "{KRAAM.name}"
discipline = "kraamzorg"
variant = "B"
subjects = ["{KRAAM.agb}"]
"""
    )
    return path


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def _helper(*args: str) -> list[str]:
    return [sys.executable, "-m", "tests.adapters._tls_server", *args]


@contextmanager
def tls_server(config: Path, *, http: bool = False) -> Iterator[int]:
    """A server process for the duration of the block; yields its port on 127.0.0.1."""
    proc = subprocess.Popen(
        _helper("serve", "--config", str(config), *(["--http"] if http else [])),
        cwd=REPO,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        line = proc.stdout.readline() if ready else ""
        if not line.strip().isdigit():
            proc.kill()
            _, err = proc.communicate(timeout=10)
            pytest.fail(f"the TLS test server did not start: {line!r} {err}")
        yield int(line)
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def client_context(
    pki: Pki,
    pair: tuple[Path, Path] | None,
    *,
    version: ssl.TLSVersion | None = None,
    ciphers: str | None = None,
) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.directory / CA_CERT))
    if pair is not None:
        ctx.load_cert_chain(*map(str, pair))
    if version is not None:
        ctx.minimum_version = ctx.maximum_version = version
    if ciphers is not None:
        ctx.set_ciphers(ciphers)
    return ctx


def talk(port: int, ctx: ssl.SSLContext) -> dict[str, Any]:
    """Handshake, then read the server's one-line answer. A refused client certificate
    raises ``ssl.SSLError`` with the server's alert: during the handshake under TLS 1.2,
    on the first read under TLS 1.3 (where the server checks it after the client is done)."""
    with (
        socket.create_connection((LOOPBACK, port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        data = b""
        while not data.endswith(b"\n"):
            chunk = tls.recv(4096)
            if not chunk:
                break
            data += chunk
    answer: dict[str, Any] = json.loads(data)
    return answer


# --- accepted -------------------------------------------------------------------------------


def test_a_participant_certificate_is_accepted_and_identified(pki: Pki, tmp_path: Path) -> None:
    with tls_server(write_config(tmp_path, pki)) as port:
        answer = talk(port, client_context(pki, pki.pair(MIDWIFE)))

    assert answer["participant"] == MIDWIFE.agb
    assert answer["cn"] == MIDWIFE.agb
    assert answer["fingerprint"] == pki.fingerprint(MIDWIFE)
    assert answer["tls_version"] == "TLSv1.3"


def test_a_web_request_is_identified(pki: Pki, tmp_path: Path) -> None:
    with (
        tls_server(write_config(tmp_path, pki), http=True) as port,
        socket.create_connection((LOOPBACK, port), timeout=10) as raw,
        client_context(pki, pki.pair(MIDWIFE)).wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        response = b""
        while chunk := tls.recv(4096):
            response += chunk

    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200")
    assert json.loads(body)["participant"] == MIDWIFE.agb


def test_a_participant_is_identified_by_subject(pki: Pki, tmp_path: Path) -> None:
    with tls_server(write_config(tmp_path, pki)) as port:
        answer = talk(port, client_context(pki, pki.pair(KRAAM)))

    assert answer["participant"] == KRAAM.agb


def test_a_trusted_certificate_of_no_participant_identifies_nobody(
    pki: Pki, tmp_path: Path
) -> None:
    with tls_server(write_config(tmp_path, pki)) as port:
        answer = talk(port, client_context(pki, pki.pair(IGO)))

    assert answer["cn"] == IGO.agb
    assert answer["participant"] is None


def test_tls_1_2_is_accepted_with_an_aead_cipher(pki: Pki, tmp_path: Path) -> None:
    with tls_server(write_config(tmp_path, pki)) as port:
        answer = talk(port, client_context(pki, pki.pair(MIDWIFE), version=ssl.TLSVersion.TLSv1_2))

    assert answer["tls_version"] == "TLSv1.2"
    assert answer["cipher"].startswith("ECDHE-")
    assert "GCM" in answer["cipher"] or "CHACHA20" in answer["cipher"]
    assert answer["participant"] == MIDWIFE.agb


# --- refused --------------------------------------------------------------------------------


def test_no_client_certificate_is_refused(pki: Pki, tmp_path: Path) -> None:
    with (
        tls_server(write_config(tmp_path, pki)) as port,
        pytest.raises(ssl.SSLError, match="certificate required"),
    ):
        talk(port, client_context(pki, None))


def test_a_certificate_from_another_ca_is_refused(pki: Pki, tmp_path: Path) -> None:
    stranger = issue_client(new_ca(now=NOW), MIDWIFE, now=NOW)  # same CN, wrong issuer
    pair = save(tmp_path, "stranger", stranger)
    with (
        tls_server(write_config(tmp_path, pki)) as port,
        pytest.raises(ssl.SSLError, match="unknown ca"),
    ):
        talk(port, client_context(pki, pair))


def test_an_expired_certificate_is_refused(pki: Pki, tmp_path: Path) -> None:
    expired = issue_client(pki.ca, MIDWIFE, now=NOW - timedelta(days=30), days=1)
    assert expired.cert.not_valid_after_utc < NOW
    pair = save(tmp_path, "expired", expired)
    with (
        tls_server(write_config(tmp_path, pki)) as port,
        pytest.raises(ssl.SSLError, match="certificate expired"),
    ):
        talk(port, client_context(pki, pair))


def test_tls_1_1_is_refused(pki: Pki, tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the point of the test
        ctx = client_context(
            pki,
            pki.pair(MIDWIFE),
            version=ssl.TLSVersion.TLSv1_1,
            ciphers="DEFAULT:@SECLEVEL=0",  # so that this client really offers TLS 1.1
        )
    # The server's alert, not the client declining to send.
    with (
        tls_server(write_config(tmp_path, pki)) as port,
        pytest.raises(ssl.SSLError, match="alert protocol version"),
    ):
        talk(port, ctx)


def test_tls_1_2_without_aead_is_refused(pki: Pki, tmp_path: Path) -> None:
    ctx = client_context(
        pki,
        pki.pair(MIDWIFE),
        version=ssl.TLSVersion.TLSv1_2,
        ciphers="ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA",
    )
    with (
        tls_server(write_config(tmp_path, pki)) as port,
        pytest.raises(ssl.SSLError, match="handshake failure"),
    ):
        talk(port, ctx)


def test_a_revoked_certificate_is_refused_when_a_crl_is_configured(
    pki: Pki, tmp_path: Path
) -> None:
    revoked = issue_client(pki.ca, MIDWIFE, now=NOW)
    revoked_pair = save(tmp_path, "revoked", revoked)
    crl = tmp_path / "crl.pem"
    crl.write_bytes(
        revocation_list(pki.ca, [revoked.cert], now=NOW).public_bytes(serialization.Encoding.PEM)
    )
    with tls_server(write_config(tmp_path, pki, crl=crl)) as port:
        assert talk(port, client_context(pki, pki.pair(MIDWIFE)))["participant"] == MIDWIFE.agb
        with pytest.raises(ssl.SSLError, match="certificate revoked"):
            talk(port, client_context(pki, revoked_pair))


# --- the Twisted client ---------------------------------------------------------------------


def connect(
    port: int, pair: tuple[Path, Path], ca: Path, crl: Path | None = None
) -> subprocess.CompletedProcess[str]:
    cert, key = pair
    return subprocess.run(
        _helper(
            "connect",
            "--port",
            str(port),
            "--cert",
            str(cert),
            "--key",
            str(key),
            "--ca",
            str(ca),
            *(["--crl", str(crl)] if crl is not None else []),
        ),
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_the_client_factory_presents_its_certificate(pki: Pki, tmp_path: Path) -> None:
    with tls_server(write_config(tmp_path, pki)) as port:
        result = connect(port, pki.pair(MIDWIFE), pki.directory / CA_CERT)

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["participant"] == MIDWIFE.agb


def test_the_client_factory_refuses_a_server_of_another_ca(pki: Pki, tmp_path: Path) -> None:
    other_ca = tmp_path / "other-ca.pem"
    other_ca.write_bytes(new_ca(now=NOW).cert_pem())
    with tls_server(write_config(tmp_path, pki)) as port:
        result = connect(port, pki.pair(MIDWIFE), other_ca)

    assert result.returncode == 1
    assert "certificate verify failed" in result.stdout


@contextmanager
def python_server(
    server: tuple[Path, Path],
    *,
    version: ssl.TLSVersion | None = None,
    maximum: ssl.TLSVersion | None = None,
    ciphers: str | None = None,
) -> Iterator[tuple[int, list[BaseException]]]:
    """A TLS server of Python's ``ssl`` module on 127.0.0.1 (any free port) in a thread,
    for one connection: completes the handshake and writes one JSON line, or records why
    the handshake failed. Yields the port and that list of failures."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # old versions are the point
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*map(str, server))
        if version is not None:
            ctx.minimum_version = ctx.maximum_version = version
        if maximum is not None:
            ctx.maximum_version = maximum
        if ciphers is not None:
            ctx.set_ciphers(ciphers)
    failures: list[BaseException] = []
    listener = socket.create_server((LOOPBACK, 0))
    listener.settimeout(30)

    def serve() -> None:
        try:
            raw, _ = listener.accept()
        except OSError as exc:
            failures.append(exc)
            return
        with raw:
            try:
                with ctx.wrap_socket(raw, server_side=True) as tls:
                    tls.sendall(b'{"participant": null}\n')
            except (ssl.SSLError, OSError) as exc:
                failures.append(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], failures
    finally:
        thread.join(timeout=30)
        listener.close()


def test_the_client_factory_accepts_a_modern_server(pki: Pki) -> None:
    server = (pki.directory / SERVER_CERT, pki.directory / SERVER_KEY)
    with python_server(server, version=ssl.TLSVersion.TLSv1_2) as (port, failures):
        result = connect(port, pki.pair(IGO), pki.directory / CA_CERT)

    assert result.returncode == 0, result.stdout + result.stderr
    assert failures == []


def test_the_client_factory_refuses_a_tls_1_1_server(pki: Pki) -> None:
    server = (pki.directory / SERVER_CERT, pki.directory / SERVER_KEY)
    with python_server(server, version=ssl.TLSVersion.TLSv1_1, ciphers="DEFAULT:@SECLEVEL=0") as (
        port,
        failures,
    ):
        result = connect(port, pki.pair(IGO), pki.directory / CA_CERT)

    assert result.returncode == 1, result.stdout
    assert "refused" in result.stdout
    assert any("UNSUPPORTED_PROTOCOL" in str(f) for f in failures), failures


@pytest.mark.parametrize(
    "ciphers",
    [
        "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA",  # CBC, SHA-1 MAC
        "ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA384",  # CBC, SHA-2 MAC
    ],
)
def test_the_client_factory_refuses_a_server_with_weak_ciphers_only(pki: Pki, ciphers: str) -> None:
    server = (pki.directory / SERVER_CERT, pki.directory / SERVER_KEY)
    with python_server(server, maximum=ssl.TLSVersion.TLSv1_2, ciphers=ciphers) as (
        port,
        failures,
    ):
        result = connect(port, pki.pair(IGO), pki.directory / CA_CERT)

    assert result.returncode == 1, result.stdout
    assert any("no shared cipher" in str(f) for f in failures), failures


def test_the_client_factory_refuses_a_revoked_server_with_a_crl(pki: Pki, tmp_path: Path) -> None:
    revoked = save(tmp_path, "revoked-server", issue_server(pki.ca, now=NOW))
    crl = tmp_path / "crl.pem"
    crl.write_bytes(
        revocation_list(pki.ca, [load_issued(*revoked).cert], now=NOW).public_bytes(
            serialization.Encoding.PEM
        )
    )
    with python_server(revoked) as (port, _):
        without = connect(port, pki.pair(IGO), pki.directory / CA_CERT)
    with python_server(revoked) as (port, failures):
        checked = connect(port, pki.pair(IGO), pki.directory / CA_CERT, crl)
    with python_server((pki.directory / SERVER_CERT, pki.directory / SERVER_KEY)) as (port, _):
        unrevoked = connect(port, pki.pair(IGO), pki.directory / CA_CERT, crl)

    assert without.returncode == 0, without.stdout + without.stderr
    assert checked.returncode == 1
    assert "certificate verify failed" in checked.stdout
    # The client's alert, as the server received it.
    assert any("certificate revoked" in str(f) for f in failures), failures
    assert unrevoked.returncode == 0, unrevoked.stdout + unrevoked.stderr


def _crl_file(path: Path, *crls: Any) -> Path:
    path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in crls))
    return path


def test_a_crl_past_its_next_update_is_refused_at_start_up(pki: Pki, tmp_path: Path) -> None:
    stale = revocation_list(pki.ca, [], now=NOW - timedelta(days=10), days=7)
    crl = _crl_file(tmp_path / "stale.pem", stale)
    for factory in (
        lambda: server_context_factory(
            pki.directory / SERVER_CERT, pki.directory / SERVER_KEY, pki.directory / CA_CERT, crl
        ),
        lambda: client_context_factory(*pki.pair(IGO), pki.directory / CA_CERT, crl_path=crl),
    ):
        with pytest.raises(TLSSetupError) as info:
            factory()
        ((path, message),) = [(p.path, p.message) for p in info.value.problems]
        assert path == str(crl)
        assert message.startswith("the CRL of 'IGO gateway development CA' is out of date since")
        assert "install a fresh CRL" in message


def test_a_crl_of_another_ca_is_refused_at_start_up(pki: Pki, tmp_path: Path) -> None:
    other = new_ca(now=NOW, common_name="Some other CA")
    crl = _crl_file(tmp_path / "other.pem", revocation_list(other, [], now=NOW))
    with pytest.raises(TLSSetupError) as info:
        server_context_factory(
            pki.directory / SERVER_CERT, pki.directory / SERVER_KEY, pki.directory / CA_CERT, crl
        )

    assert [p.message for p in info.value.problems] == [
        "the CRL of 'Some other CA' is not signed by a CA in the trust store"
    ]


def test_a_crl_signed_by_another_key_under_the_same_name_is_refused(
    pki: Pki, tmp_path: Path
) -> None:
    impostor = new_ca(now=NOW)  # the development CA's name, another key
    crl = _crl_file(tmp_path / "forged.pem", revocation_list(impostor, [], now=NOW))
    with pytest.raises(TLSSetupError, match="not signed by a CA in the trust store"):
        server_context_factory(
            pki.directory / SERVER_CERT, pki.directory / SERVER_KEY, pki.directory / CA_CERT, crl
        )


def test_a_trusted_ca_without_a_crl_is_a_warning_not_an_error(pki: Pki) -> None:
    other = new_ca(now=NOW, common_name="Second CA")
    logged: list[str] = []

    @implementer(ILogObserver)
    class Observe:
        def __call__(self, event: LogEvent) -> None:
            if event.get("log_namespace") == "adapters.tls":
                logged.append(formatEvent(event))

    observe = Observe()
    globalLogPublisher.addObserver(observe)
    try:
        problems = check_revocation_lists(
            Path("crl.pem"), [revocation_list(pki.ca, [], now=NOW)], [pki.ca.cert, other.cert]
        )
    finally:
        globalLogPublisher.removeObserver(observe)

    assert problems == []
    assert logged == [
        "crl.pem has no CRL for the trusted CA 'Second CA': certificates it issued directly "
        "are refused"
    ]


# --- without a network ----------------------------------------------------------------------


def test_unusable_files_are_all_reported(pki: Pki, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    with pytest.raises(TLSSetupError) as info:
        server_context_factory(
            pki.directory / SERVER_CERT,
            pki.pair(MIDWIFE)[1],  # some other certificate's key
            garbage,
            tmp_path / "missing-crl.pem",
        )

    problems = {p.path: p.message for p in info.value.problems}
    assert problems == {
        str(garbage): "no PEM certificate in the trust store",
        str(tmp_path / "missing-crl.pem"): "cannot read revocation list: No such file or directory",
        str(pki.pair(MIDWIFE)[1]): (
            f"is not the key of the certificate in {pki.directory / SERVER_CERT}"
        ),
    }


class _Plain:
    """A transport without TLS."""

    def getPeerCertificate(self) -> None:
        return None


class _Request:
    transport = _Plain()


def test_no_identity_without_a_verified_tls_connection() -> None:
    assert client_identity(_Plain()) is None
    assert client_identity(_Request()) is None
    assert client_identity(object()) is None


def _participant(
    agb: str, certificates: tuple[str, ...] = (), subjects: tuple[str, ...] = ()
) -> ParticipantConfig:
    return ParticipantConfig(
        agb=agb,
        name=agb,
        discipline=Discipline.HOSPITAL,
        variant=Variant.A,
        certificates=certificates,
        subjects=subjects,
    )


def test_identities_match_fingerprint_before_subject() -> None:
    by_fingerprint = _participant("01000001", certificates=("aa" * 32,))
    by_subject = _participant("01000002", subjects=("01000001",))
    identities = Identities([by_fingerprint, by_subject])
    later = NOW + timedelta(days=1)

    assert identities.participant_for(PeerCertificate("aa" * 32, "01000001", later)) is (
        by_fingerprint
    )
    assert identities.participant_for(PeerCertificate("bb" * 32, "01000001", later)) is (by_subject)
    assert identities.participant_for(PeerCertificate("bb" * 32, "nobody", later)) is None
    assert identities.participant_for(PeerCertificate("bb" * 32, None, later)) is None
    assert identities.participant_for(None) is None


def test_identities_refuse_a_fingerprint_of_two_participants() -> None:
    with pytest.raises(ConfigError, match="exactly one participant"):
        Identities(
            [
                _participant("01000001", certificates=("aa" * 32,)),
                _participant("01000002", certificates=("aa" * 32,)),
            ]
        )


# --- what the TLS set-up builds on -------------------------------------------------------------


def _twisted_uses(path: Path) -> tuple[list[str], list[str]]:
    """The Twisted modules ``path`` imports and the attributes it reads by name."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    modules = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            modules.append(node.module)
            modules.extend(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            modules.extend(a.name for a in node.names)
    attributes = [n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)]
    return [m for m in modules if m.startswith("twisted")], attributes


@pytest.mark.parametrize(
    "source",
    ["adapters/tls.py", "adapters/insurer_link/rest.py", "adapters/insurer_sim/server.py"],
)
def test_the_tls_set_up_uses_only_public_twisted_interfaces(source: str) -> None:
    """Private modules (``twisted.internet._sslverify``) and the deprecated, shared cached
    context (``CertificateOptions.getContext``) can change under an upgrade without notice:
    revocation would then be dropped silently."""
    modules, attributes = _twisted_uses(REPO / source)
    private = [m for m in modules if any(part.startswith("_") for part in m.split("."))]
    assert private == []
    assert "getContext" not in attributes
    assert not [a for a in attributes if a.startswith("_add") or a == "_context"]


def test_every_server_connection_requires_a_certificate_and_checks_the_crl(
    pki: Pki, tmp_path: Path
) -> None:
    """The connections the server options make (not a context shared by other means)
    verify the client and consult the CRL."""
    revoked = issue_client(pki.ca, MIDWIFE, now=NOW)
    crl = tmp_path / "crl.pem"
    crl.write_bytes(
        revocation_list(pki.ca, [revoked.cert], now=NOW).public_bytes(serialization.Encoding.PEM)
    )
    cert, key = pki.directory / SERVER_CERT, pki.directory / SERVER_KEY
    options = server_context_factory(cert, key, pki.directory / CA_CERT, crl)
    assert IOpenSSLServerConnectionCreator.providedBy(options)
    for _ in range(2):
        context = options.serverConnectionForTLS(None).get_context()
        required = SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT
        assert context.get_verify_mode() & required == required
        store = context.get_cert_store()
        assert store is not None
        good = load_issued(*pki.pair(MIDWIFE)).cert
        crypto.X509StoreContext(store, crypto.X509.from_cryptography(good)).verify_certificate()
        bad = crypto.X509StoreContext(store, crypto.X509.from_cryptography(revoked.cert))
        with pytest.raises(crypto.X509StoreContextError, match="revoked"):
            bad.verify_certificate()


# --- the identity is read once per handshake --------------------------------------------------


class _Counting:
    """A TLS transport over an in-memory connection that counts the certificate reads."""

    def __init__(self, handle: SSL.Connection) -> None:
        self.handle = handle
        self.reads = 0

    def getHandle(self) -> SSL.Connection:
        return self.handle

    def getPeerCertificate(self) -> crypto.X509 | None:
        self.reads += 1
        return self.handle.get_peer_certificate()


def _pump(server: SSL.Connection, client: SSL.Connection, *, established: bool = False) -> None:
    """Move TLS records between two memory connections until their handshakes are done
    (on ``established`` connections: a renegotiation, handled as records are read)."""
    for _ in range(50):
        for side in (client, server):
            with contextlib.suppress(SSL.WantReadError):
                if established:
                    side.recv(1)  # reads (and answers) handshake messages; no data is sent
                else:
                    side.do_handshake()
        moved = False
        for source, sink in ((client, server), (server, client)):
            with contextlib.suppress(SSL.WantReadError):
                sink.bio_write(source.bio_read(65536))
                moved = True
        if not moved and not client.renegotiate_pending() and not server.renegotiate_pending():
            return
    pytest.fail("the handshake did not finish")


def _memory_pair(pki: Pki, party: Party, version: int) -> tuple[SSL.Connection, SSL.Connection]:
    server_tls = server_context_factory(
        pki.directory / SERVER_CERT, pki.directory / SERVER_KEY, pki.directory / CA_CERT
    )
    server = server_tls.serverConnectionForTLS(None)
    server.set_accept_state()
    context = SSL.Context(SSL.TLS_METHOD)
    context.set_min_proto_version(version)
    context.set_max_proto_version(version)
    cert, key = pki.pair(party)
    context.use_certificate_file(str(cert))
    context.use_privatekey_file(str(key))
    client = SSL.Connection(context, None)
    client.set_connect_state()
    _pump(server, client)
    return server, client


@pytest.mark.parametrize("version", [SSL.TLS1_2_VERSION, SSL.TLS1_3_VERSION], ids=["1.2", "1.3"])
def test_the_certificate_of_a_connection_is_read_once(pki: Pki, version: int) -> None:
    server, _ = _memory_pair(pki, MIDWIFE, version)
    transport = _Counting(server)

    first = client_identity(transport)
    again = client_identity(transport)

    assert first is not None
    assert first.fingerprint_sha256 == pki.fingerprint(MIDWIFE)
    assert again == first
    assert transport.reads == 1
    other_server, _ = _memory_pair(pki, KRAAM, version)
    other = client_identity(_Counting(other_server))
    assert other is not None
    assert other.subject_cn == KRAAM.agb  # another connection: its own certificate


def test_a_client_cannot_renegotiate_another_certificate_in(pki: Pki) -> None:
    """What the identity read once per connection rests on: the server refuses a TLS 1.2
    renegotiation (OpenSSL's default for servers since 3.0), so a connection keeps the
    certificate of its handshake. (Were one to complete, it would end with another
    Finished message, and client_identity would read the certificate again.)"""
    server, client = _memory_pair(pki, MIDWIFE, SSL.TLS1_2_VERSION)
    transport = _Counting(server)
    before = client_identity(transport)

    assert client.renegotiate()
    with pytest.raises(SSL.Error, match="no renegotiation"):
        _pump(server, client, established=True)

    assert client_identity(transport) == before
    assert transport.reads == 1
