"""``igo-gateway demo --once``: the main job runs to completion on the embedded default and
its summary matches what the store says."""

from __future__ import annotations

import json
import socket
import subprocess
from datetime import date
from pathlib import Path

import pytest

from adapters.storage import open_store
from gateway.crypto import Keyring
from tests.gateway.running import cli_command
from tests.threadpump import ThreadPump

pytestmark = pytest.mark.slow


def free_port_run(count: int = 3) -> int:
    """A port p with p .. p+count-1 free (checked, not reserved)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base: int = probe.getsockname()[1]
        if base + count >= 65535:
            continue
        try:
            for offset in range(count):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", base + offset))
        except OSError:
            continue
        return base
    raise RuntimeError("no free ports")


def test_the_demo_runs_the_whole_cycle_and_reports_what_the_store_holds(tmp_path: Path) -> None:
    directory = tmp_path / "demo"
    port = free_port_run()
    done = subprocess.run(
        cli_command("demo", "--dir", str(directory), "--port", str(port), "--once", "--json"),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(done.stdout)
    assert (summary["files"], summary["lines"], summary["claimFiles"]) == (3, 27, 1)
    assert summary["integralClaims"] == 6
    assert summary["granted"] == 2 * 152000 + 124000 + 93000 + 2 * 101000
    for participant in summary["participants"]:
        assert participant["retourFiles"] == 1
        assert participant["absorbed"] == participant["lines"]

    pump = ThreadPump()
    keys = Keyring.load(directory / "keys.toml")
    store = pump.wait(open_store(f"sqlite:///{directory / 'data' / 'gateway.db'}", pump, keys))
    try:
        rows = pump.wait(store.outcomes.settlement(None, date(2000, 1, 1), date(2100, 1, 1)))
    finally:
        pump.wait(store.close())
    assert len(rows) == summary["lines"]
    assert sum(r.granted or 0 for r in rows) == summary["granted"]
    by_participant = {p["participant"]: p for p in summary["participants"]}
    for agb, p in by_participant.items():
        assert sum(r.granted or 0 for r in rows if r.line.participant == agb) == p["granted"]
