"""The embedded default: the SQLite queue and state named by the settings."""

from __future__ import annotations

from shared.adapters.sqlite_queue import SqliteQueue
from shared.bootstrap import container
from shared.config import QueueBackend
from shared.errors import ConfigurationError


def local_queue() -> SqliteQueue:
    settings = container().settings
    if settings.queue_backend is not QueueBackend.SQLITE:
        raise ConfigurationError(
            "the local host delivers from the SQLite queue: set MDSYNC_QUEUE_BACKEND=sqlite"
        )
    queue = container().queue
    assert isinstance(queue, SqliteQueue)
    return queue
