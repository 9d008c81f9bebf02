"""The console's records (tallies, errors, audit trail) in SQLite, beside the state store's tables.

Indexed for the console's pages: errors newest-first with keyset pages (``last_seen``, key), by
kind and reason for the groups, by person for resolving; tallies by hour. So a page of the error
list reads one index range, whatever the list holds (measured in ``make bench``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from shared.adapters._clock import from_micros, to_micros
from shared.adapters._sqlite import SqliteDatabase
from shared.ports import (
    AuditEntry,
    ErrorGroup,
    ErrorPage,
    ErrorQuery,
    OperationsStore,
    SyncError,
    Tally,
)

SERVICE = "operations"
_CHUNK = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ops_tallies (
    hour_us INTEGER NOT NULL,
    entity TEXT NOT NULL,
    direction TEXT NOT NULL,
    name TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (hour_us, entity, direction, name)
);
CREATE TABLE IF NOT EXISTS ops_errors (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    reason TEXT NOT NULL,
    message TEXT NOT NULL,
    entity TEXT NOT NULL,
    marketo_id INTEGER,
    dynamics_key TEXT,
    dynamics_id TEXT,
    field TEXT NOT NULL,
    value TEXT NOT NULL,
    first_us INTEGER NOT NULL,
    last_us INTEGER NOT NULL,
    count INTEGER NOT NULL,
    item_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ops_errors_newest ON ops_errors (last_us DESC, key);
CREATE INDEX IF NOT EXISTS ops_errors_groups ON ops_errors (kind, reason, last_us);
CREATE INDEX IF NOT EXISTS ops_errors_marketo ON ops_errors (marketo_id, kind);
CREATE INDEX IF NOT EXISTS ops_errors_dynamics ON ops_errors (dynamics_key);
CREATE TABLE IF NOT EXISTS ops_audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_us INTEGER NOT NULL,
    who TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    outcome TEXT NOT NULL
);
"""

_ERROR_COLUMNS = (
    "key, kind, reason, message, entity, marketo_id, dynamics_id, field, value, first_us, last_us,"
    " count, item_id"
)


