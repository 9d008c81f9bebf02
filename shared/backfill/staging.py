"""The matching index: where the backfill keeps what it read and decided, outside memory.

A million persons and a million records do not fit a 500 MiB process as Python objects, and a
job run by queue messages in the function app cannot keep anything in memory from one step to
the next (nor on an instance's disk: the next step may run elsewhere). So everything the job
reads goes to a staging store, spread over :data:`BUCKETS` buckets by a hash of its join key,
and each matching pass reads one range of buckets at a time: a hash join that holds only a few
thousand items in memory whatever the size.

Items are JSON values, upserted by (table, bucket, key): writing an item twice leaves it once,
which is what makes a repeated unit of work harmless. Two adapters (one contract suite,
tests/adapters/test_staging_contract.py):

* ``SqliteStaging`` (``shared/adapters/sqlite_staging.py``): a local file, for the CLI and the
  local host;
* ``TableStaging`` (``shared/adapters/table_staging.py``): one Azure Table per job in the state
  store's storage account, for the function app (durable between step invocations on any
  instance); dropping the job drops the table.
"""

from __future__ import annotations

import abc
import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

BUCKETS = 4096

# What the job stages, by table (the bucket each is spread by):
PERSONS = "persons"  # Marketo persons read (by Marketo id)
RECORDS = "records"  # Dynamics rows read (by record)
LINKS_BY_RECORD = "links_r"  # stored links (by record)
LINKS_BY_PERSON = "links_m"  # stored links (by Marketo id)
BY_ID = "byid"  # records that name a person, by link or by stored id (by that Marketo id)
BY_EMAIL = "emails"  # persons and records left for matching by email (by email)
PAIRS = "pairs"  # linked pairs and what to write to each side (by Marketo id)
CREATES = "creates"  # persons to create for Dynamics records (by record)
FOUND = "found"  # persons found after creating them (by record)
FAILED = "failed"  # writes that did not happen, per pair or creation (by Marketo id / record)
HELD = "held"  # records changed by someone else during the job: left to the live sync (by record)
HANDOVER = "handover"  # pairs the live sync repairs (a qualified or merged record, a gone side)
ISSUES = "issues"  # ambiguous matches and what was skipped, for the preview (by key)


def bucket_of(text: str) -> int:
    """A stable bucket for a join key (the same in every process and on every machine)."""
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=4).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def person_bucket(marketo_id: int) -> int:
    return bucket_of(f"m{marketo_id}")


def record_key(entity: str, dynamics_id: str) -> str:
    return f"{entity}:{dynamics_id.lower()}"


def record_bucket(entity: str, dynamics_id: str) -> int:
    return bucket_of(record_key(entity, dynamics_id))


@dataclass(frozen=True)
class Item:
    bucket: int
    key: str
    value: dict[str, Any]


def ranges(width: int) -> list[tuple[int, int]]:
    """The bucket ranges ``[first, last)`` a pass walks, each ``width`` buckets wide."""
    width = max(1, min(width, BUCKETS))
    return [(start, min(start + width, BUCKETS)) for start in range(0, BUCKETS, width)]


def range_width(items: int, per_range: int = 5_000) -> int:
    """How many buckets hold about ``per_range`` items when ``items`` are spread over all."""
    if items <= 0:
        return BUCKETS
    return max(1, min(BUCKETS, BUCKETS * per_range // items))


class StagingStore(abc.ABC):
    """One job's staged items (see the module docstring)."""

    #: Where the items live, as the job records it ("sqlite:<path>", "table:<name>").
    location: str = ""

    @abc.abstractmethod
    def owner(self) -> str | None:
        """The job id this staging was opened for, or None when it is new (empty)."""

    @abc.abstractmethod
    def claim(self, job_id: str) -> None:
        """Mark the staging as ``job_id``'s (called once, when the job starts reading)."""

    @abc.abstractmethod
    def put(self, table: str, items: Iterable[Item]) -> None:
        """Create or replace each item (by bucket and key)."""

    @abc.abstractmethod
    def scan(self, table: str, first: int, last: int) -> list[Item]:
        """The items of buckets ``first`` to ``last - 1``, in bucket then key order (a range is
        sized to fit in memory: see :func:`range_width`)."""

    def stream(self, table: str, first: int, last: int) -> Iterator[Item]:
        """:meth:`scan`, one item at a time, for a range too large to hold (write nothing to the
        staging until the stream is read: an adapter may hold a read open meanwhile)."""
        yield from self.scan(table, first, last)

    @abc.abstractmethod
    def drop(self) -> None:
        """Forget everything staged (the job is done, or starts again)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
