"""Fixtures for the local-host tests: the sample app, a real SQLite queue, a started host."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from mdsync.devhost import DevHost
from shared.adapters.sqlite_queue import SqliteQueue
from shared.notices import Entity, Kind, Notice, Source
from tests.devhost.sample_app import Recorder, build_app

FUNCTION_KEY = "items-function-key-0123456789"
OTHER_FUNCTION_KEY = "reset-function-key-0123456789"
HOST_KEY = "host-key-0123456789abcdef"
MASTER_KEY = "master-key-0123456789abcdef"
QUEUE_NAME = "notices"
MAX_DELIVERIES = 3
NEVER = "0 0 0 1 1 *"  # once a year: the scheduler stays idle during a test


def wait_for(condition: Callable[[], Any], *, timeout: float = 60.0, what: str = "condition") -> Any:
    """Poll until ``condition()`` is truthy; fail the test (never hang) after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def notice(record_id: str) -> Notice:
    return Notice(
        source=Source.MARKETO,
        entity=Entity.PERSON,
        record_id=record_id,
        kind=Kind.UPDATED,
        occurred_at=datetime.now(UTC),
    )


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[SqliteQueue]:
    q = SqliteQueue(tmp_path / "queue.sqlite3", queue_name=QUEUE_NAME, max_delivery_count=MAX_DELIVERIES)
    # Create the file (and its WAL mode) from one thread first: two connections opening a fresh
    # file at once can get SQLITE_BUSY from "PRAGMA journal_mode=WAL" (reported to the lead).
    q.active_count()
    yield q
    q.close()


@pytest.fixture
def http() -> Iterator[requests.Session]:
    session = requests.Session()
    session.trust_env = False  # no proxy from the environment for localhost
    yield session
    session.close()


HostFactory = Callable[..., DevHost]


def build_host(
    recorder: Recorder,
    queue: SqliteQueue,
    state_dir: Path,
    *,
    schedule: str = NEVER,
    host_json: Path | None = None,
    port: int = 0,
    **options: Any,
) -> DevHost:
    """A host (not started) over a fresh sample app, with the test keys and settings."""
    return DevHost(
        build_app(recorder),
        queue=queue,
        port=port,
        function_keys={"items": FUNCTION_KEY, "reset": OTHER_FUNCTION_KEY},
        host_keys=[HOST_KEY],
        master_key=MASTER_KEY,
        settings_env={"TICK_SCHEDULE": schedule, "NOTICE_QUEUE": QUEUE_NAME},
        host_json=host_json,
        state_dir=state_dir,
        queue_idle_wait=0.05,
        **options,
    )


@pytest.fixture
def make_host(recorder: Recorder, queue: SqliteQueue, tmp_path: Path) -> Iterator[HostFactory]:
    """Build hosts for one test; every host is stopped at teardown."""
    hosts: list[DevHost] = []

    def make(**options: Any) -> DevHost:
        options.setdefault("state_dir", tmp_path / "state")
        host = build_host(recorder, queue, **options)
        hosts.append(host)
        return host

    yield make
    for host in hosts:
        host.stop()


@pytest.fixture
def host(make_host: HostFactory) -> DevHost:
    return make_host().start()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevHost]:
    """One started host shared by a module's read-only HTTP tests (starting one costs ~0.2 s)."""
    directory = tmp_path_factory.mktemp("served")
    q = SqliteQueue(directory / "queue.sqlite3", queue_name=QUEUE_NAME)
    q.active_count()
    host = build_host(Recorder(), q, directory / "state").start()
    yield host
    host.stop()
    q.close()
