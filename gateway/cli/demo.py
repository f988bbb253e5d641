"""``igo-gateway demo``: the gateway's main job, on the embedded default, in a few minutes.

It sets up a throw-away directory once (a development PKI, a key file, a config on SQLite
for a demo IGO with three participants and one insurer), starts the gateway and the
insurer simulator, and has three simulated EPDs — a midwifery practice, a kraamzorg
organisation and a hospital — upload their declarations (the fixture files) exactly as
they would to VECOZO. Then the bundler claims what is complete, the forwarder sends the
integral claim to the simulated insurer, its retour comes back and is unpacked into a
retour file per participant, which each EPD fetches. Progress is shown step by step, then
a summary per participant; the gateway keeps running (Ctrl-C stops it) so the EPD API and
the metrics can be looked at, unless ``--once``.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import socket
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final, cast

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger

from adapters.insurer_sim.config import load_sim_config
from adapters.insurer_sim.server import start_simulator
from adapters.storage import SqlMessageStore
from adapters.vsp_client import VspClient, VspError
from gateway.admin.accounts import Role
from gateway.admin.cases import CaseKind
from gateway.app import RunningGateway
from gateway.builder import GatewayReactor
from gateway.cli.admin import cli_actor
from gateway.cli.epd import metadata_for
from gateway.cli.serve import run
from gateway.cli.starter import KEY_FILE, PKI_DIR, Member, write_installation
from gateway.config import ConfigError, load_config
from gateway.ei import LayoutRegistry
from gateway.lines import AnswerOutcome
from gateway.pki import CA_CERT, SERVER_CERT, SERVER_KEY, Party, PkiError
from gateway.ports.outbox import OutboundState
from gateway.resources import schemas_dir

__all__ = ["DEMO_PARTICIPANTS", "register", "write_demo"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
log = Logger()

DEMO_IGO = Party("53001234", "Geboortezorg Voorbeeldstad (demo)", "igo")
DEMO_INSURER = "3311"
# (AGB, name, discipline, variant, the fixture file its EPD uploads)
DEMO_PARTICIPANTS = (
    ("02001234", "Verloskundigenpraktijk De Wieg (demo)", "midwifery", "A",
     "vk301-verloskunde-02001234.asc"),
    ("33001234", "Kraamzorg Het Nest (demo)", "kraamzorg", "A", "kz301-kraamzorg-33001234.asc"),
    ("06001234", "Ziekenhuis Voorbeeldstad, verloskunde (demo)", "hospital", "B",
     "zh308-ziekenhuis-06001234.asc"),
)  # fmt: skip
# Example tariffs (eurocents) for the example catalogue's integral prestaties.
DEMO_TARIFFS = {
    "IG0002": 152000, "IG0003": 181000, "IG0004": 93000, "IG0006": 124000,
    "IG0007": 101000, "IG0008": 133000, "IG0009": 41000,
}  # fmt: skip
WAIT_SECONDS = 90.0
# Woman B of the fixtures (synthetic BSN): the simulated insurer knows her under another
# member number, so her integral lines come back rejected with 0320 — a case to correct
# (member number 100200417 in the files, 100200999 at the insurer) and resubmit.
DEMO_REJECTED_BSN = "999990019"
DEMO_MEMBER_NUMBER = "100200999"
# An upload the intake rejects (the 99 total is off by a euro): an intake case.
DEMO_INVALID = ("33001234", "invalid-0150-trailer-total.asc")
# The ports the demo takes, from --port: (offset, component).
DEMO_PORTS = ((0, "EPD API"), (1, "insurer simulator"), (2, "metrics"), (3, "admin site"))


def _overdue_intake() -> bytes:
    """The smallest kraamzorg file moved to January 2026: a lone intake of a woman whose
    birth never comes, so its phase waits past its expected date (a case to close)."""
    text = (_fixtures() / "kz301-minimal.asc").read_bytes().decode("latin-1")
    text = text.replace("202606", "202601").replace("20260703", "20260203")
    # A woman of her own (synthetic): BSN, member number, birth date and surname.
    text = text.replace("999990007", "999995005").replace("100200300", "100200512")
    text = text.replace("19940506", "19910314").replace("Voorbeeld", "Bakker   ")
    return text.replace("KZ2026-0601", "KZ2026-0101").encode("latin-1")


def _fixtures() -> Path:
    """fixtures/messages of the source checkout the demo runs from."""
    return schemas_dir().parent / "fixtures" / "messages"


def _demo_sections(port: int) -> str:
    tariffs = ", ".join(f'"{code}" = {amount}' for code, amount in DEMO_TARIFFS.items())
    return f"""
