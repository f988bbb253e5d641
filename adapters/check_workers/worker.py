"""A check worker: ``python -m adapters.check_workers.worker``, started by
:class:`adapters.check_workers.CheckWorkers`. It reads one request frame at a time from
its standard input (:mod:`adapters.check_workers.wire`), runs the intake checks on the
payload (:func:`gateway.upload_checks.check_upload`, with the shipped layouts, as the gateway's
intake does) and hashes it, and writes the reply frame to its standard output. It ends
when its input ends. It writes nothing else: no log line, no client data.
"""

from __future__ import annotations

import hashlib
import signal
import sys
from typing import BinaryIO

from adapters.check_workers.wire import read_frame, reply_failed, reply_for, unpack_request
from gateway.ei import LayoutRegistry
from gateway.loading import load_layouts
from gateway.upload_checks import check_upload

__all__ = ["main", "serve"]


def serve(registry: LayoutRegistry, requests: BinaryIO, replies: BinaryIO) -> int:
    """Answer every request on ``requests`` until it ends; how many were answered. A
    request whose checks raise gets a failed reply (the gateway then checks the file
    itself, and reports what it finds there)."""
    answered = 0
    while (data := read_frame(requests)) is not None:
        request_id, payload, traceer_id, participant = unpack_request(data)
        try:
            result, lines = check_upload(registry, payload, traceer_id, participant)
            reply = reply_for(request_id, hashlib.sha256(payload).hexdigest(), result, lines)
        except Exception:
            reply = reply_failed(request_id)
        replies.write(reply)
        replies.flush()
        answered += 1
    return answered


def main() -> int:
    # The gateway stops its workers by closing their input; an interrupt meant for the
    # gateway (Ctrl-C in a terminal reaches the whole process group) must not end a
    # worker before the gateway has had its answers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    serve(load_layouts(), sys.stdin.buffer, sys.stdout.buffer)
    return 0


if __name__ == "__main__":  # pragma: no cover - run as a process by CheckWorkers
    sys.exit(main())
