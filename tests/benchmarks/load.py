"""A load generator for the EPD API that runs in processes of its own, so that the clients
do not share the server's interpreter (its GIL) and cost the server as little as possible.

Each client is a thread with one kept-alive mutual-TLS connection (``http.client``: one
handshake per client, as an EPD that keeps its connection), the certificate of its
participant and its uploads' multipart bodies encoded before the clock starts. The
clients of all processes start together on one barrier and upload as fast as they are
answered — or, paced, each at a fixed interval, so that together they offer a chosen
number of uploads per second. Each keeps the latency of every acknowledgement (request
sent, or when paced the moment it was due, → answer read).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import multiprocessing
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.vsp import PULL_V1, PUSH_V1, send_metadata

__all__ = ["ClientResult", "LoadResult", "multipart_body", "run_load"]

BOUNDARY = "igo-bench-boundary-7d1f"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def multipart_body(sender: str, payload: bytes, filename: str = "declaratie.asc") -> bytes:
    """The VSP-Koppeling upload body: ``berichtMetadata`` JSON (a new traceerId) and the
    ``payload`` file."""
    metadata = json.dumps(send_metadata(sender, "EI").recorded())
    return b"".join(
        [
            f"--{BOUNDARY}\r\n".encode(),
            b'Content-Disposition: form-data; name="berichtMetadata"\r\n',
            b"Content-Type: application/json\r\n\r\n",
            metadata.encode(),
            f"\r\n--{BOUNDARY}\r\n".encode(),
            f'Content-Disposition: form-data; name="payload"; filename="{filename}"\r\n'.encode(),
            b"Content-Type: application/octet-stream\r\n\r\n",
            payload,
            f"\r\n--{BOUNDARY}--\r\n".encode(),
        ]
    )


@dataclass(frozen=True)
class ClientResult:
    latencies: tuple[float, ...]
    statuses: tuple[int, ...]
    finished: float  # time.monotonic() of the last answer (one clock for all processes)


@dataclass(frozen=True)
class LoadResult:
    clients: tuple[ClientResult, ...]
    seconds: float  # from the barrier's release to the last answer of any client

    @property
    def latencies(self) -> tuple[float, ...]:
        return tuple(x for c in self.clients for x in c.latencies)

    @property
    def failures(self) -> int:
        return sum(status != 204 for c in self.clients for status in c.statuses)


@dataclass(frozen=True)
class ClientPlan:
    """One client: its participant and the files it uploads, in order."""

    participant: str
    cert: Path
    key: Path
    files: tuple[bytes, ...]
    interval: float = 0.0  # seconds between sends when paced (0: as fast as answered)
    offset: float = 0.0  # when paced: this client's first send after the start


def _context(ca: Path, cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    context.load_cert_chain(str(cert), str(key))
    return context


def _client(port: int, ca: Path, plan: ClientPlan, start: Any) -> ClientResult:
    bodies = [multipart_body(plan.participant, f) for f in plan.files]
    headers = {"Content-Type": CONTENT_TYPE, "Connection": "keep-alive"}
    connection = http.client.HTTPSConnection(
        "localhost", port, context=_context(ca, plan.cert, plan.key), timeout=120
    )
    latencies: list[float] = []
    statuses: list[int] = []
    try:
        connection.request("GET", f"{PULL_V1}/berichten")  # the handshake, before the clock
        connection.getresponse().read()
        start.wait()
        opened = time.monotonic()
        for n, body in enumerate(bodies):
            began = time.monotonic()
            if plan.interval:
                # Paced: the latency counts from when the upload was due, so that an
                # answer that comes late also delays (and charges) the uploads after it.
                due = opened + plan.offset + n * plan.interval
                if due > began:
                    time.sleep(due - began)
                began = due
            connection.request("POST", f"{PUSH_V1}/berichten", body=body, headers=headers)
            answer = connection.getresponse()
            answer.read()
            latencies.append(time.monotonic() - began)
            statuses.append(answer.status)
        finished = time.monotonic()
    finally:
        connection.close()
    return ClientResult(tuple(latencies), tuple(statuses), finished)


def _process(
    port: int, ca: Path, plans: Sequence[ClientPlan], start: Any, out: Any, index: int
) -> None:
    results: list[ClientResult | None] = [None] * len(plans)
    errors: list[str] = []

    def run(n: int, plan: ClientPlan) -> None:
        try:
            results[n] = _client(port, ca, plan, start)
        except Exception as exc:  # reported to the parent, which raises
            errors.append(f"{type(exc).__name__}: {exc}")
            start.abort()

    threads = [threading.Thread(target=run, args=(n, p)) for n, p in enumerate(plans)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    out.put((index, [r for r in results if r is not None], errors))


def run_load(
    port: int,
    ca: Path,
    plans: Sequence[ClientPlan],
    processes: int = 2,
    *,
    on_start: Callable[[], None] | None = None,
) -> LoadResult:
    """Run ``plans`` against ``https://localhost:port`` from ``processes`` processes (the
    clients dealt round-robin); ``on_start`` is called as the clock starts."""
    processes = max(1, min(processes, len(plans)))
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(len(plans) + 1)
    out = ctx.Queue()
    shares = [list(plans[n::processes]) for n in range(processes)]
    workers = [
        ctx.Process(target=_process, args=(port, ca, share, start, out, n), daemon=True)
        for n, share in enumerate(shares)
    ]
    for worker in workers:
        worker.start()
    with contextlib.suppress(threading.BrokenBarrierError):  # a client failed: reported below
        start.wait(timeout=300)
    began = time.monotonic()
    if on_start is not None:
        on_start()
    clients: list[ClientResult] = []
    errors: list[str] = []
    for _ in workers:
        _, results, failed = out.get(timeout=3600)
        clients.extend(results)
        errors.extend(failed)
    for worker in workers:
        worker.join(30)
    if errors:
        raise RuntimeError(f"{len(errors)} client(s) failed; the first: {errors[0]}")
    finished = max((c.finished for c in clients), default=began)
    return LoadResult(tuple(clients), finished - began)