[bundling]
# The demo claims at once what is complete; a real IGO waits some weeks for late lines.
grace_days = 0
interval_seconds = 3
# Granted integral amounts are shared out by discipline (the default is what each declared).
distribution = "shares"
shares = {{ midwifery = 40, kraamzorg = 35, hospital = 25 }}

[[insurers]]
uzovi = "{DEMO_INSURER}"
name = "Zorgverzekeraar Voorbeeld (simulator)"

[insurers.link]
base_url = "https://localhost:{port + 1}"
poll_seconds = 1
timeout_seconds = 10

[insurers.link.tls]
cert = "{PKI_DIR}/igo-{DEMO_IGO.agb}.pem"
key = "{PKI_DIR}/igo-{DEMO_IGO.agb}.key"
trust = "{PKI_DIR}/{CA_CERT}"

[insurers.link.retry]
first_delay_seconds = 1
max_delay_seconds = 5

[[insurers.contracts]]
year = {datetime.now(UTC).year}
rule_set = "regular-2023"
tariffs = {{ {tariffs} }}

[[insurers.contracts]]
year = 2026
rule_set = "regular-2023"
tariffs = {{ {tariffs} }}
"""


def write_demo(directory: Path, port: int) -> Path:
    """Create ``directory`` with a development PKI, a key file, the gateway's config and the
    insurer simulator's (kept: the PKI and keys; rewritten: the configs, for ``port``)."""
    members = [
        Member(agb, name, discipline, variant)
        for agb, name, discipline, variant, _ in DEMO_PARTICIPANTS
    ]
    sections = _demo_sections(port)
    if datetime.now(UTC).year == 2026:  # one contract a year
        sections = sections[: sections.rindex("[[insurers.contracts]]")]
    path = write_installation(
        directory,
        DEMO_IGO,
        members,
        port=port,
        header=[
            "Demo configuration, written by `igo-gateway demo`. DEVELOPMENT ONLY: the",
            "certificates in pki/ come from a self-signed development CA.",
        ],
        comments=False,
        extra=sections,
    )
    text = path.read_text(encoding="utf-8").replace('level = "info"', 'level = "warn"')
    text = text.replace("port = 9464", f"port = {port + 2}")
    text += f"\n[admin]\nport = {port + 3}\n"
    path.write_text(text, encoding="utf-8")
    (directory / "insurer-sim.toml").write_text(
        f"""# The insurer simulator of the demo (igo-gateway insurer-sim).
host = "127.0.0.1"
port = {port + 1}
uzovi = "{DEMO_INSURER}"
name = "Zorgverzekeraar Voorbeeld (simulator)"

[tls]
cert = "{PKI_DIR}/{SERVER_CERT}"
key = "{PKI_DIR}/{SERVER_KEY}"
trust = "{PKI_DIR}/{CA_CERT}"

[rules]
# Woman B is insured under another member number than her files say: 0320.
members = {{ "{DEMO_REJECTED_BSN}" = "{DEMO_MEMBER_NUMBER}" }}
""",
        encoding="utf-8",
    )
    return path


