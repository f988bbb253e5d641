"""``igo-gateway bundle`` (what to claim now; ``--dry-run`` stores nothing) and
``igo-gateway explain`` (each decision in words: the lines, their phase, the rule, why)."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, TypeVar

from twisted.internet.interfaces import IReactorTime

from adapters.storage import SqlMessageStore, open_store
from adapters.storage.blocking import Blocking
from adapters.storage.keys import check_store_keys
from gateway.bundler import BUNDLING_JOB, Bundler
from gateway.config import ConfigError, GatewayConfig, load_config
from gateway.crypto import CryptoError, Keyring
from gateway.jobs import JobLock
from gateway.loading import load_layouts
from gateway.pausepoints import pause_point_from_environment
from gateway.ports.bundling import BundleConflictError
from gateway.ports.jobs import LeaseLostError
from gateway.ports.messages import StoreError
from gateway.rules.catalogue import Phase
from gateway.rules.explain import explain_json, explain_text
from gateway.terms import load_catalogue, terms_from_config

__all__ = ["register", "run_with_store"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
CLI_WAIT_SECONDS = 3600.0  # a bundling run over a large store takes a while
T = TypeVar("T")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "bundle",
        help="decide and store what to claim now (--dry-run: only show it)",
        description="Run the bundler once on the config's store: per insurer the integral "
        "claim file and the monodisciplinary forwards, with totals. --dry-run shows what "
        "would be claimed and forwarded without storing or sending anything.",
    )
    p.add_argument("--config", type=Path, required=True, metavar="FILE")
    p.add_argument("--dry-run", action="store_true", help="show, store nothing")
    p.add_argument("--json", action="store_true", help="the summary as JSON, with every claim line")
    p.add_argument(
        "--as-of",
        type=date.fromisoformat,
        metavar="DAY",
        help="with --dry-run: decide as on DAY (YYYY-MM-DD) instead of today",
    )
    p.set_defaults(handler=_bundle)

    p = sub.add_parser(
        "explain",
        help="explain the bundling decisions, pregnancy by pregnancy",
        description="Show, for the lines still open (and what they are decided with), each "
        "decision: the lines, their phase, the rule applied and why. BSNs are masked "
        "unless --unmask.",
    )
    p.add_argument("--config", type=Path, required=True, metavar="FILE")
    p.add_argument("--pregnancy", metavar="ID", help="only this pregnancy")
    p.add_argument("--json", action="store_true", help="one JSON object per decision")
    p.add_argument("--unmask", action="store_true", help="show BSNs in full")
    p.add_argument(
        "--as-of",
        type=date.fromisoformat,
        metavar="DAY",
        help="decide as on DAY (YYYY-MM-DD) instead of today",
    )
    p.set_defaults(handler=_explain)

    p = sub.add_parser(
        "close-phase",
        help="close a waiting phase by hand, so that it is claimed with what it has",
        description="Mark a phase of a pregnancy complete (e.g. no birth will be declared "
        "through the IGO). The next bundling run decides it; `explain` shows the ids.",
    )
    p.add_argument("--config", type=Path, required=True, metavar="FILE")
    p.add_argument("--pregnancy", required=True, metavar="ID")
    p.add_argument("--phase", required=True, choices=[ph.value for ph in Phase])
    p.add_argument("--by", metavar="NAME", help="who closes it (default: the OS user)")
    p.set_defaults(handler=_close_phase)


def _close_phase(args: argparse.Namespace) -> int:
    config = _load(args, "close-phase")
    if config is None:
        return EXIT_USAGE
    phase = Phase(args.phase)
    by = args.by or f"cli:{getpass.getuser()}"
    try:
        run_with_store(
            config,
            lambda store: store.bundles.close_phase(args.pregnancy, phase, by, datetime.now(UTC)),
        )
    except (StoreError, CryptoError) as exc:
        print(f"igo-gateway close-phase: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(
        f"the {phase.value} phase of pregnancy {args.pregnancy} is closed; the next bundling "
        "run claims it with what it has"
    )
    return EXIT_OK


def run_with_store(config: GatewayConfig, work: Callable[[SqlMessageStore], Awaitable[T]]) -> T:
    """Open the config's store, run ``work`` with it to its end, close it; the result (or
    the error). No reactor runs: :class:`Blocking` stands in for it."""
    return _run_with_store_and_clock(config, lambda store, _: work(store))


def _run_with_store_and_clock(
    config: GatewayConfig, work: Callable[[SqlMessageStore, Blocking], Awaitable[T]]
) -> T:
    """:func:`run_with_store`, with the :class:`Blocking` stand-in as ``work``'s clock."""
    keyring = Keyring.load(config.encryption.key_file) if config.encryption.key_file else None
    run = Blocking()
    store = run.wait(open_store(config.store.url, run, keyring))
    try:
        run.wait(check_store_keys(store))  # CryptoError for a key file that does not fit
        return run.wait(work(store, run), timeout=CLI_WAIT_SECONDS)
    finally:
        run.wait(store.close())


