"""Fixtures for the adapter tests: a controllable clock, Azurite, and the adapters under test.

Azurite (npm package ``azurite``) is started once per session, only when a test marked
``azurite`` asks for it. The Makefile's ``test`` target installs it into ``node_modules``; if it
is missing, the fixture runs that same npm command once. Without node/npm the Azurite tests fail
with a message saying so: they are never skipped silently.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from shared.adapters.sqlite_operations import SqliteOperationsStore
from shared.adapters.sqlite_state import SqliteStateStore
from shared.adapters.table_operations import TableOperationsStore
from shared.adapters.table_state import TableStateStore
from shared.ports import OperationsStore, StateStore

REPO_ROOT = Path(__file__).resolve().parents[2]
AZURITE_BIN = REPO_ROOT / "node_modules" / ".bin" / "azurite-table"
NPM_INSTALL = ["npm", "install", "--no-save", "--no-audit", "--no-fund", "--loglevel=error", "azurite@3"]
# The well-known development account every Azure Storage emulator accepts.
DEV_ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
START = 1_900_000_000.0  # a fixed "now" for the fake clock (2030-03-17)


class FakeClock:
    """A wall clock the test moves by hand; shared by the adapter under test and the test."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# --- Azurite ------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ensure_azurite() -> Path:
    if AZURITE_BIN.exists():
        return AZURITE_BIN
    if shutil.which("npm") is None or shutil.which("node") is None:
        pytest.fail(
            f"Azurite is not installed ({AZURITE_BIN} is missing) and node/npm are not on PATH. "
            f"Install Node.js, then run `{' '.join(NPM_INSTALL)}` in {REPO_ROOT} (or `make test`)."
        )
    result = subprocess.run(
        NPM_INSTALL, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False
    )
    if result.returncode != 0 or not AZURITE_BIN.exists():
        pytest.fail(f"`{' '.join(NPM_INSTALL)}` failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return AZURITE_BIN


def _wait_until_listening(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"azurite-table exited early with code {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"azurite-table did not listen on port {port} within {timeout} s")


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A running Azurite table service; yields its connection string."""
    binary = _ensure_azurite()
    port = _free_port()
    workdir = tmp_path_factory.mktemp("azurite")
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
        _wait_until_listening(port, process)
        yield azurite_connection_string(port)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def azurite_connection_string(port: int, key: str = DEV_ACCOUNT_KEY) -> str:
    return (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={key};TableEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
    )


def unique_prefix() -> str:
    """Fresh tables per test: Azurite lives for the session, tests must not see each other."""
    return "t" + uuid.uuid4().hex[:12]


# --- the adapters under test ---------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("table", marks=pytest.mark.azurite)])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_store(
    store_kind: str, tmp_path: Path, clock: FakeClock, request: pytest.FixtureRequest
) -> Iterator[Callable[[], StateStore]]:
    """A factory of stores sharing one backing store (two stores = two processes' views)."""
    made: list[StateStore] = []
    prefix = unique_prefix()
    connection_string = request.getfixturevalue("azurite") if store_kind == "table" else ""

    def make() -> StateStore:
        store: StateStore
        if store_kind == "sqlite":
            store = SqliteStateStore(tmp_path / "state.sqlite3", clock=clock)
        else:
            store = TableStateStore(
                connection_string=connection_string, table_prefix=prefix, clock=clock, retry_total=0
            )
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


@pytest.fixture
def store(make_store: Callable[[], StateStore]) -> StateStore:
    return make_store()


@pytest.fixture
def operations(
    store_kind: str, tmp_path: Path, clock: FakeClock, request: pytest.FixtureRequest
) -> Iterator[OperationsStore]:
    """The console's records on the adapter under test."""
    ops: OperationsStore
    if store_kind == "sqlite":
        ops = SqliteOperationsStore(tmp_path / "state.sqlite3")
    else:
        tables = TableStateStore(
            connection_string=request.getfixturevalue("azurite"),
            table_prefix=unique_prefix(),
            clock=clock,
            retry_total=0,
        )
        ops = TableOperationsStore(tables)
    yield ops
    ops.close()
