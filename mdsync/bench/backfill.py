"""The initial sync at scale: bulk against REST-only, killed and resumed, on the simulators.

    python -m mdsync.bench.backfill --records 50000 [--kills 5] [--output bench/backfill.json]

Starts the local system (simulators, SQLite state, the local host) in this process and seeds
N Dynamics leads and about N Marketo persons: 90 % of the leads have a person with the same
email (a third of them typed in another case), the other leads have none, and 5 % of N persons
have no lead. Then, for each mode (``bulk``, then ``rest`` on freshly seeded simulators):

* runs ``mdsync backfill`` as a child process, as an administrator would; in bulk mode it is
  killed (SIGKILL) ``--kills`` times at random moments first, each time run again, and it
  resumes the job where it stopped;
* measures the wall time, the child's peak memory (max RSS, the largest of its runs) and the API
  calls the job counted (in its state: every run's calls add up);
* checks the end state: every lead linked to a person with its email, one person per email
  (no duplicate created by a kill), no lead created.

Timings are measurements on a shared machine, never assertions; the checks are assertions.
The suite runs it small (tests/bench/test_backfill_bench.py); docs/initial-sync.md has the
figures of the last run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from mdsync.harness import HarnessConfig, LocalSystem
from shared.backfill.job import JobState, JobStore, Status
from simulators.marketo.admin import MarketoAdmin

SEED_CHUNK = 1_000
SPAN = timedelta(days=365)  # persons created over a year: 12 windows of 31 days
MATCHING = 0.9
MARKETO_ONLY = 0.05
RUN_TIMEOUT = 3 * 3600
WHOLE_LISTING_SECONDS = 900.0
# A first load at a quiet time: the backfill gets half of Marketo's 100 calls per 20 s (the
# worker keeps 10, the flow step 20), and 8 Dataverse requests in flight; both modes the same.
SHARE = {
    "MARKETO_MAX_CALLS_PER_20S": "80",
    "MARKETO_FLOW_STEP_CALLS_PER_20S": "20",
    "MARKETO_BACKFILL_CALLS_PER_20S": "50",
    "DATAVERSE_BACKFILL_CONCURRENCY": "8",
}


@dataclass
class ModeResult:
    mode: str
    records: int
    persons: int
    seconds: float
    kills: int
    peak_rss_mib: float
    calls: dict[str, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    rss_mib_by_phase: dict[str, float] = field(default_factory=dict)

    def per_record(self, side: str) -> float:
        return self.calls.get(side, 0) / self.records if self.records else 0.0


def chunks(count: int) -> Iterator[range]:
    for start in range(0, count, SEED_CHUNK):
        yield range(start, min(count, start + SEED_CHUNK))


def seed(system: LocalSystem, records: int, start: datetime) -> int:
    """N leads and their persons as described above; returns the persons seeded."""
    matching = int(records * MATCHING)
    persons = matching + int(records * MARKETO_ONLY)
    for part in chunks(records):
        rows = [
            {"emailaddress1": f"p{i}@scale.example", "lastname": f"Last{i}", "jobtitle": f"T{i % 50}"}
            for i in part
        ]
        system.dataverse_admin.seed("lead", [{**row, "subject": "scale"} for row in rows])
    for part in chunks(persons):
        batch = []
        for i in part:
            email = f"p{i}@scale.example" if i < matching else f"m{i}@marketo-only.example"
            if i % 3 == 0:
                email = email.upper()
            created = start + SPAN * (i / max(persons, 1))
            batch.append(
                {"email": email, "lastName": f"Last{i}", "createdAt": f"{created:%Y-%m-%dT%H:%M:%SZ}"}
            )
        system.marketo_admin.seed_persons(batch)
    return persons


def backfill_command(workdir: Path, created_from: datetime, mode: str) -> list[str]:
    command = [sys.executable, "-m", "mdsync", "backfill", "--created-from", created_from.isoformat()]
    command += ["--staging", str(workdir / f"staging-{mode}.sqlite3")]
    return [*command, "--rest"] if mode == "rest" else command


@dataclass
class ChildRun:
    code: int | None  # None: killed
    peak_rss_mib: float


class PhaseMemory:
    """The child's resident memory sampled five times a second, the largest seen per phase of the job
    (read from the state store): where the memory goes."""

    def __init__(self, system: LocalSystem, pid: int, peaks: dict[str, float]) -> None:
        self.jobs = JobStore(system.deps.state)
        self.status = Path(f"/proc/{pid}/status")
        self.peaks = peaks
        self.high_water = 0.0  # the process's peak RSS (VmHWM) when last sampled
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        while not self.stop.wait(0.2):
            try:
                text = self.status.read_text()
            except OSError:
                return
            rss, high = _kib(text, "VmRSS:") / 1024, _kib(text, "VmHWM:") / 1024
            loaded = self.jobs.load()
            phase = loaded[0].phase.value if loaded else "starting"
            self.peaks[phase] = max(self.peaks.get(phase, 0.0), round(rss))
            self.high_water = max(self.high_water, round(high))

    def close(self) -> None:
        self.stop.set()
        self.thread.join()


def _kib(status: str, name: str) -> int:
    return next((int(line.split()[1]) for line in status.splitlines() if line.startswith(name)), 0)


def run_child(
    command: list[str], log: Path, kill_after: float | None, memory: Callable[[int], PhaseMemory]
) -> ChildRun:
    """Run the command; SIGKILL it after ``kill_after`` seconds (None: let it finish). Its peak
    memory is the high-water mark /proc shows for it (not wait4's ru_maxrss: that counts the
    pages the child shared with this process between fork and exec, the simulators' records)."""
    with log.open("ab") as out:
        child = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            command, stdout=out, stderr=subprocess.STDOUT, env=os.environ.copy()
        )
        killer = threading.Timer(kill_after or RUN_TIMEOUT, child.send_signal, (signal.SIGKILL,))
        killer.start()
        sampler = memory(child.pid)
        try:
            _, status = os.waitpid(child.pid, 0)
        finally:
            killer.cancel()
            sampler.close()
        child.returncode = os.waitstatus_to_exitcode(status)
    killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    return ChildRun(None if killed else child.returncode, sampler.high_water)


