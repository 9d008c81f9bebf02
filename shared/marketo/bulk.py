"""What the two bulk APIs share: file formats, parsing whole records, and polling a job.

Bulk jobs run asynchronously at Marketo: a client creates one, then asks for its status until
it has finished. :class:`BulkJobClient` holds that loop for both, on the client's transport.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Iterator
from typing import Protocol, TypeVar

from shared.marketo.transport import Transport

# The formats a bulk file may have (SSV is semicolon-separated, as the import docs say).
DELIMITERS = {"CSV": ",", "TSV": "\t", "SSV": ";"}


class Job(Protocol):
    @property
    def finished(self) -> bool: ...

    @property
    def status(self) -> str: ...


J = TypeVar("J", bound=Job)


def parse_records(block: bytes, delimiter: str) -> Iterator[list[str]]:
    """The records of a block of whole records (UTF-8)."""
    yield from csv.reader(io.StringIO(block.decode("utf-8"), newline=""), delimiter=delimiter)


class BulkJobClient:
    """A bulk API's calls of one :class:`~shared.marketo.MarketoClient`; ``clock``/``sleep`` are
    the client's (tests drive them)."""

    def __init__(
        self,
        transport: Transport,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._transport = transport
        self._clock = clock
        self._sleep = sleep

    def _poll(self, status: Callable[[], J], what: str, poll_seconds: float, timeout: float | None) -> J:
        """``status()`` every ``poll_seconds`` until the job has finished (TimeoutError when the
        next poll would pass ``timeout``)."""
        started = self._clock()
        while True:
            job = status()
            if job.finished:
                return job
            if timeout is not None and self._clock() - started + poll_seconds > timeout:
                raise TimeoutError(f"{what} still {job.status} after {timeout:.0f} s")
            self._sleep(poll_seconds)
