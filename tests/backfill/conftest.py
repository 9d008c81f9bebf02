"""Fixtures for the backfill tests: data already on both sides, and a job runner on the
session's local system (the real clients over HTTP to the simulators, SQLite state)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mdsync.harness import LocalSystem
from shared.backfill.context import Context
from shared.backfill.job import JobState, Options
from shared.backfill.runner import Backfill
from shared.bootstrap import BACKGROUND

NOW = datetime.now(UTC)
CREATED = (NOW - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
CREATED_FROM = NOW - timedelta(days=5)
OWNER = "test-runner"


@dataclass
class World:
    """What a test seeded: persons and records by a name of the test's choosing."""

    system: LocalSystem
    persons: dict[str, int] = field(default_factory=dict)
    records: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (entity, id)

    def person(self, name: str, **values: Any) -> int:
        [marketo_id] = self.system.marketo_admin.seed_persons([{"createdAt": CREATED, **values}])
        self.persons[name] = marketo_id
        return marketo_id

    def record(self, name: str, entity: str = "lead", **values: Any) -> str:
        row = {"subject": "seeded", **values} if entity == "lead" else dict(values)
        [record_id] = self.system.dataverse_admin.seed(entity, [row])
        self.records[name] = (entity, record_id.lower())
        return record_id.lower()

    def marketo(self, name: str) -> dict[str, Any]:
        return self.system.marketo_admin.person(self.persons[name])

    def dynamics(self, name: str) -> dict[str, Any]:
        entity, record_id = self.records[name]
        row = self.system.dataverse_admin.row(entity, record_id)
        assert row is not None
        return row

    def links(self) -> dict[int, tuple[str, str]]:
        links = self.system.deps.state.list_links(limit=100_000)
        return {link.marketo_id: (link.entity, link.dynamics_id.lower()) for link in links}

    def linked(self, person: str, record: str) -> bool:
        return self.links().get(self.persons[person]) == self.records[record]


@pytest.fixture
def world(system: LocalSystem) -> World:
    return World(system)


def make_context(system: LocalSystem, **overrides: Any) -> Context:
    """The backfill's context as the app builds it, with a roomy Marketo share and quick polls
    (the simulators finish bulk jobs at once), so the tests are not paced by the real share."""
    deps = system.deps
    ctx = deps.backfill_context()
    ctx.marketo = deps.marketo_client(BACKGROUND, max_calls_per_20s=60, max_concurrency=2)
    ctx.dataverse = deps.dataverse_client(BACKGROUND, max_concurrency=2)
    ctx.__post_init__()
    ctx.poll_seconds = 0.05
    for name, value in overrides.items():
        setattr(ctx, name, value)
    return ctx


Run = Callable[..., JobState]


@pytest.fixture
def run_backfill(system: LocalSystem) -> Iterator[Run]:
    """Start a job with ``options`` and run it to its end, as `mdsync backfill` does."""
    contexts: list[Context] = []

    def run(*, restart: bool = True, ctx: Context | None = None, **options: Any) -> JobState:
        context = ctx or make_context(system)
        contexts.append(context)
        backfill = Backfill(context, owner=OWNER)
        options.setdefault("created_from", CREATED_FROM)
        backfill.start(Options(**options), restart=restart)
        job = backfill.run()
        system.wait_idle(60)
        return job

    yield run
    for context in contexts:
        context.close()