@dataclass(frozen=True)
class Plan:
    mode: str
    records: int
    kills: int
    seed_value: int


def run_mode(system: LocalSystem, workdir: Path, plan: Plan) -> ModeResult:
    mode, records, kills = plan.mode, plan.records, plan.kills
    created_from = datetime.now(UTC) - SPAN - timedelta(days=2)
    persons = seed(system, records, created_from + timedelta(days=1))
    command = backfill_command(workdir, created_from, mode)
    log = workdir / f"backfill-{mode}.log"
    rng = random.Random(plan.seed_value)
    started = time.perf_counter()
    killed = 0
    runs: list[ChildRun] = []
    peaks: dict[str, float] = {}

    def memory(pid: int) -> PhaseMemory:
        return PhaseMemory(system, pid, peaks)

    # Kill moments spread over a run's likely length: from just after start-up to some seconds on.
    while killed < kills:
        runs.append(run_child(command, log, rng.uniform(1.5, 4.0 + records / 5_000), memory))
        if runs[-1].code is not None:  # finished before the kill came: the job is done
            break
        killed += 1
    else:
        runs.append(run_child(command, log, None, memory))
    code = runs[-1].code
    seconds = time.perf_counter() - started
    if code != 0:
        # The log lives in the bench's temporary directory, gone once the bench stops: its tail
        # travels with the error.
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:]) if log.exists() else ""
        raise AssertionError(f"mdsync backfill ({mode}) exited {code}; the end of its log:\n{tail}")
    job = current_job(system)
    check_end_state(system, records, persons, job)
    peak = max(run.peak_rss_mib for run in runs)
    return ModeResult(
        mode, records, persons, round(seconds, 1), killed, round(peak, 0), dict(job.calls), job.counts, peaks
    )