def register(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="watch declarations flow through the gateway, on SQLite, in a few minutes",
        description="Set up DIR once (development PKI, key file, configs), start the gateway "
        "and the insurer simulator, let three simulated EPDs upload their declarations, and "
        "follow them to the insurer and back to each EPD. Keeps running until Ctrl-C.",
    )
    p.add_argument("--dir", type=Path, default=Path("demo-gateway"), metavar="DIR")
    p.add_argument(
        "--port", type=int, default=8443, help="EPD API port (the simulator +1, metrics +2)"
    )
    p.add_argument("--once", action="store_true", help="exit after the summary")
    p.add_argument("--json", action="store_true", help="with --once: the summary as JSON")
    p.set_defaults(handler=_demo)


class _Show:
    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def __call__(self, text: str) -> None:
        if not self.quiet:
            print(text, flush=True)


def _epd(reactor: GatewayReactor, directory: Path, agb: str, port: int) -> VspClient:
    pki = directory / PKI_DIR
    return VspClient.with_certificate(
        reactor,
        f"https://localhost:{port}",
        cert=str(pki / f"participant-{agb}.pem"),
        key=str(pki / f"participant-{agb}.key"),
        ca=str(pki / CA_CERT),
        timeout=20,
    )


async def _until(reactor: IReactorTime, check: Callable[[], Any], deadline: float) -> bool:
    while time.monotonic() < deadline:
        if await check():
            return True
        await deferLater(reactor, 0.5, lambda: None)
    return False


async def _scenario(
    gateway: RunningGateway, reactor: GatewayReactor, directory: Path, port: int, show: _Show
) -> dict[str, Any]:
    store = gateway.store
    sim = await start_simulator(load_sim_config(directory / "insurer-sim.toml"), reactor)
    # The simulator lives as long as the gateway: it stops when the reactor does, so the
    # gateway never polls an insurer that is gone.
    reactor.addSystemEventTrigger("before", "shutdown", lambda: Deferred.fromCoroutine(sim.stop()))
    show(f"  insurer simulator (UZOVI {DEMO_INSURER}) listening on {sim.url}")
    epds: dict[str, VspClient] = {}
    uploads: dict[str, str] = {}
    for agb, name, _, _, fixture in DEMO_PARTICIPANTS:
        epds[agb] = _epd(reactor, directory, agb, port)
        payload = (_fixtures() / fixture).read_bytes()
        metadata = metadata_for(gateway.registry, agb, payload)
        await epds[agb].send(metadata, payload, fixture)
        uploads[agb] = metadata.traceer_id
        show(f"  ✓ {name} uploaded {fixture} (traceerId {metadata.traceer_id[:8]}…)")
    await _practice_uploads(gateway.registry, epds, show)
    deadline = time.monotonic() + WAIT_SECONDS

    async def claimed() -> bool:
        counts = await store.outbox.counts()
        return sum(counts.values()) > 0 and all(
            state in (OutboundState.ANSWERED, OutboundState.PARKED) for _, state in counts
        )

    show("  … bundling into integral claims and sending them to the insurer")
    answered = await _until(reactor, claimed, deadline)
    show("  ✓ the insurer answered" if answered else "  ✗ no answer from the insurer in time")
    retours: dict[str, int] = {}
    for agb, name, *_ in DEMO_PARTICIPANTS:
        found: list[Any] = []

        async def fetched(client: VspClient = epds[agb], into: list[Any] = found) -> bool:
            try:
                into[:] = await client.waiting()
            except VspError:
                return False
            return bool(into)

        await _until(reactor, fetched, deadline)
        for retour in found:
            await epds[agb].download(retour)
            await epds[agb].confirm(retour["referentiegegevens"]["traceerId"])
        retours[agb] = len(found)
        show(f"  ✓ {name} fetched {len(found)} retour file(s)")
    admin = gateway.builder.store.admin

    async def practice_ready() -> bool:
        kinds = {case.kind for case in await admin.cases() if case.is_open}
        return kinds >= PRACTICE_KINDS

    show("  … waiting for the cases to practise on (a rejection, a late phase, an intake)")
    await _until(reactor, practice_ready, deadline)
    summary = await _summary(store, uploads, retours)
    summary["cases"] = dict(
        sorted(Counter(c.kind.value for c in await admin.cases() if c.is_open).items())
    )
    summary["admin"] = await _admin_user(gateway, directory)
    return summary


