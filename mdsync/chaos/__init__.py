"""``mdsync chaos``: seeded scenarios of concurrent edits and injected faults that must converge."""

from mdsync.chaos.plan import ScenarioSize
from mdsync.chaos.runner import ScenarioReport, run_chaos, run_scenario

__all__ = ["ScenarioReport", "ScenarioSize", "run_chaos", "run_scenario"]
