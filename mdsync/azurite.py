"""Azurite's table service on a free local port, for the tests and the bench: the Azure Table
state store's production code path against the emulator (npm package ``azurite``).

The Makefile's ``test`` target installs it into ``node_modules``; if it is missing, this runs
that same npm command once. Without node/npm it raises AzuriteError saying what to install.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
AZURITE_BIN = REPO_ROOT / "node_modules" / ".bin" / "azurite-table"
NPM_INSTALL = ["npm", "install", "--no-save", "--no-audit", "--no-fund", "--loglevel=error", "azurite@3"]
# The well-known development account every Azure Storage emulator accepts.
DEV_ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


class AzuriteError(RuntimeError):
    """Azurite could not be installed or started."""


def connection_string(port: int, key: str = DEV_ACCOUNT_KEY) -> str:
    return (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={key};TableEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ensure_installed() -> Path:
    if AZURITE_BIN.exists():
        return AZURITE_BIN
    if shutil.which("npm") is None or shutil.which("node") is None:
        raise AzuriteError(
            f"Azurite is not installed ({AZURITE_BIN} is missing) and node/npm are not on PATH. "
            f"Install Node.js, then run `{' '.join(NPM_INSTALL)}` in {REPO_ROOT} (or `make test`)."
        )
    result = subprocess.run(
        NPM_INSTALL, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False
    )
    if result.returncode != 0 or not AZURITE_BIN.exists():
        command = " ".join(NPM_INSTALL)
        raise AzuriteError(f"`{command}` failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return AZURITE_BIN


def _wait_until_listening(port: int, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AzuriteError(f"azurite-table exited early with code {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise AzuriteError(f"azurite-table did not listen on port {port} within {timeout} s")


@dataclass(frozen=True)
class Azurite:
    """A running Azurite table service: its connection string and its Node.js process."""

    url: str
    pid: int

    def cpu_seconds(self) -> float:
        """The CPU time (user + system) Azurite's process has used so far (Linux ``/proc``): what
        the bench charges to the emulator, whatever else runs on the machine."""
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text(encoding="ascii")
        except OSError as exc:
            raise AzuriteError(f"cannot read Azurite's CPU time: {exc}") from exc
        fields = stat.rsplit(")", 1)[1].split()  # the name in parentheses may hold spaces
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def started(workdir: Path, *, timeout: float = 30.0, binary: Path | None = None) -> Iterator[Azurite]:
    """A running Azurite table service kept in memory (``binary``: another install's
    ``azurite-table``, to compare versions)."""
    binary = binary or ensure_installed()
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    command = [
        str(binary),
        "--inMemoryPersistence",
        "--disableTelemetry",
        "--silent",
        "--tableHost",
        "127.0.0.1",
        "--tablePort",
        str(port),
    ]
    process = subprocess.Popen(command, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_until_listening(port, process, timeout)
        yield Azurite(connection_string(port), process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def running(workdir: Path, *, timeout: float = 30.0) -> Iterator[str]:
    """A running Azurite table service kept in memory; yields its connection string."""
    with started(workdir, timeout=timeout) as server:
        yield server.url
