"""``igo-gateway demo --once``: the main job runs to completion on the embedded default and
its summary matches what the store says."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import time
from datetime import date
from pathlib import Path

import pytest

from adapters.storage import open_store
from gateway.crypto import Keyring
from tests.gateway.running import cli_command
from tests.threadpump import ThreadPump

pytestmark = pytest.mark.slow


def free_port_run(count: int = 4) -> int:
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
    # 27 lines of the three EPDs and the lone late intake (which waits, unbundled).
    assert (summary["files"], summary["lines"], summary["claimFiles"]) == (3, 28, 1)
    assert summary["integralClaims"] == 6
    # Woman A's three integral lines granted; woman B's three come back 0320 (the insurer
    # knows her under another member number): work for the administrator.
    assert summary["granted"] == 152000 + 124000 + 101000
    for participant in summary["participants"]:
        assert participant["retourFiles"] >= 1
        assert participant["absorbed"] + participant["waiting"] == participant["lines"]
    # The queue holds work to practise on: an insurer rejection to correct, a phase
    # waiting past its date, an upload rejected at intake.
    assert summary["cases"]["rejected_line"] >= 1
    assert summary["cases"]["waiting_phase"] >= 1
    assert summary["cases"]["intake_rejected"] >= 1

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


def test_a_busy_port_is_named_with_its_component_and_the_flag_that_moves_it(
    tmp_path: Path,
) -> None:
    port = free_port_run()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port + 1))
        taken.listen()
        done = subprocess.run(
            cli_command("demo", "--dir", str(tmp_path / "demo"), "--port", str(port), "--once"),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 1
    assert f"port {port + 1} for the insurer simulator is in use" in done.stderr
    assert "--port N" in done.stderr
    assert "Traceback" not in done.stderr


def _read_until(process: subprocess.Popen[str], marker: str, seconds: float) -> str:
    """stdout up to the line holding ``marker`` (empty if it never came in ``seconds``).
    Read from the pipe itself: a buffered reader may hold lines that ``select`` cannot see."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    seen = b""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        ready, _, _ = select.select([fd], [], [], max(0.0, end - time.monotonic()))
        if not ready:
            break
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        seen += chunk
        text = seen.decode("utf-8", errors="replace")
        if marker in text and text.endswith("\n"):
            return text
    return ""


def test_the_insurer_simulator_runs_as_long_as_the_gateway(tmp_path: Path) -> None:
    """After the summary the gateway keeps running, and so does the insurer it polls; the
    demo says where to log in."""
    port = free_port_run()
    process = subprocess.Popen(
        cli_command("demo", "--dir", str(tmp_path / "demo"), "--port", str(port)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        shown = _read_until(process, "metrics ", 240)
        assert f"http://127.0.0.1:{port + 3}/login" in shown
        assert "log in as user demo" in shown
        assert f"insurer simulator  https://localhost:{port + 1}" in shown
        assert process.poll() is None
        with socket.create_connection(("127.0.0.1", port + 1), timeout=5):
            pass  # the simulator still accepts connections
    finally:
        process.send_signal(signal.SIGINT)
        try:
            _, stderr = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
    assert process.returncode == 0, stderr
    assert "Connection refused" not in stderr
