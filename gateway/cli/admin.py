"""``igo-gateway admin``: the admin site's accounts, from the command line.

``create-user`` bootstraps the first administrator (the password is asked twice at a
terminal, or read as one line from standard input — never taken from the command line,
where other users of the machine could read it); ``create-token`` makes an API token for
scripts; ``list-users`` shows who has access. The leaver process: ``disable-user`` (and
``enable-user``), ``reset-password``, ``set-role`` and ``revoke`` (sessions and/or API
tokens). Each is written to the audit log as done by ``cli:<the OS user>``.

:func:`admin_session` is shared by ``igo-gateway cases`` and ``igo-gateway audit``: the
config's store opened without a reactor, and the admin service on it.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from adapters.admin.blocking import Blocking, opened_stores
from adapters.storage.keys import check_store_keys
from gateway.admin.accounts import AccountError, Actor, Role
from gateway.admin.service import AdminService
from gateway.app import make_data_dirs
from gateway.builder import GatewayBuilder, load_keyring
from gateway.config import ConfigError, load_config
from gateway.crypto import CryptoError
from gateway.ei import LayoutError
from gateway.errors import ErrorKind, GatewayError
from gateway.ports.admin import UserExistsError
from gateway.ports.messages import StoreError

__all__ = ["AdminSession", "admin_session", "cli_actor", "register"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
T = TypeVar("T")


def exit_status(kind: ErrorKind) -> int:
    """The CLI's one mapping of an error's kind to the exit status: 2 (usage) for input
    that is wrong as it is, 1 for every other failure."""
    return EXIT_USAGE if kind is ErrorKind.INVALID else EXIT_FAILED


class CliError(GatewayError):
    """A problem to report in one line, with the exit status to end with; ``kind`` is the
    wrapped error's when there is one."""

    code = "cli"
    kind = ErrorKind.INVALID

    def __init__(
        self, message: str, status: int = EXIT_FAILED, *, kind: ErrorKind | None = None
    ) -> None:
        super().__init__(message, kind=kind)
        self.status = status


