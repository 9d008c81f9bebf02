"""How the simulators hold a million records, and what the bulk APIs cost per million.

    python -m mdsync.bench.simscale --records 1000000 [--output bench/simscale.json]

Starts the simulators in this process and, timing each phase and noting the process's memory
(RSS) after it and the API calls the clients made:

1. ``marketo_seed``: N persons through the admin API, created over three years;
2. ``marketo_extract``: every person read back through Bulk Lead Extract, one job per 31-day
   ``createdAt`` window, each file streamed as rows;
3. ``marketo_import``: every person updated through Bulk Lead Import (files under 10 MB);
4. ``dataverse_seed``: N leads through the admin API;
5. ``dataverse_read``: every lead read with ``read_table`` (pages of 5,000, four columns);
6. ``dataverse_update``: every lead updated with ``update_rows`` (UpdateMultiple, 1,000 a request).

The clients are the initial sync's, asked of the composition root (``shared.bootstrap``) with
the stack's settings: its call budgets, and the whole Marketo rate (nothing else runs). Each
phase checks what it read or wrote (all N rows), so the numbers are of work really done.
Not part of ``make bench`` (a million records takes several minutes); the suite runs it small
(tests/bench/test_simscale.py), and docs/initial-sync.md has the numbers of the last full run.
Timings are measurements, not assertions.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from shared.bootstrap import BACKFILL_DATAVERSE, BACKFILL_MARKETO, Container
from shared.calls import CallCounter
from shared.config import load_settings
from shared.marketo.bulk_extract import date_windows
from shared.marketo.bulk_import import import_files
from simulators.dataverse.admin import DataverseAdmin
from simulators.marketo.admin import MarketoAdmin
from simulators.stack import SimulatorStack, StackConfig

SEED_CHUNK = 1_000
SPAN = timedelta(days=3 * 365)
START = datetime(2023, 1, 1, tzinfo=UTC)
FIELDS = ["id", "email", "firstName", "lastName", "updatedAt"]


@dataclass
class Phase:
    name: str
    records: int
    seconds: float
    rss_mib: float
    calls: dict[str, int] = field(default_factory=dict)
    details: dict[str, int] = field(default_factory=dict)  # windows, files, bytes

    @property
    def calls_per_million(self) -> float:
        return sum(self.calls.values()) * 1_000_000 / self.records if self.records else 0.0


def rss_mib() -> float:
    """The process's resident memory now (Linux), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def timed(
    name: str,
    records: int,
    counter: CallCounter | None,
    work: Callable[[], int],
    details: dict[str, int] | None = None,
) -> Phase:
    before = counter.snapshot() if counter is not None else {}
    started = time.perf_counter()
    done = work()
    seconds = time.perf_counter() - started
    if done != records:
        raise AssertionError(f"{name}: {done} records, expected {records}")
    after = counter.snapshot() if counter is not None else {}
    calls = {k: n - before.get(k, 0) for k, n in after.items() if n - before.get(k, 0)}
    return Phase(name, records, round(seconds, 1), round(rss_mib(), 0), calls, dict(details or {}))


