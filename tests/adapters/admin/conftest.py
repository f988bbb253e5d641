"""The admin site in memory: a real SQLite store on the test's thread pump, the site driven
over in-memory connections by a tiny browser that keeps its cookies."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.testing import StringTransport
from twisted.web import server

from adapters.admin.demo import SeededCases, seed_cases
from adapters.admin.site import build_admin_site, build_bulk_service
from adapters.storage import SqlMessageStore, open_store
from adapters.storage.admin import SqlAdminStore
from adapters.storage.batches import SqlBatchStore
from adapters.storage.reprocess import SqlReprocessStore
from adapters.storage.search import SqlSearchStore
from gateway.admin.accounts import Actor, PasswordHasher, Role, ScryptParameters
from gateway.admin.bulk import BulkService
from gateway.admin.service import AdminService
from gateway.ei import LayoutRegistry
from gateway.loading import load_layouts
from gateway.reprocess import Reprocessor
from tests.threadpump import ThreadPump

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"
FAST = PasswordHasher(ScryptParameters(log2_n=10))
XSS_NAME = "<script>alert('naam')</script>.asc"
XSS_COMMENT = "<img src=x onerror=alert(1)> graag snel"


class _Connection(StringTransport):
    def __init__(self, head_only: bool = False) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.done: Deferred[None] = Deferred()
        self.head_only = head_only  # an answer to HEAD: no body follows its headers

    def write(self, data: bytes) -> None:
        super().write(data)  # type: ignore[no-untyped-call]
        if not self.done.called and _complete(self.io.getvalue(), self.head_only):
            self.done.callback(None)

    def writeSequence(self, data: Iterable[bytes]) -> None:
        self.write(b"".join(data))  # the headers come this way


def _complete(raw: bytes, head_only: bool = False) -> bool:
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        return False
    if head_only:
        return True
    lower = head.lower()
    if b"transfer-encoding: chunked" in lower:
        return body.endswith(b"0\r\n\r\n")
    match = re.search(rb"content-length: (\d+)", lower)
    return match is not None and len(body) >= int(match.group(1))


def _dechunk(body: bytes) -> bytes:
    out = bytearray()
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2 :]
    return bytes(out)


@dataclass
class Response:
    status: int
    headers: dict[str, list[str]]
    body: bytes

    def header(self, name: str) -> str:
        return self.headers.get(name, [""])[0]

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def csrf(self) -> str:
        match = re.search(r'name="csrf" value="([^"]*)"', self.text)
        assert match is not None, "no CSRF field on the page"
        return match.group(1)


@dataclass
class Browser:
    site: server.Site
    pump: ThreadPump
    cookies: dict[str, str] = field(default_factory=dict)

    def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> Response:
        channel = self.site.buildProtocol(IPv4Address("TCP", "10.0.0.7", 50000))
        assert channel is not None
        transport = _Connection(head_only=method == "HEAD")
        channel.makeConnection(transport)
        lines = [f"{method} {path} HTTP/1.1", "Host: localhost"]
        if self.cookies:
            lines.append("Cookie: " + "; ".join(f"{k}={v}" for k, v in self.cookies.items()))
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}")
        if body or method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        channel.dataReceived(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        self.pump.wait(transport.done)
        raw = transport.io.getvalue()
        head, _, payload = raw.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        parsed: dict[str, list[str]] = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            parsed.setdefault(name.strip().lower(), []).append(value.strip())
        if "chunked" in parsed.get("transfer-encoding", [""])[0]:
            payload = _dechunk(payload)
        for cookie in parsed.get("set-cookie", []):
            name, _, rest = cookie.partition("=")
            value = rest.split(";")[0]
            if "Max-Age=0" in cookie:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        return Response(int(status_line.split(" ")[1]), parsed, payload)

    def get(self, path: str, headers: dict[str, str] | None = None) -> Response:
        return self.request("GET", path, headers=headers)

    def post(self, path: str, form: dict[str, str]) -> Response:
        return self.request(
            "POST",
            path,
            urlencode(form).encode(),
            {"Content-Type": "application/x-www-form-urlencoded"},
        )

    def login(self, name: str, password: str = PASSWORD) -> Response:
        page = self.get("/login")
        return self.post("/login", {"csrf": page.csrf(), "name": name, "password": password})


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@dataclass
class AdminWorld:
    pump: ThreadPump
    store: SqlMessageStore
    admin: SqlAdminStore
    service: AdminService
    site: server.Site
    clock: Clock
    seeded: SeededCases
    xss: SeededCases
    bulk: BulkService | None = None

    def browser(self) -> Browser:
        return Browser(self.site, self.pump)

    def user(self, name: str, role: Role) -> None:
        root = Actor("cli:test", Role.ADMINISTRATOR, "cli")
        self.pump.wait(self.service.create_user(name, role, PASSWORD, root))

    def token(self, name: str) -> str:
        root = Actor("cli:test", Role.ADMINISTRATOR, "cli")
        token: str = self.pump.wait(self.service.create_token(name, timedelta(days=1), root))
        return token


@pytest.fixture(scope="session")
def layouts() -> LayoutRegistry:
    return load_layouts()


@pytest.fixture
def world(tmp_path: Path, layouts: LayoutRegistry) -> Iterator[AdminWorld]:
    pump = ThreadPump()
    store = pump.wait(open_store(f"sqlite:///{tmp_path / 'admin.db'}", pump))
    admin = SqlAdminStore(store.database)
    clock = Clock()
    seeded = pump.wait(seed_cases(store, layouts, T0))
    xss = pump.wait(
        seed_cases(store, layouts, T0, tag="xss", filename=XSS_NAME, comment=XSS_COMMENT)
    )
    site_service = AdminService(
        admin,
        store,
        layouts,
        clock,
        hasher=FAST,
        search_store=SqlSearchStore(store.database, store.codec),
    )
    bulk = build_bulk_service(admin, SqlBatchStore(store.database), clock, cases=site_service)
    reprocessor = Reprocessor(
        store, SqlReprocessStore(store.database, store.codec), layouts, now=clock
    )
    site = build_admin_site(site_service, bulk=bulk, reprocessor=reprocessor)
    service = AdminService(admin, store, layouts, clock, hasher=FAST)
    world = AdminWorld(pump, store, admin, service, site, clock, seeded, xss, bulk)
    world.user("otto", Role.OPERATOR)
    world.user("vera", Role.VIEWER)
    world.user("bea", Role.ADMINISTRATOR)
    try:
        yield world
    finally:
        pump.wait(store.close())
