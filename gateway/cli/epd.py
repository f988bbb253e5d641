"""``igo-gateway epd``: a reference EPD client of the VSP-Koppeling interface.

It uses only what VECOZO publishes (``schemas/epd-api.openapi.json``): send a file, list
and search what waits, fetch a payload, confirm receipt, follow the status. It works
against the gateway and against any server of that interface (VECOZO's own, the insurer
simulator). Every command prints the HTTP status it got; lists and statuses as JSON.

Connection options may come from the environment: ``IGO_EPD_URL``, ``IGO_EPD_CERT``,
``IGO_EPD_KEY``, ``IGO_EPD_CA`` — or ``--pki DIR --as AGB`` for a development PKI made by
``igo-gateway pki init`` / ``demo`` (``DIR/participant-AGB.pem`` and so on).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from twisted.internet import task
from twisted.internet.defer import ensureDeferred

from adapters.vsp_client import VspClient, VspError
from gateway.ei import LayoutRegistry, validate_bytes
from gateway.loading import load_layouts
from gateway.pki import CA_CERT
from gateway.vsp import DEFAULT_ACTIE, BerichtMetadata, send_metadata

__all__ = ["metadata_for", "register"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def metadata_for(
    registry: LayoutRegistry,
    afzender: str,
    payload: bytes,
    *,
    berichttype: str | None = None,
    actie: str = DEFAULT_ACTIE,
    traceer_id: str | None = None,
    conversatie_id: str | None = None,
    referentie_id: str | None = None,
) -> BerichtMetadata:
    """Send metadata for ``payload``: its berichtstroom named after the file's own
    standard and version (read from its 01 record), unless ``berichttype`` is given."""
    layout = validate_bytes(registry, payload, max_findings=1).layout
    versie = subversie = 0
    if layout is not None:
        with contextlib.suppress(ValueError):
            versie, subversie = int(layout.version), int(layout.subversion)
    return send_metadata(
        afzender,
        berichttype or (layout.standard if layout is not None else "EI"),
        versie=versie,
        subversie=subversie,
        actie=actie,
        traceer_id=traceer_id,
        conversatie_id=conversatie_id,
        referentie_id=referentie_id,
    )


def register(sub: Any) -> None:
    p = sub.add_parser(
        "epd",
        help="a reference EPD client: send, list, fetch, confirm, status (VSP-Koppeling)",
        description="Talk to the gateway (or any VSP-Koppeling server) as an EPD does.",
    )
    p.add_argument("--url", default=os.environ.get("IGO_EPD_URL"), help="base URL (IGO_EPD_URL)")
    p.add_argument("--cert", default=os.environ.get("IGO_EPD_CERT"), help="client certificate")
    p.add_argument("--key", default=os.environ.get("IGO_EPD_KEY"), help="its private key")
    p.add_argument("--ca", default=os.environ.get("IGO_EPD_CA"), help="CA of the server")
    p.add_argument("--pki", type=Path, help="a development PKI directory (with --as)")
    p.add_argument("--as", dest="agb", metavar="AGB", help="the participant (with --pki)")
    p.add_argument("--timeout", type=float, default=30.0)
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    send = actions.add_parser("send", help="POST /berichten: send a file (204)")
    send.add_argument("file", type=Path)
    send.add_argument("--afzender", metavar="CODE", help="the sender's code (default: --as)")
    send.add_argument("--berichttype", help="default: the file's standard, e.g. KZ301")
    send.add_argument("--actie", default=DEFAULT_ACTIE)
    send.add_argument("--traceer-id", help="default: a new UUID (give the same to retry)")
    send.add_argument("--conversatie-id", help="default: a new UUID")
    send.add_argument("--referentie-id")

    listing = actions.add_parser("list", help="GET /berichten or zoeken: what waits for you")
    listing.add_argument("--limit", type=int)
    how = listing.add_mutually_exclusive_group()
    how.add_argument("--als-antwoord-op", metavar="TRACEERID", help="answers to this message")
    how.add_argument("--conversatie-id", metavar="UUID")
    how.add_argument("--berichttype")

    fetch = actions.add_parser("fetch", help="GET /berichten/{traceerId}/payload")
    fetch.add_argument("traceer_id", metavar="TRACEERID")
    fetch.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")

    confirm = actions.add_parser("confirm", help="DELETE /berichten/{traceerId} (202)")
    confirm.add_argument("traceer_id", metavar="TRACEERID")

    status = actions.add_parser("status", help="GET /berichtstatussen")
    which = status.add_mutually_exclusive_group(required=True)
    which.add_argument("--traceer-id")
    which.add_argument("--conversatie-id")
    status.add_argument("--v2", action="store_true", help="Berichtstatus v2 instead of v3")
    p.set_defaults(handler=_epd)


def _files(args: argparse.Namespace) -> tuple[str, str, str] | str:
    cert, key, ca = args.cert, args.key, args.ca
    if args.pki is not None:
        if not args.agb:
            return "--pki needs --as AGB"
        cert = cert or str(args.pki / f"participant-{args.agb}.pem")
        key = key or str(args.pki / f"participant-{args.agb}.key")
        ca = ca or str(args.pki / CA_CERT)
    missing = [n for n, v in (("--cert", cert), ("--key", key), ("--ca", ca)) if not v]
    if missing:
        return f"give {', '.join(missing)} (or IGO_EPD_CERT/KEY/CA, or --pki with --as)"
    return cert, key, ca


def _epd(args: argparse.Namespace) -> int:
    if not args.url:
        print("igo-gateway epd: give --url (or IGO_EPD_URL)", file=sys.stderr)
        return EXIT_USAGE
    files = _files(args)
    if isinstance(files, str):
        print(f"igo-gateway epd: {files}", file=sys.stderr)
        return EXIT_USAGE
    outcome: list[int] = []

    async def main(reactor: Any) -> None:
        cert, key, ca = files
        client = VspClient.with_certificate(
            reactor, args.url, cert=cert, key=key, ca=ca, timeout=args.timeout
        )
        try:
            outcome.append(await _act(args, client))
        except VspError as exc:
            print(f"HTTP {exc.status}" if exc.status else "no answer", file=sys.stderr)
            print(f"igo-gateway epd: {exc}", file=sys.stderr)
            outcome.append(EXIT_FAILED)

    try:
        task.react(lambda reactor: _run(reactor, main))
    except SystemExit as exit_:
        if exit_.code not in (0, None):
            return EXIT_FAILED
    return outcome[0] if outcome else EXIT_FAILED


def _run(reactor: Any, main: Any) -> Any:
    return ensureDeferred(main(reactor))


async def _act(args: argparse.Namespace, client: VspClient) -> int:
    if args.action == "send":
        sender = args.afzender or args.agb
        if not sender:
            print("igo-gateway epd send: give --afzender (or --as)", file=sys.stderr)
            return EXIT_USAGE
        payload = args.file.read_bytes()
        metadata = metadata_for(
            load_layouts(),
            sender,
            payload,
            berichttype=args.berichttype,
            actie=args.actie,
            traceer_id=args.traceer_id,
            conversatie_id=args.conversatie_id,
            referentie_id=args.referentie_id,
        )
        await client.send(metadata, payload, args.file.name)
        print("HTTP 204", file=sys.stderr)
        _print({"traceerId": metadata.traceer_id, **_flow(metadata)})
        return EXIT_OK
    if args.action == "list":
        if args.als_antwoord_op:
            zoekpad = {
                "zoekpadType": "ZoekpadOpAlsAntwoordOp",
                "alsAntwoordOp": args.als_antwoord_op,
            }
        elif args.conversatie_id:
            zoekpad = {
                "zoekpadType": "ZoekpadOpConversatieId",
                "conversatieId": args.conversatie_id,
            }
        elif args.berichttype:
            zoekpad = {"zoekpadType": "ZoekpadOpBerichtstroom", "berichttype": args.berichttype}
        else:
            zoekpad = {}
        found = await (
            client.search(zoekpad, args.limit) if zoekpad else client.waiting(args.limit)
        )
        print("HTTP 200", file=sys.stderr)
        _print(found)
        return EXIT_OK
    if args.action == "fetch":
        data = await client.payload(args.traceer_id)
        print(f"HTTP 200 ({len(data)} bytes)", file=sys.stderr)
        if args.output is not None:
            args.output.write_bytes(data)
        else:
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
        return EXIT_OK
    if args.action == "confirm":
        await client.confirm(args.traceer_id)
        print("HTTP 202", file=sys.stderr)
        return EXIT_OK
    statuses = await client.statuses(
        traceer_id=args.traceer_id,
        conversatie_id=args.conversatie_id,
        version=2 if args.v2 else 3,
    )
    print("HTTP 200", file=sys.stderr)
    _print(statuses)
    return EXIT_OK


def _flow(metadata: BerichtMetadata) -> dict[str, Any]:
    return {
        "conversatieId": metadata.referentiegegevens.conversatieId,
        "berichtstroom": metadata.routeringgegevens.berichtstroom.model_dump(exclude_none=True),
    }


def _print(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))
