"""Flow-step latency: Marketo's Call Webhook step calling "Sync Person to Microsoft".

Each call is fired through the Marketo simulator, exactly as a trigger campaign fires it (its
own HTTPS connection, the template, the headers), for a person with no Dynamics record, so
every call creates a lead. The latency is the webhook call as Marketo times it (``elapsedMs``:
connect, send, the function's work, the answer).

The flow step has its own Marketo client with a reserved share of the rate
(MARKETO_FLOW_STEP_CALLS_PER_20S), so it has a capacity of its own: share / calls per create.
The paced run fires at that capacity (latency when the step is used within it); the burst run,
in the full bench only, fires back to back to show what happens beyond it.
"""

from __future__ import annotations

import json
import time
from typing import Any

from mdsync.bench.stats import latency_summary
from mdsync.harness import LocalSystem

DEFAULT_CALLS_PER_CREATE = 2.0  # read the person, write the link fields back


def _persons(system: LocalSystem, count: int, tag: str) -> list[int]:
    people = [
        {"email": f"{tag}{i}@flow.bench.example", "firstName": "Flow", "lastName": f"S{i}", "company": "Acme"}
        for i in range(count)
    ]
    return system.marketo_admin.seed_persons(people)


def _status(outcome: dict[str, Any]) -> str:
    if outcome.get("status") != 200:
        return f"HTTP {outcome.get('status')} {outcome.get('errorType') or ''}".strip()
    try:
        return str(json.loads(outcome.get("body") or "{}").get("status", "?"))
    except ValueError:
        return "unreadable answer"


def _fire(system: LocalSystem, ids: list[int], interval: float) -> dict[str, Any]:
    step = system.deps.flow_step
    marketo_before, dataverse_before = step.marketo.calls.total, step.dataverse.calls.total
    webhook: list[float] = []
    statuses: dict[str, int] = {}
    started = time.monotonic()
    for i, marketo_id in enumerate(ids):
        time.sleep(max(0.0, started + i * interval - time.monotonic()))
        outcome = system.fire_flow_step(marketo_id)
        webhook.append(float(outcome["elapsedMs"]) / 1000)
        status = _status(outcome)
        statuses[status] = statuses.get(status, 0) + 1
    created = max(statuses.get("created", 0), 1)
    return {
        "calls": len(ids),
        "interval_seconds": round(interval, 3),
        "outcomes": statuses,
        "marketo_calls_per_create": (step.marketo.calls.total - marketo_before) / created,
        "dataverse_calls_per_create": (step.dataverse.calls.total - dataverse_before) / created,
        "webhook_call": latency_summary(webhook),
    }


def flow_step_latency(system: LocalSystem, count: int, tag: str, *, burst: int = 0) -> dict[str, Any]:
    share = system.deps.settings.marketo_flow_step_calls_per_20s
    capacity = share / DEFAULT_CALLS_PER_CREATE / 20.0  # creates per second
    paced = _fire(system, _persons(system, count, f"{tag}p"), 1 / capacity)
    result: dict[str, Any] = {
        "reserved_marketo_calls_per_20s": share,
        "capacity_creates_per_second": round(share / max(paced["marketo_calls_per_create"], 1) / 20, 3),
        "paced": paced,
    }
    if burst:
        time.sleep(20.0)  # the reserved window empties, as before any burst
        result["burst"] = _fire(system, _persons(system, burst, f"{tag}b"), 0.0)
    return result
