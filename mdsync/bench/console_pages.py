"""The operator console under a big state: how long its pages take with 100,000 errors and a
million sync-log entries (the full run; a tenth of that in the quick one).

The state is filled through the stores' own methods (``append_log`` in batches, as the worker
writes it; ``record_errors``; ``add_tallies``), beside what the workloads left; then each page is
fetched through the local host by a signed-in operator, as a browser would, several times. The
figure is the time to the whole answer (the host, the function, the queries, the HTML).
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from mdsync.harness import OPERATOR, LocalSystem
from shared.ports import LogEntry, SyncError, Tally

BATCH = 10_000
REQUESTS_PER_PAGE = 15
# A person with a long history, and the field most errors are about (a realistic skew).
BUSY_PERSON = 7
REASONS = (
    "Dynamics refused [0x80040203]",
    "Dynamics refused [0x80040265]",
    "Marketo refused [1003]",
    "Dynamics refused [mdsync-validation]",
)


def fill(system: LocalSystem, *, log_entries: int, errors: int) -> dict[str, float]:
    """Add ``log_entries`` sync-log entries and ``errors`` errors; seconds each took."""
    deps = system.deps
    now = datetime.now(UTC)
    took: dict[str, float] = {}
    started = time.monotonic()
    for start in range(0, log_entries, BATCH):
        entries = [
            LogEntry(
                marketo_id=BUSY_PERSON if i % 1000 == 0 else 100_000 + i % 250_000,
                dynamics_id=None,
                entity="lead" if i % 3 else "contact",
                action="collision" if i % 50 == 0 else "to_marketo",
                detail=f"wrote to Marketo: title (bench entry {i})",
                fields=("title",),
                at=now - timedelta(seconds=(log_entries - i)),
                values={"marketo": "a", "dynamics": "b", "winner": "marketo"} if i % 50 == 0 else {},
            )
            for i in range(start, min(start + BATCH, log_entries))
        ]
        deps.state.append_log(entries)
    took["fill_log_seconds"] = time.monotonic() - started
    started = time.monotonic()
    for start in range(0, errors, BATCH):
        batch = []
        for i in range(start, min(start + BATCH, errors)):
            at = now - timedelta(seconds=errors - i)
            batch.append(
                SyncError(
                    key=f"refused|lead|{200_000 + i}|jobtitle|{i % 4}",
                    kind="refused",
                    reason=REASONS[i % len(REASONS)],
                    message="A business rule refused the value.",
                    entity="lead",
                    marketo_id=200_000 + i,
                    field="jobtitle" if i % 5 else "companyname",
                    value=f"value {i}",
                    first_seen=at,
                    last_seen=at,
                )
            )
        deps.operations.record_errors(batch)
    took["fill_errors_seconds"] = time.monotonic() - started
    tallies = [
        Tally(now - timedelta(hours=h), entity, direction, "synced", 1000 + h)
        for h in range(31)
        for entity in ("lead", "contact")
        for direction in ("to_marketo", "to_dynamics")
    ]
    deps.operations.add_tallies(tallies)
    return took


def _timed(session: requests.Session, url: str, **params: str) -> float:
    started = time.perf_counter()
    answer = session.get(url, params=params, timeout=60)
    elapsed = (time.perf_counter() - started) * 1000
    answer.raise_for_status()
    return elapsed


def measure(system: LocalSystem, *, log_entries: int, errors: int, password: str) -> dict[str, Any]:
    assert system.host is not None
    took = fill(system, log_entries=log_entries, errors=errors)
    base = f"{system.host.url}/api/console"
    session = requests.Session()
    session.post(
        f"{system.host.url}/.auth/login", data={"username": OPERATOR, "password": password}, timeout=30
    )
    deep = session.get(f"{base}/errors.json", params={"limit": "1000"}, timeout=60).json()["cursor"]
    pages: dict[str, tuple[str, dict[str, str]]] = {
        "status page": (base, {}),
        "status JSON": (f"{base}/status.json", {}),
        "errors, first page": (f"{base}/errors", {}),
        "errors, next page": (f"{base}/errors", {"cursor": deep or ""}),
        "errors, filtered": (f"{base}/errors", {"field": "companyname", "kind": "refused"}),
        "person with 1,000 log entries": (f"{base}/person/{BUSY_PERSON}", {}),
    }
    results: dict[str, Any] = {}
    for name, (url, params) in pages.items():
        _timed(session, url, **params)  # the first answer warms the process's caches
        times = sorted(_timed(session, url, **params) for _ in range(REQUESTS_PER_PAGE))
        results[name] = {
            "p50_ms": round(statistics.median(times), 1),
            "p95_ms": round(times[int(len(times) * 0.95) - 1], 1),
            "max_ms": round(times[-1], 1),
        }
    return {
        "log_entries": log_entries,
        "errors": errors,
        **{k: round(v, 1) for k, v in took.items()},
        "pages": results,
    }
