"""Fixtures shared by the whole suite. Per-area fixtures live in each folder's conftest.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulators.tls import TlsFiles, ensure_local_ca


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A test CA and a localhost certificate for the HTTPS simulators."""
    return ensure_local_ca(Path(tmp_path_factory.mktemp("tls")))
