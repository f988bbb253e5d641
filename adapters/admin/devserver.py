"""Serve the admin site alone, on a store of its own: for trying it out and for the browser
tests, which drive it as a real process.

    python -m adapters.admin.devserver --store sqlite:///admin-try.db --seed --demo-user

opens (and migrates) the store, with ``--seed`` adds one example case of each kind
(:mod:`adapters.admin.demo`), with ``--demo-user`` creates an administrator ``demo`` with a
random password printed once, and serves on ``--host``/``--port`` (0: any free port) until
stopped. It logs ``admin site listening on http://HOST:PORT`` once it listens.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThread

from adapters.admin.config import AdminConfig
from adapters.admin.demo import seed_cases
from adapters.admin.site import build_admin_site, build_bulk_service
from adapters.storage import open_store
from gateway.admin.accounts import Actor, Role
from gateway.admin.bulk import BatchRunner
from gateway.admin.service import AdminService
from gateway.loading import load_layouts
from gateway.ports.admin import UserExistsError

__all__ = ["main"]

T = TypeVar("T")


def _now() -> datetime:
    return datetime.now(UTC)


def _in_thread(fn: Callable[[], T]) -> Deferred[T]:
    return deferToThread(fn)


async def _serve(reactor: Any, args: argparse.Namespace) -> None:
    layouts = load_layouts()
    store = await open_store(args.store, reactor)
    admin = store.admin
    if args.seed:
        await seed_cases(store, layouts, _now())
    if args.demo_user:
        password = secrets.token_urlsafe(12)
        service = AdminService(admin, store, layouts, _now, run_in_thread=_in_thread)
        try:
            await service.create_user(
                "demo",
                Role.ADMINISTRATOR,
                password,
                Actor("cli:devserver", Role.ADMINISTRATOR, "cli"),
            )
            print(f"user demo (administrator), password {password}", flush=True)
        except UserExistsError:
            print("user demo exists already", flush=True)
    bulk = build_bulk_service(admin, store.batches, _now)
    site = build_admin_site(
        store,
        admin,
        layouts,
        None,
        _now,
        config=AdminConfig(host=args.host, port=args.port),
        run_in_thread=_in_thread,
        bulk=bulk,
    )
    # Bulk-action batches run in the background, as in ``serve``.
    runner = BatchRunner(bulk)
    batches = LoopingCall(lambda: Deferred.fromCoroutine(runner.run_once()))
    batches.clock = reactor
    batches.start(args.batch_interval, now=True)
    port = reactor.listenTCP(args.port, site, interface=args.host)
    address = port.getHost()
    print(
        f"admin site listening on http://{address.host}:{address.port}", file=sys.stderr, flush=True
    )
    reactor.addSystemEventTrigger("before", "shutdown", batches.stop)
    reactor.addSystemEventTrigger("before", "shutdown", store.close)
    await Deferred()  # until the reactor stops


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m adapters.admin.devserver")
    parser.add_argument("--store", required=True, help="sqlite:///PATH or postgresql://…")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8444)
    parser.add_argument("--seed", action="store_true", help="add one example case of each kind")
    parser.add_argument("--demo-user", action="store_true", help="create administrator 'demo'")
    parser.add_argument(
        "--batch-interval",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="how often bulk-action batches take their next cases",
    )
    args = parser.parse_args(argv)

    from twisted.internet import reactor  # noqa: PLC0415 - installs the reactor: main only

    def start() -> None:
        d = ensureDeferred(_serve(reactor, args))

        def failed(failure: Any) -> None:
            print(f"devserver: {failure.getErrorMessage()}", file=sys.stderr, flush=True)
            reactor.stop()

        d.addErrback(failed)

    reactor.callWhenRunning(start)
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
