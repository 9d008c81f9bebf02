"""Azurite's table service on a free local port, for the tests and the bench: the Azure Table
state store's production code path against the emulator (npm package ``azurite``).

The version is pinned: Azurite 3.35 found an entity by its PartitionKey and then scanned that
partition, so every write into a partition of 50,000 entities cost Azurite ~7 ms (a sync-log day's
partition in a 100,000-change burst); 3.36 and later look the RowKey up first (0.1 ms, the
partition's size no longer counts; docs/performance.md has the measurements). Its package asks
for Node.js 22; it runs on Node.js 20 (this project's machines), which npm would otherwise answer
with 3.35, the newest release that asks for 20. ``make test`` (``python -m mdsync.azurite``)
and every start install it into ``node_modules`` when another version, or none, is there.
Without node/npm it raises AzuriteError saying what to install.
"""

from __future__ import annotations

import json
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
AZURITE_PACKAGE = REPO_ROOT / "node_modules" / "azurite" / "package.json"
AZURITE_VERSION = "3.37.0"
NPM_INSTALL = [
    "npm",
    "install",
    "--no-save",
    "--no-audit",
    "--no-fund",
    "--loglevel=error",
    f"azurite@{AZURITE_VERSION}",
]
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


def installed_version() -> str | None:
    try:
        return str(json.loads(AZURITE_PACKAGE.read_text(encoding="utf-8"))["version"])
    except (OSError, ValueError, KeyError):
        return None


def ensure_installed() -> Path:
    """The pinned Azurite's ``azurite-table``, installed first if another version or none is."""
    if AZURITE_BIN.exists() and installed_version() == AZURITE_VERSION:
        return AZURITE_BIN
    if shutil.which("npm") is None or shutil.which("node") is None:
        raise AzuriteError(
            f"Azurite {AZURITE_VERSION} is not installed and node/npm are not on PATH. "
            f"Install Node.js, then run `{' '.join(NPM_INSTALL)}` in {REPO_ROOT} (or `make test`)."
        )
    result = subprocess.run(
        NPM_INSTALL, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False
    )
    if result.returncode != 0 or not AZURITE_BIN.exists() or installed_version() != AZURITE_VERSION:
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


if __name__ == "__main__":
    print(f"Azurite {AZURITE_VERSION}: {ensure_installed()}")