def person(i: int, count: int, span: timedelta) -> dict[str, Any]:
    created = START + span * (i / max(count, 1))
    return {
        "email": f"person{i}@scale.example",
        "firstName": f"First{i}",
        "lastName": f"Last{i}",
        "createdAt": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def lead(i: int) -> dict[str, Any]:
    return {
        "firstname": f"First{i}",
        "lastname": f"Last{i}",
        "emailaddress1": f"person{i}@scale.example",
        "companyname": f"Company {i % 97}",
        "subject": "scale",
    }


def chunks(count: int) -> Iterator[range]:
    for start in range(0, count, SEED_CHUNK):
        yield range(start, min(count, start + SEED_CHUNK))


def run(count: int, *, poll_seconds: float = 0.5, span: timedelta = SPAN) -> list[Phase]:
    """The phases for ``count`` records created over ``span``; jobs polled every ``poll_seconds``."""
    with tempfile.TemporaryDirectory() as tmp, SimulatorStack(StackConfig(tls_dir=Path(tmp))) as stack:
        deps = Container(load_settings(**stack.settings()))
        try:
            phases = [timed("baseline", 0, None, lambda: 0)]
            phases += marketo_phases(deps, stack.urls["marketo"], count, poll_seconds=poll_seconds, span=span)
            phases += dataverse_phases(deps, stack.urls["dataverse"], count)
            return phases
        finally:
            deps.close()


def marketo_phases(
    deps: Container, url: str, count: int, *, poll_seconds: float, span: timedelta
) -> list[Phase]:
    """Seed, extract and import ``count`` persons, with the initial sync's client from the
    composition root (its budget, the whole rate: nothing else runs)."""
    marketo_admin = MarketoAdmin(url, deps.session)
    marketo = deps.marketo_client(BACKFILL_MARKETO, max_calls_per_20s=deps.settings.marketo_max_calls_per_20s)
    phases: list[Phase] = []

    def seed_marketo() -> int:
        seeded = (
            marketo_admin.seed_persons([person(i, count, span) for i in part]) for part in chunks(count)
        )
        return sum(len(ids) for ids in seeded)

    phases.append(timed("marketo_seed", count, None, seed_marketo))
    extracted: dict[str, int] = {"windows": 0, "file_bytes": 0}

    def extract() -> int:
        seen = 0
        for start, end in date_windows(START, START + span):
            job = marketo.exports.create(FIELDS, created=(start, end))
            marketo.exports.enqueue(job.export_id)
            job = marketo.exports.wait(job.export_id, poll_seconds=poll_seconds, timeout=600)
            seen += sum(1 for _ in marketo.exports.rows(job))
            extracted["windows"] += 1
            extracted["file_bytes"] += job.file_size or 0
        return seen

    phases.append(timed("marketo_extract", count, marketo.calls, extract, extracted))
    imported_files: dict[str, int] = {"files": 0, "file_bytes": 0}

    def import_all() -> int:
        imported = 0
        records = ({"id": 1001 + i, "lastName": f"Imported{i}"} for i in range(count))
        for file in import_files(["id", "lastName"], records):
            job = marketo.imports.submit(file, lookup_field="id")
            job = marketo.imports.wait(job.batch_id, poll_seconds=poll_seconds, timeout=600)
            imported += job.leads_processed
            imported_files["files"] += 1
            imported_files["file_bytes"] += len(file.data)
        return imported

    phases.append(timed("marketo_import", count, marketo.calls, import_all, imported_files))
    return phases


def dataverse_phases(deps: Container, url: str, count: int) -> list[Phase]:
    """Seed, read and update ``count`` leads, with the initial sync's client from the
    composition root."""
    dataverse_admin = DataverseAdmin(url, deps.session, timeout=300)
    dataverse = deps.dataverse_client(BACKFILL_DATAVERSE)
    phases: list[Phase] = []

    def seed_dataverse() -> int:
        return sum(len(dataverse_admin.seed("lead", [lead(i) for i in part])) for part in chunks(count))

    phases.append(timed("dataverse_seed", count, None, seed_dataverse))
    ids: list[str] = []

    def read() -> int:
        for page in dataverse.read_table("leads", ["leadid", "emailaddress1", "lastname", "modifiedon"]):
            ids.extend(row["leadid"] for row in page.rows)
        return len(ids)

    phases.append(timed("dataverse_read", count, dataverse.calls, read))

    def update() -> int:
        records = ({"leadid": lead_id, "jobtitle": "scaled"} for lead_id in ids)
        return sum(1 for result in dataverse.update_rows("leads", "lead", records) if result.ok)

    phases.append(timed("dataverse_update", count, dataverse.calls, update))
    return phases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--output", type=Path, default=Path("bench/simscale.json"))
    args = parser.parse_args(argv)
    phases = run(args.records)
    print(f"{'phase':18} {'records':>9} {'seconds':>8} {'RSS MiB':>8} {'calls':>7} {'calls/M':>9}")
    for phase in phases:
        calls = sum(phase.calls.values())
        print(
            f"{phase.name:18} {phase.records:>9,} {phase.seconds:>8.1f} {phase.rss_mib:>8.0f} "
            f"{calls:>7,} {phase.calls_per_million:>9,.0f}  {phase.details or ''}"
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    results = [{**asdict(p), "calls_per_million": round(p.calls_per_million, 1)} for p in phases]
    args.output.write_text(json.dumps({"records": args.records, "phases": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
