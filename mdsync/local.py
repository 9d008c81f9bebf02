"""The embedded default: the SQLite queue and state named by the settings, for the local host."""

from __future__ import annotations

from pathlib import Path

from shared.adapters.sqlite_queue import SqliteQueue
from shared.bootstrap import container, reset_container
from shared.config import QueueBackend, StateBackend
from shared.errors import ConfigurationError, MdsyncError


def local_queue() -> SqliteQueue:
    settings = container().settings
    if settings.queue_backend is not QueueBackend.SQLITE:
        raise ConfigurationError(
            "the local host delivers from the SQLite queue: set MDSYNC_QUEUE_BACKEND=sqlite",
            settings=("MDSYNC_QUEUE_BACKEND",),
        )
    queue = container().queue
    assert isinstance(queue, SqliteQueue)
    return queue


def local_backfill_queue() -> SqliteQueue:
    """The backfill's step queue, in the same file as the notice queue."""
    settings = container().settings
    local_queue()  # the same checks
    return SqliteQueue(settings.sqlite_path, queue_name=settings.backfill_queue_name)


def local_state_files() -> list[Path]:
    """The SQLite files of the local queue and state (what --reset-state deletes)."""
    settings = container().settings
    base = settings.sqlite_path
    files = []
    if settings.queue_backend is QueueBackend.SQLITE:
        files.append(base)
    if settings.state_backend is StateBackend.SQLITE:
        files.append(base.with_suffix(".state.sqlite3"))
        files.append(base.with_suffix(".backfill.sqlite3"))
    return [f.with_name(f.name + suffix) for f in files for suffix in ("", "-wal", "-shm")]


def reset_local_state() -> list[Path]:
    """Delete the local queue and state (they belong to simulators that are gone)."""
    removed = []
    reset_container()
    for path in local_state_files():
        if path.exists():
            path.unlink()
            removed.append(path)
    reset_container()
    return removed


def check_local_state() -> str | None:
    """Why the local state cannot be used with the running simulators, or None. Unreachable
    simulators are not a reason here: the functions check again on their first run."""
    deps = container()
    try:
        deps.verify_instance()
    except ConfigurationError as exc:
        return f"{exc.line}; or start with `mdsync devhost --reset-state`"
    except MdsyncError:
        return None
    finally:
        reset_container()
    return None
