"""``igo-gateway serve`` (the long-running gateway) and ``igo-gateway demo`` (the same, set up
in a directory of its own with development certificates and the embedded SQLite store)."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.error import CannotListenError
from twisted.logger import Logger
from twisted.python.failure import Failure

from gateway.app import RunningGateway, start
from gateway.cli.starter import CONFIG_NAME, PKI_DIR, Member, write_installation
from gateway.config import ConfigError, GatewayConfig, load_config
from gateway.crypto import CryptoError
from gateway.ei import LayoutError
from gateway.logs import begin_logging
from gateway.pki import CA_CERT, Party, PkiError
from gateway.store import SchemaVersionError, StoreInUseError, StoreUnavailableError

__all__ = ["DEMO_PARTICIPANTS", "register", "run", "write_demo"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
log = Logger()

DEMO_IGO = Party("53001234", "Geboortezorg Voorbeeldstad (demo)", "igo")
# (AGB, name, discipline, variant): the declarants of the files in fixtures/messages.
DEMO_PARTICIPANTS = (
    ("02001234", "Verloskundigenpraktijk De Wieg (demo)", "midwifery", "A"),
    ("33001234", "Kraamzorg Het Nest (demo)", "kraamzorg", "A"),
    ("06001234", "Ziekenhuis Voorbeeldstad, verloskunde (demo)", "hospital", "A"),
)
DEMO_CONFIG = CONFIG_NAME
DEMO_PKI = PKI_DIR


def register(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="run the gateway",
        description="Run the gateway with the given config file until stopped (SIGINT or "
        "SIGTERM). Exit status: 0 after a clean stop, 1 when it cannot start (store, "
        "certificates, port), 2 for an invalid config file.",
    )
    p.add_argument("--config", type=Path, required=True, metavar="FILE")
    p.set_defaults(handler=_serve)

    p = sub.add_parser(
        "demo",
        help="run the gateway on SQLite with development certificates, ready to try",
        description="Create DIR (once) with a development PKI, a config file for a demo IGO "
        "and the three participants whose files are in fixtures/messages, print how to "
        "upload with curl, and serve on the embedded SQLite store until stopped.",
    )
    p.add_argument("--dir", type=Path, default=Path("demo-gateway"), metavar="DIR")
    p.add_argument("--port", type=int, default=8443, help="port of the EPD API (default 8443)")
    p.set_defaults(handler=_demo)


# --- serve ----------------------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"igo-gateway serve: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return run(config)


def run(config: GatewayConfig, on_started: Callable[[Any], None] | None = None) -> int:
    """Serve ``config`` on the global reactor until it stops; the exit status."""
    # Imported here: importing the reactor installs it, which other commands do not need.
    from twisted.internet import reactor  # noqa: PLC0415

    begin_logging(config.logging, sys.stderr)
    outcome = {"status": EXIT_OK}

    def cannot_start(failure: Failure) -> None:
        known = (
            ConfigError,
            CryptoError,
            SchemaVersionError,
            StoreInUseError,
            StoreUnavailableError,
            LayoutError,
            CannotListenError,
        )
        if failure.check(*known):
            log.critical("cannot start: {reason}", reason=str(failure.value))
        else:
            log.failure("cannot start", failure)
        outcome["status"] = EXIT_FAILED
        reactor.stop()

    def started(gateway: RunningGateway) -> None:
        reactor.addSystemEventTrigger("before", "shutdown", gateway.stop)
        if on_started is not None:
            on_started(gateway)

    def begin() -> None:
        d = Deferred.fromCoroutine(start(config, reactor))
        d.addCallbacks(started, cannot_start)

    reactor.callWhenRunning(begin)
    reactor.run()
    return outcome["status"]


# --- demo -----------------------------------------------------------------------------------


def write_demo(directory: Path, port: int) -> Path:
    """Create ``directory`` with a development PKI and a config file, unless it has them;
    the config file's path. The config's port is rewritten to ``port`` on every call."""
    return write_installation(
        directory,
        DEMO_IGO,
        [
            Member(agb, name, discipline, variant)
            for agb, name, discipline, variant in DEMO_PARTICIPANTS
        ],
        port=port,
        header=[
            "Demo configuration, written by `igo-gateway demo`. DEVELOPMENT ONLY: the",
            "certificates in pki/ come from a self-signed development CA.",
        ],
        comments=False,
    )


def demo_instructions(directory: Path, port: int) -> str:
    pki = shlex.quote(str(directory / DEMO_PKI))
    base = f"https://localhost:{port}"
    tls = (
        f"--cacert {pki}/{CA_CERT} --cert {pki}/participant-33001234.pem "
        f"--key {pki}/participant-33001234.key"
    )
    meta = '{"afzender":{"rol":"zorgaanbieder","code":"33001234"}}'
    return "\n".join(
        [
            f"Demo gateway in {directory}: config {directory / DEMO_CONFIG}, SQLite store in "
            f"{directory / 'data'}.",
            "Try it from another terminal, as the kraamzorg organisation 33001234:",
            "",
            f"  curl {tls} \\",
            f"       -F 'berichtMetadata={meta};type=application/json' \\",
            "       -F payload=@fixtures/messages/kz301-kraamzorg-33001234.asc \\",
            f"       {base}/berichten",
            f"  curl {tls} '{base}/berichtstatussen?traceerId=<traceerId from the answer>'",
            f"  curl {tls} {base}/berichten",
            f"  curl {tls} {base}/berichten/<traceerId>/payload",
            "",
            "Metrics: http://127.0.0.1:9464/metrics (also /healthz and /readyz).",
            "Stop with Ctrl-C.",
        ]
    )


def _demo(args: argparse.Namespace) -> int:
    if not 0 < args.port < 65536:
        print("igo-gateway demo: --port must be 1-65535", file=sys.stderr)
        return EXIT_USAGE
    try:
        path = write_demo(args.dir, args.port)
        config = load_config(path)
    except (PkiError, ConfigError, OSError) as exc:
        print(f"igo-gateway demo: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(demo_instructions(args.dir, args.port), flush=True)
    return run(config)
