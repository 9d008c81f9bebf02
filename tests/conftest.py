"""Fixtures shared by the whole suite. Per-area fixtures live in each folder's conftest.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mdsync.harness import HarnessConfig, LocalSystem
from simulators.tls import TlsFiles, ensure_local_ca


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A test CA and a localhost certificate for the HTTPS simulators."""
    return ensure_local_ca(Path(tmp_path_factory.mktemp("tls")))


@pytest.fixture(scope="session")
def local_system(tls: TlsFiles, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSystem]:
    """The whole product: simulators, the local host running function_app.py, SQLite queue and
    state, webhooks registered. One per test session (the app's functions are indexed once)."""
    system = LocalSystem(
        HarnessConfig(workdir=Path(tmp_path_factory.mktemp("system")), tls=tls, batch_wait=0)
    )
    with system:
        yield system


@pytest.fixture
def system(local_system: LocalSystem) -> LocalSystem:
    """The session's system, emptied: both simulators, the queue and the state store."""
    local_system.reset()
    return local_system
