"""The bench's watcher (mdsync/bench/watch.py): a value is noted when it lands on either side,
from the records the simulators say were written, without checking every outstanding value."""

from __future__ import annotations

import pytest

from mdsync.bench import watch
from mdsync.bench.edits import edit_in_dynamics, edit_in_marketo
from mdsync.bench.seed import seed_pairs
from mdsync.bench.watch import Target, Watcher
from mdsync.harness import LocalSystem
from simulators.dataverse import store as dataverse_store


@pytest.fixture
def no_full_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the records written are looked at: a value noted came through them."""
    monkeypatch.setattr(watch, "FULL_CHECK_SECONDS", 1e12)


def test_values_landing_after_the_first_check_are_noted_from_the_records_written(
    system: LocalSystem, no_full_checks: None
) -> None:
    first, second, untouched = seed_pairs(system, "lead", 3, tag="wa")
    watcher = Watcher(system)
    at = 0.0
    watcher.expect(Target("dynamics", "lead", first.dynamics_id.upper(), "jobtitle", "wa-d"), at, "d")
    watcher.expect(Target("marketo", "person", str(second.marketo_id), "title", "wa-m"), at, "m")
    watcher.expect(Target("dynamics", "lead", untouched.dynamics_id, "jobtitle", "wa-never"), at, "d")
    watcher.check()  # the first look at each value: none has landed
    assert watcher.outstanding() == 3
    edit_in_dynamics(system, "lead", [(first.dynamics_id, {"jobtitle": "wa-d"})])
    edit_in_marketo(system, [(second.marketo_id, {"title": "wa-m"})])
    edit_in_marketo(system, [(untouched.marketo_id, {"title": "wa-other"})])  # not the value awaited
    watcher.check()
    assert len(watcher.latencies("d")) == 1
    assert len(watcher.latencies("m")) == 1
    assert watcher.outstanding() == 1
    system.wait_idle()


def test_a_value_held_before_it_is_expected_is_noted_at_the_first_check(
    system: LocalSystem, no_full_checks: None
) -> None:
    (pair,) = seed_pairs(system, "lead", 1, tag="wb")
    edit_in_marketo(system, [(pair.marketo_id, {"title": "wb-early"})])
    watcher = Watcher(system)
    watcher.check()
    watcher.expect(Target("marketo", "person", str(pair.marketo_id), "title", "wb-early"), 0.0, "m")
    watcher.check()
    assert watcher.outstanding() == 0
    system.poll()
    system.wait_idle()


def test_a_watcher_too_far_behind_the_writes_checks_everything(
    system: LocalSystem, no_full_checks: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dataverse_store, "RECENT_WRITES", 2)
    pairs = seed_pairs(system, "lead", 6, tag="wc")
    watcher = Watcher(system)
    watcher.expect(Target("dynamics", "lead", pairs[0].dynamics_id, "jobtitle", "wc-0"), 0.0, "d")
    watcher.check()
    edit_in_dynamics(system, "lead", [(p.dynamics_id, {"jobtitle": f"wc-{i}"}) for i, p in enumerate(pairs)])
    store = system.stack.dataverse.state.store
    assert store.written_since(0) is None  # forgotten: the store cannot tell
    watcher.check()
    assert watcher.outstanding() == 0
    system.wait_idle()