PRACTICE_KINDS: Final = frozenset(
    {CaseKind.REJECTED_LINE, CaseKind.WAITING_PHASE, CaseKind.INTAKE_REJECTED}
)


async def _practice_uploads(
    registry: LayoutRegistry, epds: dict[str, VspClient], show: _Show
) -> None:
    """Two uploads that leave work in the administrator's queue: a file the intake
    rejects, and a lone kraamzorg intake whose phase waits past its expected date."""
    agb, fixture = DEMO_INVALID
    practice = (
        (fixture, (_fixtures() / fixture).read_bytes(), "rejected at intake"),
        ("kz301-late-intake.asc", _overdue_intake(), "a phase that will wait"),
    )
    for filename, payload, what in practice:
        metadata = metadata_for(registry, agb, payload)
        try:
            await epds[agb].send(metadata, payload, filename)
        except VspError as exc:  # refused at once: still the intake's case
            show(f"  ✓ {filename} refused at upload ({exc})")
            continue
        show(f"  ✓ uploaded {filename}: {what} (traceerId {metadata.traceer_id[:8]}…)")


async def _admin_user(gateway: RunningGateway, directory: Path) -> dict[str, str]:
    """A demo administrator account (its password in DIR/admin-password.txt)."""
    password_file = directory / "admin-password.txt"
    service = gateway.builder.admin_service()
    password = secrets.token_urlsafe(12)
    await service.create_user("demo", Role.ADMINISTRATOR, password, cli_actor())  # new store
    password_file.write_text(password + "\n", encoding="utf-8")
    password_file.chmod(0o600)
    return {"user": "demo", "passwordFile": str(password_file)}


async def _summary(
    store: SqlMessageStore, uploads: dict[str, str], retours: dict[str, int]
) -> dict[str, Any]:
    rows = await store.outcomes.settlement(None, date(2000, 1, 1), date(2100, 12, 31))
    participants = []
    for agb, name, *_ in DEMO_PARTICIPANTS:
        own = [r for r in rows if r.line.participant == agb]
        states = Counter(r.state for r in own)
        participants.append(
            {
                "participant": agb,
                "name": name,
                "files": 1 if agb in uploads else 0,
                "lines": len(own),
                "absorbed": states["absorbed"],
                "forwarded": states["forwarded"],
                "returned": states["returned"],
                "waiting": states["open"],
                "granted": sum(r.granted or 0 for r in own),
                "retourFiles": retours.get(agb, 0),
            }
        )
    outbox = await store.outbox.counts()
    return {
        "files": len(uploads),
        "lines": len(rows),
        "integralClaims": len({r.claim_reference for r in rows if r.claim_reference}),
        "claimFiles": sum(outbox.values()),
        "granted": sum(r.granted or 0 for r in rows),
        "rejected": sum(
            1 for r in rows if r.outcome in (AnswerOutcome.REJECTED, AnswerOutcome.REVIEW)
        ),
        "openCases": sum(1 for r in rows if r.outcome == AnswerOutcome.REVIEW)
        + outbox.get((DEMO_INSURER, OutboundState.PARKED), 0),
        "participants": participants,
    }


def _table(summary: dict[str, Any]) -> str:
    head = (
        f"{'participant':<46} {'lines':>5} {'absorbed':>8} {'fwd':>4} {'ret':>4} {'wait':>4} "
        f"{'granted EUR':>12} {'retours':>7}"
    )
    out = ["", head, "-" * len(head)]
    for p in summary["participants"]:
        out.append(
            f"{p['name'][:46]:<46} {p['lines']:>5} {p['absorbed']:>8} {p['forwarded']:>4} "
            f"{p['returned']:>4} {p['waiting']:>4} {p['granted'] / 100:>12,.2f} "
            f"{p['retourFiles']:>7}"
        )
    out += [
        "",
        f"files in: {summary['files']}   lines: {summary['lines']}   integral claims: "
        f"{summary['integralClaims']}   granted: EUR {summary['granted'] / 100:,.2f}   "
        f"rejected: {summary['rejected']}   open cases: {summary['openCases']}",
    ]
    if summary.get("cases"):
        out.append(
            "cases in the admin queue: "
            + ", ".join(f"{kind} {n}" for kind, n in summary["cases"].items())
        )
    return "\n".join(out)