def cli_actor() -> Actor:
    """Whoever runs the command: it has the store's own rights, so every permission."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return Actor(f"cli:{user}", Role.ADMINISTRATOR, "cli")


@dataclass(frozen=True, slots=True)
class AdminSession:
    run: Blocking
    builder: GatewayBuilder

    @property
    def service(self) -> AdminService:
        return self.builder.admin_service()


@contextmanager
def admin_session(config_path: Path) -> Iterator[AdminSession]:
    """The gateway's services (:class:`~gateway.builder.GatewayBuilder`) on the store of
    the config at ``config_path``, without a reactor; raises :class:`CliError`. No
    bundling from here: the running gateway's next scheduled run decides again what a
    broken bundle or a closed phase changed."""
    try:
        config = load_config(config_path, check_files=False)
    except ConfigError as exc:
        raise CliError(str(exc), EXIT_USAGE, kind=exc.kind) from None
    try:
        keyring = load_keyring(config)
    except CryptoError as exc:
        raise CliError(str(exc), kind=exc.kind) from None

    try:
        make_data_dirs(config)  # a first account may come before the first start
        with opened_stores(config.store.url, keyring) as stores:
            store = stores.store
            builder = GatewayBuilder(config, stores.run, store, keyring=keyring)
            try:
                builder.layouts()
                builder.catalogue()
                stores.run.wait(check_store_keys(store))
            except (CryptoError, LayoutError, ConfigError) as exc:
                raise CliError(str(exc), kind=exc.kind) from None
            stores.run.wait(builder.store.admin.key_audit_chain(builder.now()))
            yield AdminSession(stores.run, builder)
    except StoreError as exc:
        raise CliError(f"store: {exc}", kind=exc.kind) from None


def register(sub: Any) -> None:
    group = sub.add_parser("admin", help="accounts of the admin site")
    commands = group.add_subparsers(dest="admin_command", metavar="COMMAND", required=True)

    p = commands.add_parser(
        "create-user",
        help="add a user of the admin site",
        description="Add a user with a role: viewer (reads cases, masked), operator (also "
        "resolves cases and shows client data), administrator (also reads the audit log). "
        "The password (at least 12 characters) is asked twice at a terminal, or read as one "
        "line from standard input.",
    )
    p.add_argument("--config", type=Path, required=True, metavar="FILE")
    p.add_argument("--name", required=True, help="user name: lower-case letters, digits, . _ -")
    p.add_argument("--role", required=True, choices=[r.value for r in Role])
    p.set_defaults(handler=_create_user)

    p = commands.add_parser(
        "create-token",
        help="make an API token for a user (for scripts)",
        description="Print a new API token for USER, valid for --days days: send it as "
        "'Authorization: Bearer TOKEN' to the admin site's /api/. It acts with the user's "
        "role and is shown only once; the store keeps only its hash.",
    )
    p.add_argument("--config", type=Path, required=True, metavar="FILE")
    p.add_argument("--name", required=True)
    p.add_argument("--days", type=int, default=90)
    p.set_defaults(handler=_create_token)

    p = commands.add_parser(
        "list-users", help="the users of the admin site, their roles and live sessions"
    )
    p.add_argument("--config", type=Path, required=True, metavar="FILE")
    p.set_defaults(handler=_list_users)

    p = commands.add_parser(
        "disable-user",
        help="disable a user and end its sessions and API tokens (a leaver)",
        description="The user can no longer log in; its browser sessions and API tokens end "
        "at once. Refused for the last active administrator.",
    )
    p.add_argument("--config", type=Path, required=True, metavar="FILE")
    p.add_argument("--name", required=True)
    p.set_defaults(handler=_disable_user)

    p = commands.add_parser("enable-user", help="let a disabled user log in again")
    p.add_argument("--config", type=Path, required=True, metavar="FILE")
    p.add_argument("--name", required=True)
    p.set_defaults(handler=_enable_user)

    p = commands.add_parser(
        "reset-password",
        help="give a user a new password and end its sessions and API tokens",
        description="The new password is asked twice at a terminal, or read as one line from "
        "standard input.",
    )
    p.add_argument("--config", type=Path, required=True, metavar="FILE")
    p.add_argument("--name", required=True)
    p.set_defaults(handler=_reset_password)

    p = commands.add_parser(
        "set-role",
        help="change a user's role (applies at once)",
        description="Refused when it would leave no active administrator.",
    )
    p.add_argument("--config", type=Path, required=True, metavar="FILE")
    p.add_argument("--name", required=True)
    p.add_argument("--role", required=True, choices=[r.value for r in Role])
    p.set_defaults(handler=_set_role)

    p = commands.add_parser("revoke", help="end a user's browser sessions and/or API tokens")
    p.add_argument("--config", type=Path, required=True, metavar="FILE")
    p.add_argument("--name", required=True)
    p.add_argument(
        "--only",
        choices=["sessions", "tokens"],
        help="only the browser sessions, or only the API tokens (default: both)",
    )
    p.set_defaults(handler=_revoke)


def _read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Password again: ") != first:
            raise CliError("the passwords differ")
        return first
    line = sys.stdin.readline()
    return line.removesuffix("\n").removesuffix("\r")


def _report(command: str, error: CliError) -> int:
    print(f"igo-gateway admin {command}: {error}", file=sys.stderr)
    return error.status


def _create_user(args: argparse.Namespace) -> int:
    try:
        password = _read_password()
        with admin_session(args.config) as session:
            session.run.wait(
                session.service.create_user(args.name, Role(args.role), password, cli_actor())
            )
    except CliError as exc:
        return _report("create-user", exc)
    except (AccountError, UserExistsError) as exc:
        return _report("create-user", CliError(str(exc), kind=exc.kind))
    print(f"user {args.name} created ({args.role})")
    return EXIT_OK


def _create_token(args: argparse.Namespace) -> int:
    if not 1 <= args.days <= 366:
        return _report("create-token", CliError("--days must be 1 to 366", EXIT_USAGE))
    try:
        with admin_session(args.config) as session:
            token = session.run.wait(
                session.service.create_token(args.name, timedelta(days=args.days), cli_actor())
            )
    except CliError as exc:
        return _report("create-token", exc)
    except AccountError as exc:
        return _report("create-token", CliError(str(exc), kind=exc.kind))
    print(token)
    return EXIT_OK


def _list_users(args: argparse.Namespace) -> int:
    try:
        with admin_session(args.config) as session:
            views = session.run.wait(session.service.users(cli_actor()))
    except CliError as exc:
        return _report("list-users", exc)
    for view in views:
        user = view.user
        state = "disabled" if user.disabled else "active"
        live = f"{view.sessions} sessions, {view.tokens} tokens"
        print(f"{user.name:<24} {user.role.value:<14} {state:<9} {live}")
    return EXIT_OK


def _manage(
    args: argparse.Namespace, command: str, work: Callable[[AdminService, Actor], Awaitable[T]]
) -> tuple[int, T | None]:
    try:
        with admin_session(args.config) as session:
            return EXIT_OK, session.run.wait(work(session.service, cli_actor()))
    except CliError as exc:
        return _report(command, exc), None
    except LookupError:
        return _report(command, CliError(f"no user {args.name!r}", kind=ErrorKind.NOT_FOUND)), None
    except AccountError as exc:
        return _report(command, CliError(str(exc), kind=exc.kind)), None


def _disable_user(args: argparse.Namespace) -> int:
    status, ended = _manage(
        args, "disable-user", lambda service, actor: service.disable_user(actor, args.name)
    )
    if status == EXIT_OK:
        print(f"user {args.name} disabled; {ended} sessions and tokens ended")
    return status


def _enable_user(args: argparse.Namespace) -> int:
    status, _ = _manage(
        args, "enable-user", lambda service, actor: service.enable_user(actor, args.name)
    )
    if status == EXIT_OK:
        print(f"user {args.name} enabled")
    return status


def _reset_password(args: argparse.Namespace) -> int:
    try:
        password = _read_password()
    except CliError as exc:
        return _report("reset-password", exc)
    status, ended = _manage(
        args,
        "reset-password",
        lambda service, actor: service.reset_password(actor, args.name, password),
    )
    if status == EXIT_OK:
        print(f"user {args.name}: new password set; {ended} sessions and tokens ended")
    return status


def _set_role(args: argparse.Namespace) -> int:
    role = Role(args.role)
    status, _ = _manage(
        args, "set-role", lambda service, actor: service.change_role(actor, args.name, role)
    )
    if status == EXIT_OK:
        print(f"user {args.name} is now {role.value}")
    return status


def _revoke(args: argparse.Namespace) -> int:
    kinds = {"sessions": {"session"}, "tokens": {"token"}}.get(args.only, {"session", "token"})
    status, ended = _manage(
        args,
        "revoke",
        lambda service, actor: service.revoke_sessions(actor, args.name, frozenset(kinds)),
    )
    if status == EXIT_OK:
        print(f"user {args.name}: {ended} ended")
    return status
