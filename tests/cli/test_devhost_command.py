"""`mdsync devhost` serves the real function app: the webhook and flow-step routes answer on
localhost and refuse calls without the right function key."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from mdsync.cli import LOCAL_HOST_KEY
from simulators.tls import TlsFiles

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_devhost_serves_routes_and_checks_keys(tmp_path: Path, tls: TlsFiles) -> None:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "mdsync.cli", "devhost", "--port", str(port), "--root", str(ROOT)],
        cwd=tmp_path,
        # No simulators here: keep the timers quiet; only the HTTP routes are under test.
        env={
            **os.environ,
            "MARKETO_POLL_SCHEDULE": "0 0 0 1 1 *",
            "DYNAMICS_SWEEP_SCHEDULE": "0 0 0 1 1 *",
            "MDSYNC_CA_FILE": str(tls.ca_file),
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(f"{base}/dynamics/webhook", timeout=1)
                break
            except requests.ConnectionError:
                assert process.poll() is None, process.stdout.read() if process.stdout else ""
                assert time.monotonic() < deadline
                time.sleep(0.2)
        for route in ("dynamics/webhook", "marketo/sync-person"):
            assert requests.post(f"{base}/{route}", json={}, timeout=5).status_code == 401
            wrong = requests.post(f"{base}/{route}", json={}, headers={"x-functions-key": "nope"}, timeout=5)
            assert wrong.status_code == 401
            # The right function key gets past the host; the function's own secret check answers.
            answered = requests.post(
                f"{base}/{route}", json={}, headers={"x-functions-key": LOCAL_HOST_KEY}, timeout=10
            )
            assert answered.status_code == 401
            assert "x-mdsync-key" in answered.json()["error"]
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    assert "dynamics_webhook" in output
    assert "sync_person_to_microsoft" in output