def hour_of(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def encode_cursor(error: SyncError) -> str:
    assert error.last_seen is not None
    return f"{to_micros(error.last_seen)}:{error.key}"


def decode_cursor(cursor: str) -> tuple[int, str]:
    """``(last_seen µs, key)``; ValueError for anything else (a hand-made cursor)."""
    micros, sep, key = cursor.partition(":")
    if not sep or not micros.isdigit():
        raise ValueError(f"not a cursor of the error list: {cursor[:40]!r}")
    return int(micros), key


def _where(query: ErrorQuery) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    for column, value in (("kind", query.kind), ("reason", query.reason), ("entity", query.entity)):
        if value:
            clauses.append(f"{column} = ?")
            args.append(value)
    if query.field:
        clauses.append("field = ? COLLATE NOCASE")
        args.append(query.field)
    if query.person:
        person = query.person.strip()
        if person.isdigit():
            clauses.append("marketo_id = ?")
            args.append(int(person))
        else:
            clauses.append("dynamics_key = ?")
            args.append(person.lower())
    if query.text:
        like = f"%{query.text.lower()}%"
        clauses.append(
            "(lower(reason) LIKE ? OR lower(message) LIKE ? OR lower(field) LIKE ? OR lower(value) LIKE ?)"
        )
        args += [like] * 4
    return clauses, args


def _error(row: Sequence[Any]) -> SyncError:
    key, kind, reason, message, entity, marketo_id, dynamics_id, field, value, first, last, count, item = row
    return SyncError(
        key=key,
        kind=kind,
        reason=reason,
        message=message,
        entity=entity,
        marketo_id=marketo_id,
        dynamics_id=dynamics_id,
        field=field,
        value=value,
        first_seen=from_micros(first),
        last_seen=from_micros(last),
        count=count,
        item_id=item,
    )


class SqliteOperationsStore(OperationsStore):
    def __init__(self, path: Path, *, busy_timeout: float = 5.0) -> None:
        self._db = SqliteDatabase(path, service=SERVICE, schema=_SCHEMA, busy_timeout=busy_timeout)

    # --- tallies -------------------------------------------------------------------------------

    def add_tallies(self, tallies: Sequence[Tally]) -> None:
        rows = [
            (to_micros(hour_of(t.hour)), t.entity, t.direction, t.name, t.count) for t in tallies if t.count
        ]
        if not rows:
            return
        with self._db.write() as conn:
            conn.executemany(
                "INSERT INTO ops_tallies (hour_us, entity, direction, name, count) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (hour_us, entity, direction, name)"
                " DO UPDATE SET count = count + excluded.count",
                rows,
            )

    def read_tallies(self, since: datetime) -> list[Tally]:
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT hour_us, entity, direction, name, count FROM ops_tallies WHERE hour_us >= ?"
                " ORDER BY hour_us",
                (to_micros(hour_of(since)),),
            ).fetchall()
        return [Tally(from_micros(h), e, d, n, c) for h, e, d, n, c in rows]

    # --- errors --------------------------------------------------------------------------------

    def record_errors(self, errors: Sequence[SyncError]) -> None:
        if not errors:
            return
        with self._db.write() as conn:
            conn.executemany(
                f"INSERT INTO ops_errors ({_ERROR_COLUMNS}, dynamics_key)"  # noqa: S608 - constant
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET"
                " reason = excluded.reason, message = excluded.message, value = excluded.value,"
                " item_id = excluded.item_id, last_us = max(last_us, excluded.last_us),"
                " count = count + excluded.count",
                [self._row(e) for e in errors],
            )

    @staticmethod
    def _row(e: SyncError) -> tuple[Any, ...]:
        assert e.first_seen is not None, "errors are recorded with times"
        assert e.last_seen is not None, "errors are recorded with times"
        return (
            e.key,
            e.kind,
            e.reason,
            e.message,
            e.entity,
            e.marketo_id,
            e.dynamics_id,
            e.field,
            e.value,
            to_micros(e.first_seen),
            to_micros(e.last_seen),
            e.count,
            e.item_id,
            e.dynamics_id.lower() if e.dynamics_id else None,
        )

    def resolve_errors(self, marketo_ids: Iterable[int], kinds: Iterable[str]) -> int:
        ids = list(dict.fromkeys(marketo_ids))
        wanted = list(dict.fromkeys(kinds))
        if not ids or not wanted:
            return 0
        removed = 0
        with self._db.write() as conn:
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                kind_marks = ",".join("?" * len(wanted))
                cursor = conn.execute(
                    f"DELETE FROM ops_errors WHERE marketo_id IN ({marks}) AND kind IN ({kind_marks})",  # noqa: S608
                    (*chunk, *wanted),
                )
                removed += cursor.rowcount
        return removed

    def remove_errors(self, keys: Iterable[str]) -> None:
        wanted = list(dict.fromkeys(keys))
        with self._db.write() as conn:
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                conn.execute(f"DELETE FROM ops_errors WHERE key IN ({marks})", chunk)  # noqa: S608

    def get_errors(self, keys: Iterable[str]) -> dict[str, SyncError]:
        wanted = list(dict.fromkeys(keys))
        found: dict[str, SyncError] = {}
        with self._db.read() as conn:
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT {_ERROR_COLUMNS} FROM ops_errors WHERE key IN ({marks})",  # noqa: S608
                    chunk,
                ).fetchall()
                found.update((row[0], _error(row)) for row in rows)
        return found

    def list_errors(self, query: ErrorQuery, *, cursor: str | None = None, limit: int = 100) -> ErrorPage:
        clauses, args = _where(query)
        if cursor:
            last_us, key = decode_cursor(cursor)
            clauses.append("(last_us < ? OR (last_us = ? AND key > ?))")
            args += [last_us, last_us, key]
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = f"SELECT {_ERROR_COLUMNS} FROM ops_errors{where} ORDER BY last_us DESC, key LIMIT ?"  # noqa: S608
        with self._db.read() as conn:
            rows = conn.execute(sql, (*args, max(limit, 0) + 1)).fetchall()
        errors = [_error(row) for row in rows[:limit]]
        more = len(rows) > limit and errors
        return ErrorPage(errors, encode_cursor(errors[-1]) if more else None)

    def error_groups(self, query: ErrorQuery) -> list[ErrorGroup]:
        clauses, args = _where(query)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = (
            f"SELECT kind, reason, COUNT(*), MAX(last_us) FROM ops_errors{where}"  # noqa: S608
            " GROUP BY kind, reason ORDER BY COUNT(*) DESC, MAX(last_us) DESC"
        )
        with self._db.read() as conn:
            rows = conn.execute(sql, args).fetchall()
        return [ErrorGroup(kind, reason, count, from_micros(last)) for kind, reason, count, last in rows]

    # --- audit ---------------------------------------------------------------------------------

    def append_audit(self, entries: Sequence[AuditEntry]) -> None:
        if not entries:
            return
        with self._db.write() as conn:
            conn.executemany(
                "INSERT INTO ops_audit (at_us, who, action, target, outcome) VALUES (?, ?, ?, ?, ?)",
                [(to_micros(e.at), e.who, e.action, e.target, e.outcome) for e in entries],
            )

    def read_audit(self, limit: int = 50) -> list[AuditEntry]:
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT at_us, who, action, target, outcome FROM ops_audit"
                " ORDER BY at_us DESC, id DESC LIMIT ?",
                (max(limit, 0),),
            ).fetchall()
        return [
            AuditEntry(from_micros(at), who, action, target, outcome)
            for at, who, action, target, outcome in rows
        ]

    def close(self) -> None:
        self._db.close()
