"""SQLite plumbing shared by the embedded queue and state store.

One file may be used by several processes (the local host delivers while HTTP functions send)
and by several threads in each. So: one connection per thread (sqlite3 connections must not be
used concurrently), WAL so readers never block the writer, a busy timeout so writers queue up
instead of failing at once, and ``BEGIN IMMEDIATE`` for every read-modify-write so the write lock
is taken before the read and two writers cannot interleave. A lock still held when the busy
timeout runs out becomes ServiceUnavailableError: the caller answers 503 or retries later.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from shared.errors import ConfigurationError, MdsyncError, ServiceUnavailableError

logger = logging.getLogger(__name__)

_INCREMENTAL = 2  # PRAGMA auto_vacuum's value for INCREMENTAL
IN_CHUNK = 500  # values per IN (...) query, well under SQLite's variable limit

# Faults of the file or its location, not of the moment: retrying will not help.
_CONFIGURATION_ERRORS = (
    "SQLITE_CANTOPEN",
    "SQLITE_READONLY",
    "SQLITE_PERM",
    "SQLITE_AUTH",
    "SQLITE_CORRUPT",
    "SQLITE_NOTADB",
)


def chunks(items: Sequence[Any], size: int = IN_CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def in_list(head: str, values: Sequence[Any]) -> str:
    """``head IN (?, ?, ...)``: only placeholders are added to the SQL text."""
    return f"{head} IN ({','.join('?' * len(values))})"


def map_sqlite_error(exc: sqlite3.Error, *, service: str, path: Path) -> MdsyncError | None:
    """Our error for an operational SQLite failure; None for programming errors (bugs)."""
    if not isinstance(exc, sqlite3.OperationalError):
        return None
    code = getattr(exc, "sqlite_errorname", None) or "SQLITE_ERROR"
    if code.startswith(_CONFIGURATION_ERRORS):
        return ConfigurationError(f"{service} database {path}: {exc} [{code}]")
    # Busy/locked beyond the timeout, I/O errors, a full disk: the write may succeed later.
    return ServiceUnavailableError(str(exc), service=service, code=code)


class SqliteDatabase:
    """Per-thread connections to one SQLite file, created on first use with ``schema``."""

    def __init__(
        self,
        path: Path,
        *,
        service: str,
        schema: str,
        busy_timeout: float = 5.0,
        synchronous: str = "FULL",
        added_columns: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.path = Path(path)
        self.service = service
        self._schema = schema
        self._added_columns = added_columns
        self._busy_timeout = busy_timeout
        if synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, not {synchronous!r}")
        self._synchronous = synchronous
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._schema_ready = False

    @contextmanager
    def errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            mapped = map_sqlite_error(exc, service=self.service, path=self.path)
            if mapped is None:
                raise
            raise mapped from exc

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A transaction holding the write lock from its first statement; commits on success."""
        with self.errors():
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                self._roll_back(conn)
                raise

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A consistent snapshot for several SELECTs (WAL readers do not block writers)."""
        with self.errors():
            conn = self._connection()
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                if conn.in_transaction:
                    conn.execute("COMMIT")

    def compact(self) -> None:
        """Give the file's free pages back (rows deleted since leave free pages, which SQLite
        reuses but never returns) and truncate the write-ahead log. Best effort: a busy file is
        compacted next time."""
        try:
            conn = self._connection()
            if conn.execute("PRAGMA auto_vacuum").fetchone()[0] != _INCREMENTAL:
                # A file made before auto_vacuum was set: one full rewrite switches it.
                conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
                conn.execute("VACUUM")
            # As a script: through execute() the pragma runs one step, which frees one page.
            conn.executescript("PRAGMA incremental_vacuum;")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.OperationalError as exc:
            logger.info("%s: compaction deferred: %s", self.service, exc)

    def _roll_back(self, conn: sqlite3.Connection) -> None:
        """Leave no transaction open on this thread's connection, whatever failed."""
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        except sqlite3.Error:
            # The connection is in an unknown state: the next call on this thread opens a new one.
            logger.warning("%s: rollback failed; reopening the connection", self.service, exc_info=True)
            self._local.conn = None
            with self._lock:
                self._connections.remove(conn)
            conn.close()

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()
        self._local = threading.local()

    def _connection(self) -> sqlite3.Connection:
        # A connection inherited through fork() belongs to the parent: open a fresh one.
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            return conn
        conn = self._open()
        self._local.conn = conn
        self._local.pid = os.getpid()
        with self._lock:
            self._connections.append(conn)
        return conn

    def _use_wal(self, conn: sqlite3.Connection) -> None:
        """Switch a new file to WAL. The switch needs an exclusive lock and SQLite does not call
        the busy handler for it, so connections opening a fresh file at once retry briefly."""
        deadline = time.monotonic() + self._busy_timeout
        while True:
            try:
                if conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
                    return
                conn.execute("PRAGMA journal_mode=WAL")
            except sqlite3.OperationalError as exc:
                busy = getattr(exc, "sqlite_errorname", "") in ("SQLITE_BUSY", "SQLITE_LOCKED")
                if not busy or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def _add_columns(self, conn: sqlite3.Connection) -> None:
        """Columns a later release added to a table a database made earlier lacks."""
        for table, column in self._added_columns:
            name = column.split()[0]
            present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
            if name in present:
                continue
            try:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {column}")
            except sqlite3.OperationalError as exc:
                if "duplicate column" not in str(exc):  # another process added it just now
                    raise

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves. check_same_thread=False only so
        # that close() may run on another thread; each connection is used by one thread.
        conn = sqlite3.connect(
            self.path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
        )
        # Before anything is written to a new file, so that compact() can hand free pages back
        # to the file system (a no-op on a file that has tables: compact's VACUUM switches it).
        conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        self._use_wal(conn)
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        with self._lock:
            ready = self._schema_ready
        if not ready:
            # Each CREATE ... IF NOT EXISTS is its own statement: processes racing here are fine.
            for statement in self._schema.split(";"):
                if statement.strip():
                    conn.execute(statement)
            self._add_columns(conn)
            with self._lock:
                self._schema_ready = True
        return conn
