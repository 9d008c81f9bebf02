"""A worker in a process of its own, to measure what the harness process cannot isolate.

``python -m mdsync.bench.probe SPEC.json`` imports function_app (as a Functions worker
process does), builds the container from the settings in the spec, and hands the worker four
batches of notices about leads that were changed in Dynamics: a warm-up (tokens, metadata), a
plain one after which the process's peak resident set is read (what a Functions worker process
needs; read before tracemalloc, whose own bookkeeping would inflate it), one under tracemalloc
(peak Python allocation during a batch) and one under cProfile (where a batch spends its CPU).
It prints one JSON document.
"""

from __future__ import annotations

import cProfile
import io
import json
import os
import pstats
import resource
import sys
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared.notices import Entity, Kind, Notice, Source

PROFILE_LINES = 25


def _notices(batch: list[str]) -> list[Notice]:
    now = datetime.now(UTC)
    return [
        Notice(
            source=Source.DYNAMICS, entity=Entity.LEAD, record_id=row_id, kind=Kind.UPDATED, occurred_at=now
        )
        for row_id in batch
    ]


def _summary(result: Any, seconds: float) -> dict[str, Any]:
    return {
        "seconds": round(seconds, 3),
        "notices": result.notices,
        "to_marketo": result.to_marketo,
        "marketo_calls": result.marketo_calls,
        "dataverse_calls": result.dataverse_calls,
        "failures": result.failures,
        "rescheduled": result.rescheduled,
    }


def _peak_rss() -> int:
    """This process's peak resident set. VmHWM belongs to the address space, which exec
    replaces; ru_maxrss would still carry the parent's peak from before the exec."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text(encoding="ascii", errors="replace").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _profile_table(profile: cProfile.Profile) -> list[str]:
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.sort_stats("tottime").print_stats(PROFILE_LINES)
    return [line.rstrip() for line in out.getvalue().splitlines() if line.strip()]


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    os.environ.update(spec["settings"])
    import function_app  # noqa: F401, PLC0415 - what a worker process holds in memory
    from shared.bootstrap import container  # noqa: PLC0415

    rss = {"after_import": _peak_rss()}
    worker = container().worker
    warm, plain, measured, profiled = (_notices(b) for b in spec["batches"])
    batches = {}
    for name, notices in (("warm_up", warm), ("plain", plain)):
        started = time.perf_counter()
        batches[name] = _summary(worker.process(notices), time.perf_counter() - started)
        rss[f"after_{name}"] = _peak_rss()

    tracemalloc.start()
    started = time.perf_counter()
    result = worker.process(measured)
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    batches["measured"] = _summary(result, elapsed)

    profile = cProfile.Profile()
    started = time.perf_counter()
    result = profile.runcall(worker.process, profiled)
    batches["profiled"] = _summary(result, time.perf_counter() - started)

    report = {
        "batch_peak_traced_bytes": peak,
        "process_peak_rss_bytes": rss["after_plain"],
        "peak_rss_bytes_by_stage": rss,
        "batches": batches,
        "profile_by_tottime": _profile_table(profile),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1])
