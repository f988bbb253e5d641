"""A bare intake server: the least an EPD upload endpoint must do, as a yardstick for the
gateway's own intake (``python -m tests.benchmarks.gateway --vs-bare``).

Run as ``python -m tests.benchmarks.bare --cert … --key … --trust … --database …``; it
prints ``listening on PORT`` once it accepts connections and runs until it is terminated.

It does only this: mutual TLS with the gateway's EPD API settings (the same
:func:`adapters.tls.server_context_factory`: TLS 1.2+, ECDHE/AEAD, a verified client
certificate required, the same certificates), ``POST …/rest-push/v1/berichten`` split by
the gateway's own multipart parser (:func:`adapters.epd_api.http.parse_upload`), and the
upload (metadata, payload, file name, the client certificate's fingerprint) inserted into
SQLite (WAL, ``synchronous=FULL``) by one writer thread that commits whatever has queued
up in one transaction (group commit); ``204`` is answered once the commit is done. Any
``GET`` is answered ``[]`` (the load generator's first request, before the clock), except
``GET /commits``: the number of transactions committed so far. No
validation, no journal, no identities, no metrics, no logs.
"""

from __future__ import annotations

import argparse
import queue
import sqlite3
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from twisted.internet import defer, reactor
from twisted.web import resource, server

from adapters.epd_api.http import UploadFormError, parse_upload
from adapters.tls import client_identity, server_context_factory

__all__ = ["BareIntake", "GroupCommitter", "main"]

_Row = tuple[str, bytes, bytes, str | None]


class GroupCommitter:
    """One writer thread; each batch is everything queued when the previous commit ended."""

    def __init__(self, database: Path) -> None:
        self.connection = sqlite3.connect(database, check_same_thread=False)
        self.connection.execute("PRAGMA journal_mode=WAL")
        self.connection.execute("PRAGMA synchronous=FULL")
        self.connection.execute(
            "CREATE TABLE IF NOT EXISTS uploads (id INTEGER PRIMARY KEY, sender TEXT,"
            " metadata BLOB, payload BLOB, filename TEXT)"
        )
        self.connection.commit()
        self.pending: queue.SimpleQueue[tuple[_Row, defer.Deferred[None]]] = queue.SimpleQueue()
        self.commits = 0
        threading.Thread(target=self._write, daemon=True).start()

    def insert(self, row: _Row) -> defer.Deferred[None]:
        done: defer.Deferred[None] = defer.Deferred()
        self.pending.put((row, done))
        return done

    def _write(self) -> None:
        while True:
            batch = [self.pending.get()]
            while True:
                try:
                    batch.append(self.pending.get_nowait())
                except queue.Empty:
                    break
            with self.connection:
                self.connection.executemany(
                    "INSERT INTO uploads (sender, metadata, payload, filename) VALUES (?, ?, ?, ?)",
                    [row for row, _ in batch],
                )
            self.commits += 1
            for _, done in batch:
                reactor.callFromThread(done.callback, None)  # type: ignore[attr-defined]


class BareIntake(resource.Resource):
    isLeaf = True

    def __init__(self, committer: GroupCommitter) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.committer = committer

    def render_GET(self, request: server.Request) -> bytes:
        if request.path == b"/commits":  # for the benchmark, read after a run
            return str(self.committer.commits).encode()
        request.setHeader(b"content-type", b"application/json")
        return b"[]"

    def render_POST(self, request: server.Request) -> bytes | int:
        peer = client_identity(request)
        try:
            metadata, payload, filename = parse_upload(request, 64 * 1024)
        except UploadFormError as problem:
            request.setResponseCode(problem.status)
            return problem.code.encode()
        sender = peer.fingerprint_sha256 if peer is not None else ""
        done = self.committer.insert((sender, metadata, payload, filename))

        def answer(_: None) -> None:
            request.setResponseCode(204)
            request.finish()

        done.addCallback(answer)
        return server.NOT_DONE_YET


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.bare")
    parser.add_argument("--cert", type=Path, required=True)
    parser.add_argument("--key", type=Path, required=True)
    parser.add_argument("--trust", type=Path, required=True)
    parser.add_argument("--database", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    site = server.Site(BareIntake(GroupCommitter(args.database)))
    site.displayTracebacks = False
    options = server_context_factory(args.cert, args.key, args.trust)
    port = reactor.listenSSL(args.port, site, options, interface="127.0.0.1")  # type: ignore[attr-defined]
    print(f"listening on {port.getHost().port}", flush=True)
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
