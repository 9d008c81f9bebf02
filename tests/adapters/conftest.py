"""Fixtures for the adapter tests: a controllable clock, Azurite, and the adapters under test.

Azurite (npm package ``azurite``, started by ``mdsync.azurite``) runs once per session, only
when a test marked ``azurite`` asks for it. Without node/npm the Azurite tests fail with a
message saying so: they are never skipped silently.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mdsync.azurite import AzuriteError, connection_string, running
from shared.adapters.sqlite_operations import SqliteOperationsStore
from shared.adapters.sqlite_state import SqliteStateStore
from shared.adapters.table_operations import TableOperationsStore
from shared.adapters.table_state import TableStateStore
from shared.ports import OperationsStore, StateStore

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


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A running Azurite table service; yields its connection string."""
    try:
        with running(tmp_path_factory.mktemp("azurite")) as url:
            yield url
    except AzuriteError as exc:
        pytest.fail(str(exc))


azurite_connection_string = connection_string


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