def _running_text(port: int, summary: dict[str, Any]) -> str:
    cases = summary.get("cases", {})
    waiting = ", ".join(f"{n} {kind}" for kind, n in cases.items()) or "none"
    return (
        "\nThe gateway keeps running (Ctrl-C stops it):\n"
        f"  admin site         http://127.0.0.1:{port + 3}/login\n"
        f"                     log in as user demo with the password in "
        f"{summary['admin']['passwordFile']}\n"
        f"                     open cases to practise on: {waiting}\n"
        f"  EPD API            https://localhost:{port}\n"
        f"  insurer simulator  https://localhost:{port + 1}\n"
        f"  metrics            http://127.0.0.1:{port + 2}/metrics"
    )


def _busy_port(port: int) -> str | None:
    """A message naming the component whose port (``port`` + its offset) is taken, and the
    flag that moves them all; None when every one is free."""
    for offset, component in DEMO_PORTS:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + offset))
            except OSError:
                free = ", ".join(f"{name} N+{o}" if o else f"{name} N" for o, name in DEMO_PORTS)
                return (
                    f"igo-gateway demo: port {port + offset} for the {component} is in use; "
                    f"start the demo on other ports with --port N ({free})"
                )
    return None


def _demo(args: argparse.Namespace) -> int:
    if not 0 < args.port < 65535:
        print("igo-gateway demo: --port must be 1-65534", file=sys.stderr)
        return EXIT_USAGE
    if not (_fixtures() / DEMO_PARTICIPANTS[0][4]).is_file():
        print(
            "igo-gateway demo: run it from the source checkout (it uploads fixtures/messages)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    busy = _busy_port(args.port)
    if busy is not None:
        print(busy, file=sys.stderr)
        return EXIT_FAILED
    try:
        # A throw-away store: every run starts afresh (the certificates and keys are kept).
        shutil.rmtree(args.dir / "data", ignore_errors=True)
        path = write_demo(args.dir, args.port)
        config = load_config(path)
    except (PkiError, ConfigError, OSError) as exc:
        print(f"igo-gateway demo: {exc}", file=sys.stderr)
        return EXIT_FAILED
    show = _Show(quiet=args.json)
    show(f"Demo IGO {DEMO_IGO.agb} in {args.dir} (SQLite store, development certificates, "
         f"encryption key in {args.dir / KEY_FILE})")  # fmt: skip
    outcome: dict[str, int] = {"status": EXIT_OK}

    def started(gateway: RunningGateway) -> None:
        from twisted.internet import reactor  # noqa: PLC0415 - the one the gateway runs on

        show(f"  gateway listening on https://localhost:{args.port} (EPD API)")

        async def go() -> None:
            try:
                summary = await _scenario(
                    gateway, cast(GatewayReactor, reactor), args.dir, args.port, show
                )
            except Exception as exc:  # the demo went wrong: say so, stop
                print(f"igo-gateway demo: {exc}", file=sys.stderr)
                outcome["status"] = EXIT_FAILED
                reactor.stop()
                return
            if args.json:
                print(json.dumps(summary, ensure_ascii=False), flush=True)
            else:
                show(_table(summary))
            complete = all(p["retourFiles"] > 0 for p in summary["participants"])
            if not complete:
                outcome["status"] = EXIT_FAILED
            if args.once:
                reactor.stop()
                return
            show(_running_text(args.port, summary))

        Deferred.fromCoroutine(go())

    status = run(config, on_started=started)
    return max(status, outcome["status"])
