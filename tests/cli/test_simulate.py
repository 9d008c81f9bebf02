"""`mdsync simulate` starts the three simulators and prints their URLs."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from shared.http import make_session

ROOT = Path(__file__).resolve().parents[2]


def _simulate(workdir: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mdsync.cli", "simulate", "--ephemeral"],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_simulate_prints_urls_that_answer(tmp_path: Path) -> None:
    process = _simulate(tmp_path)
    try:
        urls: dict[str, str] = {}
        ca_file = None
        deadline = time.monotonic() + 60
        assert process.stdout is not None
        while time.monotonic() < deadline and ca_file is None:
            line = process.stdout.readline()
            if not line:
                break
            for name in ("entra", "dataverse", "marketo"):
                if line.startswith(f"{name}: https://"):
                    urls[name] = line.split(": ", 1)[1].strip()
            if line.startswith("trusted CA: "):
                ca_file = tmp_path / line.split(": ", 1)[1].strip()
        assert set(urls) == {"entra", "dataverse", "marketo"}
        assert ca_file is not None
        assert ca_file.is_file()
        with make_session(extra_ca_file=ca_file) as session:  # closed: no keep-alive to wait for
            token = session.get(
                f"{urls['marketo']}/identity/oauth/token",
                params={"grant_type": "client_credentials", "client_id": "nobody", "client_secret": "wrong"},
                timeout=10,
            )
            assert token.status_code == 401
            discovery = session.get(
                f"{urls['entra']}/common/v2.0/.well-known/openid-configuration", timeout=10
            )
            assert discovery.status_code in (200, 400)
    finally:
        process.send_signal(signal.SIGINT)
        # Its output read to the end (a full pipe would block its shutdown), as long as a loaded
        # machine needs to stop three servers (it exceeded 20 s once in a loaded full run).
        process.communicate(timeout=120)
    assert process.returncode == 0


def test_ctrl_c_while_it_still_prints_stops_the_servers_cleanly(tmp_path: Path) -> None:
    # Ctrl-C as soon as the first URL shows, before the command waits for it: it must still
    # stop the three servers and exit 0 (it used to die with a KeyboardInterrupt traceback).
    process = _simulate(tmp_path)
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("entra: https://"):
            break
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 0, output
    assert "stopping" in output
    assert "Traceback" not in output