def current_job(system: LocalSystem) -> JobState:
    loaded = JobStore(system.deps.state).load()
    if loaded is None:
        raise AssertionError("no backfill job in the state store")
    return loaded[0]


def patient_marketo(system: LocalSystem) -> MarketoAdmin:
    """A Marketo admin client that waits for every person in one answer: at a million persons,
    far longer than the harness's usual timeout (the 1,000,000 run's check timed out at 30 s)."""
    return MarketoAdmin(
        system.marketo_admin.base_url.removesuffix("/admin"), system.session, timeout=WHOLE_LISTING_SECONDS
    )


def check_end_state(system: LocalSystem, records: int, persons: int, job: JobState) -> None:
    if job.status is not Status.DONE:
        raise AssertionError(f"the job ended {job.status.value}: {job.error}")
    marketo = patient_marketo(system).persons(fields=("id", "email"))
    emails = [str(p.get("email") or "").lower() for p in marketo]
    duplicates = len(emails) - len(set(emails))
    created = records - int(records * MATCHING)
    # The leads through the Web API, a page of 5,000 at a time, two columns: the whole table in
    # one admin answer is two gigabytes of JSON at a million.
    leads = unlinked = 0
    for page in system.deps.dataverse.read_table("leads", ["leadid", "mdsync_marketoid"]):
        leads += len(page.rows)
        unlinked += sum(1 for row in page.rows if not row.get("mdsync_marketoid"))
    problems = []
    if duplicates:
        problems.append(f"{duplicates} duplicate persons")
    if len(marketo) != persons + created:
        problems.append(f"{len(marketo)} persons, expected {persons + created}")
    if leads != records:
        problems.append(f"{leads} leads, expected {records}")
    links = system.deps.state.list_links(limit=records + persons + 1)
    if len(links) != records:
        problems.append(f"{len(links)} links, expected {records}")
    if unlinked:
        problems.append(f"{unlinked} leads without their Marketo id")
    if problems:
        raise AssertionError("; ".join(problems))


def run(
    records: int, *, kills: int = 5, modes: tuple[str, ...] = ("bulk", "rest"), seed_value: int = 13
) -> list[ModeResult]:
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        config = HarnessConfig(workdir=workdir / "system", batch_wait=0, extra_settings=SHARE)
        system = LocalSystem(config)
        with system:
            for mode in modes:
                system.reset()
                plan = Plan(mode, records, kills if mode == "bulk" else 0, seed_value)
                results.append(run_mode(system, workdir, plan))
    return results


def report(results: list[ModeResult]) -> str:
    lines = [
        "| mode | records | persons | kills | seconds | Marketo calls | Dataverse requests "
        "| Marketo per record | Dataverse per record | peak RSS (MiB) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r.mode} | {r.records:,} | {r.persons:,} | {r.kills} | {r.seconds:,.1f} "
            f"| {r.calls.get('marketo', 0):,} | {r.calls.get('dataverse', 0):,} "
            f"| {r.per_record('marketo'):.4f} | {r.per_record('dataverse'):.4f} | {r.peak_rss_mib:,.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mdsync.bench.backfill", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--records", type=int, default=50_000, help="Dynamics leads (persons: about as many)")
    parser.add_argument("--kills", type=int, default=5, help="times the bulk run is killed and run again")
    parser.add_argument("--modes", default="bulk,rest", help="bulk, rest or both (comma-separated)")
    parser.add_argument("--seed", type=int, default=13, help="seed of the random kill moments")
    parser.add_argument("--output", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    results = run(args.records, kills=args.kills, modes=tuple(args.modes.split(",")), seed_value=args.seed)
    print(report(results))
    for result in results:
        print(f"{result.mode}: peak RSS (MiB) by phase: {result.rss_mib_by_phase}")
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps([asdict(r) for r in results], indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
