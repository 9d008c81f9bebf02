"""The batching window: how long a small batch waits for company, from the day's Marketo spend.

Every worker invocation pays a Marketo read and a write (one each per 300 persons) whatever it
holds, so changes arriving one by one cost up to two calls each: a steady trickle of webhooks
would spend the daily quota long before a million changes. Waiting gathers them: with a window
of ``w`` seconds, aligned so every notice deferred into it comes back at the same boundary, the
small batches cost at most ``2 / w`` calls a second *whatever the arrival rate*. The window is
the knob between latency and quota, and this module turns it from the day's spend. Pure: no
clock, no store; ``shared/sync/pacer.py`` feeds it and acts on it.

The rule (``window``), for a day budget ``B``, ``S`` calls spent after ``t`` of the day's ``D``
seconds, ``T = D - t`` left and ``R = B - S`` remaining:

* **Ample** (window 0: process now, the host's own ``maxBatchWaitTime`` of about 2 s is the only
  wait): ``S`` at most ``ample`` of the pro-rata line ``B (t + head_start) / D``. A quiet day
  keeps every change at its fastest.
* **Paced**: the window that lets the rest of the day end within the budget even if every window
  from now on holds a small batch: the per-invocation cost ``calls_per_invocation / w`` plus the
  ``reserve`` (the calls that do not depend on the window, prorated: poll runs, pages per
  change, reads and writes beyond the first per 300) must fit ``R / T``:

      w = calls_per_invocation / ((R - reserve * T / D) / T)

  rounded up to ``base_window * 2**k`` (so the boundaries of a shorter window include those of
  every longer one: instances that read the spend at slightly different times still defer to
  common boundaries), at most ``max_window``.

Why the day stays within ``B``: while ample, ``S <= ample * B * (t + head_start) / D``, which
leaves ``R / T >= B / D`` more than the reserve and the longest window need (``PacingPolicy``
refuses a budget that cannot carry them: ``check``). From the first paced decision on, each
window spends at most what the remaining budget allows for its share of the remaining time, so
``R / T`` never falls below what the next decision needs. ``tests/unit/test_pacing.py`` holds
the rule's properties; ``mdsync/bench/capacity.py`` projects whole days with it.

A batch of ``full_batch`` notices or more is already at the floor (one read and one write per
300) and never waits, nor does a batch holding a notice that waited once: a notice is deferred
at most once (``decide``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True)
class PacingPolicy:
    """What the window is decided from. ``daily_budget``: the Marketo calls a day the worker and
    the poller may spend together (the quota less the flow step's and other integrations'
    shares). ``reserve``: the calls a day the window cannot save (see the module doc); the
    default covers a million changes a day at three calls per 300 plus the poller's fixed
    calls."""

    daily_budget: float
    reserve: float = 12_100.0
    calls_per_invocation: float = 2.0
    full_batch: int = 300
    ample: float = 0.9
    head_start: float = 3_600.0
    base_window: float = 2.0
    max_window: float = 512.0

    def __post_init__(self) -> None:
        if not 0 < self.ample < 1:
            raise ValueError("ample must be between 0 and 1")
        if self.base_window <= 0 or self.max_window < self.base_window:
            raise ValueError("max_window must be at least base_window, which must be positive")

    @property
    def longest(self) -> float:
        """The longest window on the ladder, at most ``max_window``."""
        steps: int = math.floor(math.log2(self.max_window / self.base_window))
        return self.base_window * float(2**steps)

    def check(self, day_length: float = SECONDS_PER_DAY) -> None:
        """Raise ValueError when the budget cannot carry the reserve and the longest window's
        calls after an ample start (then no window keeps the day within it)."""
        needed = self.reserve + self.calls_per_invocation * day_length / self.longest
        room = self.daily_budget * (1 - self.ample * self.head_start / day_length)
        if needed > room:
            raise ValueError(
                f"a daily budget of {self.daily_budget:,.0f} Marketo calls cannot pace the sync: "
                f"it needs about {needed / (1 - self.ample * self.head_start / day_length):,.0f} "
                f"(a reserve of {self.reserve:,.0f} and {self.calls_per_invocation:g} calls per "
                f"{self.longest:g} s window)"
            )


@dataclass(frozen=True)
class Spend:
    """The day so far: Marketo calls counted since the quota's day began, ``elapsed`` seconds
    into that day of ``day_length`` seconds (23 or 25 hours when the clocks change)."""

    calls: float
    elapsed: float
    day_length: float = SECONDS_PER_DAY


def window(policy: PacingPolicy, spend: Spend) -> float:
    """Seconds a small batch waits for company now; 0 while the quota is ample."""
    day = spend.day_length
    elapsed = min(max(spend.elapsed, 0.0), day)
    pro_rata = policy.daily_budget * min(1.0, (elapsed + policy.head_start) / day)
    if spend.calls <= policy.ample * pro_rata:
        return 0.0
    left = max(day - elapsed, 1.0)
    for_windows = (policy.daily_budget - spend.calls - policy.reserve * left / day) / left
    if for_windows <= 0:
        return policy.longest
    return _on_ladder(policy, policy.calls_per_invocation / for_windows)


def _on_ladder(policy: PacingPolicy, seconds: float) -> float:
    if seconds <= policy.base_window:
        return policy.base_window
    steps: int = math.ceil(math.log2(seconds / policy.base_window) - 1e-9)
    return min(policy.base_window * float(2**steps), policy.longest)


def may_wait(policy: PacingPolicy, batch_size: int, *, waited: bool) -> bool:
    """Whether a batch may wait at all: a full batch and a batch holding a notice that already
    waited are processed whatever the spend."""
    return not waited and 0 < batch_size < policy.full_batch


def decide(policy: PacingPolicy, spend: Spend, batch_size: int, *, waited: bool) -> float:
    """The window this batch waits for, or 0 to process it now."""
    return window(policy, spend) if may_wait(policy, batch_size, waited=waited) else 0.0


def boundary(now: float, seconds: float) -> float:
    """The next multiple of ``seconds`` (epoch seconds) after ``now``: every notice deferred
    into the same window comes back at the same moment, as one batch."""
    return (math.floor(now / seconds) + 1) * seconds
