"""A server of this project as a real process for end-to-end tests: started with its
command, ready once its log has named every port it listens on, stopped with SIGTERM
(killed if it does not stop), its log kept for assertions and failure messages."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from pathlib import Path

__all__ = ["START_SECONDS", "ServerProcess"]

START_SECONDS = 30.0


class ServerProcess:
    """Run ``command`` in ``cwd``; ``ports`` maps a name to the log pattern whose first
    group is that port. :meth:`start` again after :meth:`stop` restarts it. ``env`` is
    added to this process's environment for the server (e.g. ``LD_PRELOAD``)."""

    def __init__(
        self,
        command: list[str],
        cwd: Path,
        ports: Mapping[str, re.Pattern[str]],
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.command = command
        self.env = dict(env or {})
        self.cwd = cwd
        self.patterns = dict(ports)
        self.ports: dict[str, int] = {}
        self.process: subprocess.Popen[bytes] | None = None
        self.log: list[str] = []
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        assert self.process is None, "already running"
        self.ports = {}
        process = self.process = subprocess.Popen(
            self.command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=self.cwd,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
        )
        ready = threading.Event()

        def read() -> None:
            assert process.stderr is not None
            for raw in process.stderr:
                line = raw.decode("utf-8", "replace")
                self.log.append(line)
                for name, pattern in self.patterns.items():
                    match = pattern.search(line)
                    if match:
                        self.ports[name] = int(match.group(1))
                if self.ports.keys() == self.patterns.keys():
                    ready.set()

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + START_SECONDS
        while not ready.wait(0.1):
            if process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.command[3:4]} did not start:\n" + self.logs())

    def stop(self) -> int:
        """SIGTERM, and the exit status once it has shut down."""
        process, self.process = self.process, None
        if process is None:
            return 0
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            status = process.wait(timeout=START_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            status = process.wait()
        if self._reader is not None:
            self._reader.join(5)
        return status

    def logs(self) -> str:
        return "".join(self.log)