def _bundler(
    config: GatewayConfig,
    store: SqlMessageStore,
    as_of: date | None = None,
    clock: IReactorTime | None = None,
) -> Bundler:
    """The bundler of ``config``; deciding as on ``as_of`` (noon UTC) when given; with a
    ``clock``, it takes the store's bundling lease for a run (a run queues behind one of
    ``serve`` or another command line)."""

    def now() -> datetime:
        if as_of is None:
            return datetime.now(UTC)
        return datetime.combine(as_of, time(12), tzinfo=UTC)

    return Bundler(
        store,
        store.bundles,
        load_layouts(),
        load_catalogue(config.bundling.catalogue),
        terms_from_config(config),
        now=now,
        distribution=config.bundling.distribution,
        lock=None
        if clock is None
        else JobLock(store.leases, BUNDLING_JOB, clock, seconds=config.bundling.lease_seconds),
        checkpoint=pause_point_from_environment(),
    )


def _load(args: argparse.Namespace, command: str) -> GatewayConfig | None:
    try:
        return load_config(args.config)
    except ConfigError as exc:
        print(f"igo-gateway {command}: {exc}", file=sys.stderr)
        return None


def _bundle(args: argparse.Namespace) -> int:
    if args.as_of is not None and not args.dry_run:
        print(
            "igo-gateway bundle: --as-of only with --dry-run (a run that stores decides today)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    config = _load(args, "bundle")
    if config is None:
        return EXIT_USAGE
    try:
        plan = _run_with_store_and_clock(
            config,
            lambda store, clock: (
                _bundler(config, store, args.as_of).plan()
                if args.dry_run
                else _bundler(config, store, clock=clock).run_once()
            ),
        )
    except (
        StoreError,
        CryptoError,
        ConfigError,
        RuntimeError,
        BundleConflictError,
        LeaseLostError,
    ) as exc:
        print(f"igo-gateway bundle: {exc}", file=sys.stderr)
        return EXIT_FAILED
    summary = plan.summary()
    if args.json:
        print(json.dumps({"dryRun": args.dry_run, **summary}, ensure_ascii=False))
        return EXIT_OK
    when = f"on {args.as_of.isoformat()}" if args.as_of else "now"
    head = f"would be claimed {when} (dry run, nothing stored)" if args.dry_run else "claimed"
    print(f"{head}:")
    for claim in summary["claims"]:
        print(
            f"  insurer {claim['insurer']}: {claim['factuurnummer']}, {claim['lines']} integral "
            f"line(s), total EUR {claim['total'] / 100:,.2f}"
        )
        for line in claim["integralLines"]:
            credit = f", credits {line['credits']}" if line["credits"] else ""
            print(
                f"    {line['prestatie']} {line['phase']} EUR {line['amount'] / 100:,.2f}, "
                f"{line['from']} – {line['to']}, {len(line['absorbs'])} line(s) absorbed{credit}"
            )
    if not summary["claims"]:
        print("  no integral claims")
    for forward in summary["forwards"]:
        print(
            f"  forward to insurer {forward['insurer']}: {forward['lines']} line(s) of "
            f"participant {forward['participant']}"
        )
    print("decisions: " + ", ".join(f"{k} {v}" for k, v in sorted(summary["decisions"].items())))
    print("lines: " + ", ".join(f"{k} {v}" for k, v in sorted(summary["lines"].items())))
    return EXIT_OK


def _explain(args: argparse.Namespace) -> int:
    config = _load(args, "explain")
    if config is None:
        return EXIT_USAGE

    async def decide(store: SqlMessageStore) -> Any:
        decisions, _ = await _bundler(config, store, args.as_of).decisions()
        return decisions

    try:
        decisions = run_with_store(config, decide)
    except (StoreError, CryptoError, ConfigError) as exc:
        print(f"igo-gateway explain: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if args.pregnancy:
        decisions = [d for d in decisions if d.pregnancy == args.pregnancy]
        if not decisions:
            print(f"igo-gateway explain: no open pregnancy {args.pregnancy}", file=sys.stderr)
            return EXIT_FAILED
    if args.json:
        for decision in decisions:
            print(json.dumps(explain_json(decision, unmask=args.unmask), ensure_ascii=False))
        return EXIT_OK
    catalogue = load_catalogue(config.bundling.catalogue)
    print(explain_text(decisions, catalogue, unmask=args.unmask), end="")
    return EXIT_OK
