"""One small seeded chaos scenario, so CI runs the fault-injection path end to end.

``mdsync chaos`` runs bigger ones; the same checks decide both (mdsync/chaos/checks.py).
"""

from __future__ import annotations

from mdsync.chaos import ScenarioSize, run_scenario
from mdsync.chaos.plan import make_plan
from mdsync.chaos.runner import FAST_RETRY
from mdsync.harness import LocalSystem

SMALL = ScenarioSize(leads=16, contacts=8, rounds=2, edits_per_round=14, collisions_per_round=3)
SEED = 7


def test_the_plan_is_reproducible_from_its_seed() -> None:
    assert make_plan(SEED, SMALL) == make_plan(SEED, SMALL)
    assert make_plan(SEED, SMALL) != make_plan(SEED + 1, SMALL)


def test_a_seeded_scenario_converges_with_every_rule_holding(system: LocalSystem) -> None:
    report = run_scenario(system, SEED, SMALL)
    assert report.rounds == SMALL.rounds
    assert report.collisions == SMALL.rounds * SMALL.collisions_per_round
    assert report.moves == SMALL.rounds * 3  # a qualification and a merge on each side, per round
    assert report.races == SMALL.rounds * SMALL.races_per_round
    assert report.faults, "the scenario armed no fault"
    assert [f"{v.rule}: {v.detail}" for v in report.violations] == []


def test_scenarios_run_with_the_short_retry_backoff_from_settings(system: LocalSystem) -> None:
    with system.settings_changed(FAST_RETRY):
        policy = system.deps.worker.policy
        assert (policy.base_delay_seconds, policy.max_delay_seconds) == (0.2, 2.0)
    assert system.deps.worker.policy.base_delay_seconds == 5.0  # the shipped default again
