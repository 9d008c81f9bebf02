"""The console's page measurement runs end to end (small here; a million log entries in `make
bench`): the state it fills is what the pages then list, and every page answers."""

from __future__ import annotations

from mdsync.bench import console_pages
from mdsync.harness import LocalSystem
from shared.ports import ErrorQuery


def test_the_pages_are_timed_over_the_state_it_filled(system: LocalSystem) -> None:
    result = console_pages.measure(
        system, log_entries=3_000, errors=500, password=system.config.operator_password
    )
    assert set(result["pages"]) == {
        "status page",
        "status JSON",
        "errors, first page",
        "errors, next page",
        "errors, filtered",
        "person with 1,000 log entries",
    }
    for times in result["pages"].values():
        assert 0 < times["p50_ms"] <= times["p95_ms"] <= times["max_ms"]
    groups = system.deps.operations.error_groups(ErrorQuery())
    assert sum(g.errors for g in groups) == 500
    busy = system.deps.state.read_log(marketo_id=console_pages.BUSY_PERSON, limit=10)
    assert len(busy) == 3
