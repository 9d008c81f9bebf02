"""Retention: the sync log keeps an entry ``SYNC_LOG_RETENTION_DAYS`` days (default 30), and the
embedded queue's file gives back the room of settled messages.

Run daily by the ``sync_log_retention`` timer (``functions/sync_log_retention.py``). Each store
does it the way that is cheap for it: Table Storage deletes the sync log's tables of expired
days (one request per day, whatever it held); SQLite deletes expired rows a few thousand per
transaction, then compacts its file. The queue is compacted only where it is a local file
(Service Bus removes settled messages itself).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shared.ports import NoticeQueue, StateStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Retention:
    state: StateStore
    queue: NoticeQueue
    days: int

    def enforce(self, now: datetime | None = None) -> datetime:
        """Expire what is older than the retention; the cutoff used."""
        cutoff = (now or datetime.now(UTC)) - timedelta(days=self.days)
        self.state.expire_log(cutoff)
        self.queue.compact()
        log.info("sync log: entries before %s expired", cutoff.isoformat(timespec="seconds"))
        return cutoff
