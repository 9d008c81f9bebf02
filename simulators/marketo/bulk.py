"""What the bulk APIs share: job queues, the worker that runs jobs, files, the export quota.

Marketo runs bulk jobs asynchronously, so does the simulator: a background thread (started on
the first job, stopped by :meth:`BulkState.close`) moves queued jobs to processing and lets each
processing job do a step of work at a time (select persons, write a chunk of the file, import a
chunk of rows). Each step holds the instance lock only while it touches persons, so the REST API
keeps answering while a million-row job runs.

Each kind of job has its own FIFO queue (extract jobs of every object type share one in Marketo;
the simulator has lead jobs only): at most ``max_processing`` jobs processing and at most
``max_queued`` in the queue, the processing ones included. Extract files are written to a
temporary directory and served from disk (with ``Range``), so their size costs no memory.
"""

from __future__ import annotations

import csv
import io
import shutil
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from simulators.marketo.config import BulkLimits
from simulators.marketo.gate import CENTRAL

# File formats: the import docs name comma, tab and semicolon delimiters (an extract page calls
# SSV "space-separated"; the simulator uses a semicolon for both).
DELIMITERS = {"CSV": ",", "TSV": "\t", "SSV": ";"}
DAY = 86_400.0


def csv_text(rows: list[list[str]], delimiter: str) -> str:
    """Rows as delimited text, each ended by ``\n``, quoted as RFC 4180 says: a value holding the
    delimiter, a quote, ``\n`` or ``\r`` is quoted (the csv module quotes a lone ``\r`` only when
    the terminator it is given contains one, hence CRLF, cut back to LF)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    lines = []
    for row in rows:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(row)
        lines.append(buffer.getvalue()[:-2])
    return "".join(f"{line}\n" for line in lines)


class Job(Protocol):
    status: str
    queued_at: float  # monotonic, for the start delay

    def begin(self, now: float) -> None: ...

    def step(self) -> bool:
        """Do some work; True if anything was done (False: waiting for its pace, or done)."""
        ...

    @property
    def running(self) -> bool: ...


J = TypeVar("J", bound=Job)
K = TypeVar("K")


def kept(jobs: dict[K, Any], days: float, now: float) -> dict[K, Any]:
    """``jobs``, having forgotten (and dropped the files of) those finished over ``days`` ago."""
    horizon = now - days * DAY
    for key, job in list(jobs.items()):
        if job.finished_on is not None and job.finished_on < horizon:
            job.discard()
            del jobs[key]
    return jobs


class JobQueue(Generic[J]):
    """A FIFO of waiting jobs and the jobs processing; capacity counts both."""

    def __init__(self) -> None:
        self.waiting: deque[J] = deque()
        self.processing: list[J] = []

    def __len__(self) -> int:
        return len(self.waiting) + len(self.processing)

    def push(self, job: J) -> None:
        job.queued_at = time.monotonic()
        self.waiting.append(job)

    def discard(self, job: J) -> None:
        if job in self.waiting:
            self.waiting.remove(job)
        if job in self.processing:
            self.processing.remove(job)

    def start_ready(self, limits: BulkLimits, now: float) -> None:
        """Move waiting jobs to processing while a slot is free and the head has waited enough."""
        self.processing = [j for j in self.processing if j.running]
        while self.waiting and len(self.processing) < limits.max_processing:
            head = self.waiting[0]
            if time.monotonic() - head.queued_at < limits.start_delay_seconds:
                return
            self.waiting.popleft()
            head.begin(now)
            self.processing.append(head)

    def clear(self) -> None:
        self.waiting.clear()
        self.processing.clear()


class BulkState:
    """Bulk jobs of one simulated instance. Guarded by the instance lock (``lock``), which the
    worker takes for each step that reads or writes shared state."""

    def __init__(self, limits: BulkLimits, clock: Callable[[], float], lock: threading.RLock) -> None:
        self.limits = limits
        self.clock = clock
        self.lock = lock
        self.exports: JobQueue[Any] = JobQueue()
        self.imports: JobQueue[Any] = JobQueue()
        self.export_jobs: dict[str, Any] = {}
        self.import_jobs: dict[int, Any] = {}
        self.next_batch_id = 1001
        self.paused = False
        # Injected faults: the next file downloads break after this many bytes each.
        self.cut_downloads: deque[int] = deque()
        self._export_day: date = self._today()
        self._export_used = 0
        self._dir: Path | None = None
        self._worker: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()

    # --- settings ------------------------------------------------------------------------------

    def configure(self, **changes: Any) -> BulkLimits:
        self.limits = replace(self.limits, **changes)
        self._wake.set()
        return self.limits

    def pause(self, paused: bool) -> None:
        """Held jobs still start (up to the processing limit) but make no progress."""
        self.paused = paused
        self._wake.set()

    # --- the export quota (bytes of files finished today, US Central) ----------------------------

    def _today(self) -> date:
        return datetime.fromtimestamp(self.clock(), CENTRAL).date()

    @property
    def export_used(self) -> int:
        today = self._today()
        if today != self._export_day:
            self._export_day, self._export_used = today, 0
        return self._export_used

    def spend_export(self, size: int) -> None:
        self._export_used = self.export_used + size

    def set_export_used(self, used: int) -> None:
        self._export_day, self._export_used = self._today(), used

    # --- files ----------------------------------------------------------------------------------

    def file_path(self, name: str) -> Path:
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="marketo-bulk-"))
        return self._dir / name

    # --- the worker -----------------------------------------------------------------------------

    def wake(self) -> None:
        """A job was queued: make sure the worker runs and looks at it now."""
        if self._worker is None or not self._worker.is_alive():
            self._stop.clear()
            self._worker = threading.Thread(target=self._run, name="marketo-bulk", daemon=True)
            self._worker.start()
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._tick():
                self._wake.wait(0.02)
                self._wake.clear()

    def _tick(self) -> bool:
        with self.lock:
            for queue in (self.exports, self.imports):
                queue.start_ready(self.limits, self.clock())
            if self.paused:
                return False
            active = [*self.exports.processing, *self.imports.processing]
        worked = False
        for job in active:
            worked = job.step() or worked
        return worked

    def jobs(self) -> Iterator[Any]:
        yield from self.export_jobs.values()
        yield from self.import_jobs.values()

    def reset(self, limits: BulkLimits) -> None:
        with self.lock:
            for job in list(self.jobs()):
                job.discard()
            self.exports.clear()
            self.imports.clear()
            self.export_jobs.clear()
            self.import_jobs.clear()
            self.limits = limits
            self.paused = False
            self.cut_downloads.clear()
            self.set_export_used(0)

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._worker is not None:
            self._worker.join(timeout=10)
        with self.lock:
            for job in list(self.jobs()):
                job.discard()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
