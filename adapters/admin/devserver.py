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
from typing import Any, TypeVar, cast

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.threads import deferToThread

from adapters.admin.demo import seed_cases
from adapters.storage import open_store
from gateway.admin.accounts import Actor, Role
from gateway.admin.bulk import BatchRunner
from gateway.builder import GatewayBuilder, GatewayReactor
from gateway.config import GatewayConfig
from gateway.ports.admin import UserExistsError
from gateway.repeating import Repeating

__all__ = ["main"]

T = TypeVar("T")


def _in_thread(fn: Callable[[], T]) -> Deferred[T]:
    return deferToThread(fn)


def dev_config(store_url: str, host: str, port: int) -> GatewayConfig:
    """The config the dev server builds the admin site from: a demo IGO without
    participants or insurers, the store at ``store_url``, the site on ``host``/``port``.
    The EPD API's TLS files are named (the config requires them) but never read: the dev
    server serves the admin site alone."""
    return GatewayConfig.model_validate(
        {
            "igo": {"name": "Geboortezorg Voorbeeldstad (dev)", "agb": "53001234"},
            "store": {"url": store_url},
            "epd_api": {"tls": {"cert": "unused.pem", "key": "unused.pem", "trust": "unused.pem"}},
            "admin": {"host": host, "port": port},
        }
    )


async def _serve(reactor: GatewayReactor, args: argparse.Namespace) -> None:
    config = dev_config(args.store, args.host, args.port)
    store = await open_store(args.store, reactor)
    builder = GatewayBuilder(config, reactor, store, run_in_thread=_in_thread)
    if args.seed:
        await seed_cases(store, builder.layouts(), builder.now())
    if args.demo_user:
        password = secrets.token_urlsafe(12)
        try:
            await builder.admin_service().create_user(
                "demo",
                Role.ADMINISTRATOR,
                password,
                Actor("cli:devserver", Role.ADMINISTRATOR, "cli"),
            )
            print(f"user demo (administrator), password {password}", flush=True)
        except UserExistsError:
            print("user demo exists already", flush=True)
    site = builder.admin_site()
    # Bulk-action batches run in the background, as in ``serve``.
    batches = Repeating(
        "the bulk batch runner",
        BatchRunner(builder.bulk_service()).run_once,
        args.batch_interval,
        reactor,
    )
    batches.start()
    port = reactor.listenTCP(args.port, site, interface=args.host)
    address: Any = port.getHost()
    print(
        f"admin site listening on http://{address.host}:{address.port}", file=sys.stderr, flush=True
    )

    async def stop() -> None:
        batches.stop()
        await batches.finished
        await store.close()

    reactor.addSystemEventTrigger("before", "shutdown", lambda: Deferred.fromCoroutine(stop()))
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
        d = ensureDeferred(_serve(cast(GatewayReactor, reactor), args))

        def failed(failure: Any) -> None:
            print(f"devserver: {failure.getErrorMessage()}", file=sys.stderr, flush=True)
            reactor.stop()

        d.addErrback(failed)

    reactor.callWhenRunning(start)
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
