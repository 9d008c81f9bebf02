"""The embedded state store: checkpoints, links, shadows, sync log, leases and parked notices
in one SQLite file, safe for several threads and processes (see ``_sqlite``).

Contract shared with the Table Storage adapter (the contract tests hold both to it):

- An etag is an opaque version token. A write that carries one is conditional and raises
  ConflictError when the stored version differs or the item is gone; an empty etag on a link or
  a shadow means "whatever is stored".
- A Dynamics record is linked to at most one person: linking it to a second person raises
  ConflictError. Dynamics ids compare case-insensitively (they are GUIDs).
- ``put_shadows`` writes each shadow on its own: the ones with a stale etag are skipped and, once
  the others are written, one ConflictError names them.
- A lease is held by one owner until it expires; its owner may renew it; an expired lease may be
  taken by anyone, and an unexpired one by whoever names its holder as gone (``replacing``);
  releasing a lease one does not hold does nothing.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from shared.adapters._clock import Clock, from_micros, system_clock, to_datetime, to_micros
from shared.adapters._sqlite import SqliteDatabase
from shared.adapters._sqlite import chunks as _chunks
from shared.adapters._sqlite import in_list as _in
from shared.errors import ConflictError
from shared.notices import FieldValue
from shared.ports import Checkpoint, LeaseState, Link, LogEntry, ParkedNotice, Shadow, StateStore

SERVICE = "state"
_EXPIRE_CHUNK = 5_000  # expired log rows deleted per transaction

_SCHEMA = """
CREATE TABLE IF NOT EXISTS state_checkpoints (
    name TEXT PRIMARY KEY, value TEXT NOT NULL, etag TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS state_links (
    marketo_id INTEGER PRIMARY KEY,
    entity TEXT NOT NULL,
    dynamics_id TEXT NOT NULL,
    dynamics_key TEXT NOT NULL,
    etag TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS state_links_dynamics ON state_links (entity, dynamics_key);
CREATE TABLE IF NOT EXISTS state_shadows (
    marketo_id INTEGER PRIMARY KEY, body TEXT NOT NULL, etag TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS state_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_us INTEGER NOT NULL,
    marketo_id INTEGER,
    dynamics_id TEXT,
    dynamics_key TEXT,
    entity TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL,
    fields TEXT NOT NULL,
    notice_id TEXT,
    vals TEXT
);
CREATE INDEX IF NOT EXISTS state_log_marketo ON state_log (marketo_id, at_us, id);
CREATE INDEX IF NOT EXISTS state_log_dynamics ON state_log (dynamics_key, at_us, id);
CREATE INDEX IF NOT EXISTS state_log_at ON state_log (at_us, id);
CREATE TABLE IF NOT EXISTS state_leases (
    name TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS state_parked (
    dedup_id TEXT PRIMARY KEY, body TEXT NOT NULL, reason TEXT NOT NULL, parked_at_us INTEGER NOT NULL
);
"""


def dynamics_key(dynamics_id: str) -> str:
    """Dataverse ids are GUIDs: the same record may arrive upper- or lower-case."""
    return dynamics_id.lower()


def _shadow_body(shadow: Shadow) -> str:
    return json.dumps(shadow.values, sort_keys=True)


def _new_etag() -> str:
    return uuid.uuid4().hex


_LOG_SELECT = (
    "SELECT marketo_id, dynamics_id, entity, action, detail, fields, at_us, notice_id, vals FROM state_log"
)
# Columns added after a release; a database made before gets them on open.
_ADDED_COLUMNS = (("state_log", "vals TEXT"),)


class SqliteStateStore(StateStore):
    """The state store in one SQLite file (see the module docstring for the contract)."""

    def __init__(self, path: Path, *, busy_timeout: float = 5.0, clock: Clock = system_clock) -> None:
        self._clock = clock
        self._db = SqliteDatabase(
            path, service=SERVICE, schema=_SCHEMA, busy_timeout=busy_timeout, added_columns=_ADDED_COLUMNS
        )

    # --- checkpoints ---------------------------------------------------------------------------

    def get_checkpoint(self, name: str) -> Checkpoint | None:
        with self._db.read() as conn:
            row = conn.execute("SELECT value, etag FROM state_checkpoints WHERE name = ?", (name,)).fetchone()
        return None if row is None else Checkpoint(name=name, value=row[0], etag=row[1])

    def put_checkpoint(self, name: str, value: str, *, etag: str | None) -> Checkpoint:
        new = _new_etag()
        with self._db.write() as conn:
            if etag is None:
                cursor = conn.execute(
                    "INSERT INTO state_checkpoints (name, value, etag) VALUES (?, ?, ?)"
                    " ON CONFLICT (name) DO NOTHING",
                    (name, value, new),
                )
                if cursor.rowcount != 1:
                    raise ConflictError(
                        f"checkpoint {name!r} already exists", service=SERVICE, code="EntityAlreadyExists"
                    )
            else:
                cursor = conn.execute(
                    "UPDATE state_checkpoints SET value = ?, etag = ? WHERE name = ? AND etag = ?",
                    (value, new, name, etag),
                )
                if cursor.rowcount != 1:
                    raise ConflictError(
                        f"checkpoint {name!r} changed since it was read",
                        service=SERVICE,
                        code="UpdateConditionNotSatisfied",
                    )
        return Checkpoint(name=name, value=value, etag=new)

    # --- links ---------------------------------------------------------------------------------

    def get_links_by_marketo(self, marketo_ids: Iterable[int]) -> dict[int, Link]:
        ids = list(dict.fromkeys(marketo_ids))
        found: dict[int, Link] = {}
        with self._db.read() as conn:
            for chunk in _chunks(ids):
                query = _in(
                    "SELECT marketo_id, entity, dynamics_id, etag FROM state_links WHERE marketo_id", chunk
                )
                rows = conn.execute(query, chunk).fetchall()
                for row in rows:
                    found[row[0]] = Link(*row)
        return found

    def get_links_by_dynamics(
        self, entity: str, dynamics_ids: Iterable[str], *, hints: Mapping[str, int] | None = None
    ) -> dict[str, Link]:
        # The index by record answers in one query per 500 ids: hints would not make it cheaper.
        by_key: dict[str, list[str]] = {}
        for dynamics_id in dynamics_ids:
            by_key.setdefault(dynamics_key(dynamics_id), []).append(dynamics_id)
        found: dict[str, Link] = {}
        with self._db.read() as conn:
            for chunk in _chunks(list(by_key)):
                query = _in(
                    "SELECT marketo_id, entity, dynamics_id, etag, dynamics_key FROM state_links"
                    " WHERE entity = ? AND dynamics_key",
                    chunk,
                )
                rows = conn.execute(query, (entity, *chunk)).fetchall()
                for *fields, key in rows:
                    for asked in by_key[key]:
                        found[asked] = Link(*fields)
        return found

    def list_links(self, *, after: int = 0, limit: int = 1000) -> list[Link]:
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT marketo_id, entity, dynamics_id, etag FROM state_links WHERE marketo_id > ?"
                " ORDER BY marketo_id LIMIT ?",
                (after, limit),
            ).fetchall()
        return [Link(*row) for row in rows]

    def put_link(self, link: Link) -> Link:
        with self._db.write() as conn:
            return self._put_link(conn, link)

    def put_links(self, links: Sequence[Link]) -> dict[int, ConflictError]:
        refused: dict[int, ConflictError] = {}
        with self._db.write() as conn:
            for link in links:
                try:
                    self._put_link(conn, link)
                except ConflictError as exc:
                    refused[link.marketo_id] = exc
        return refused

    def _put_link(self, conn: sqlite3.Connection, link: Link) -> Link:
        new = _new_etag()
        key = dynamics_key(link.dynamics_id)
        current = conn.execute(
            "SELECT etag FROM state_links WHERE marketo_id = ?", (link.marketo_id,)
        ).fetchone()
        if link.etag and (current is None or current[0] != link.etag):
            raise ConflictError(
                f"the link of person {link.marketo_id} changed since it was read",
                service=SERVICE,
                code="UpdateConditionNotSatisfied",
            )
        owner = conn.execute(
            "SELECT marketo_id FROM state_links WHERE entity = ? AND dynamics_key = ?",
            (link.entity, key),
        ).fetchone()
        if owner is not None and owner[0] != link.marketo_id:
            raise ConflictError(
                f"{link.entity} {link.dynamics_id} is already linked to person {owner[0]}",
                service=SERVICE,
                code="DynamicsRecordAlreadyLinked",
            )
        conn.execute(
            "INSERT INTO state_links (marketo_id, entity, dynamics_id, dynamics_key, etag)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (marketo_id) DO UPDATE SET"
            " entity = excluded.entity, dynamics_id = excluded.dynamics_id,"
            " dynamics_key = excluded.dynamics_key, etag = excluded.etag",
            (link.marketo_id, link.entity, link.dynamics_id, key, new),
        )
        return Link(link.marketo_id, link.entity, link.dynamics_id, etag=new)

    def delete_link(self, link: Link) -> None:
        with self._db.write() as conn:
            row = conn.execute(
                "SELECT etag FROM state_links WHERE marketo_id = ? AND entity = ? AND dynamics_key = ?",
                (link.marketo_id, link.entity, dynamics_key(link.dynamics_id)),
            ).fetchone()
            if row is None:
                return  # this link is already gone (the person may be linked elsewhere now)
            if link.etag and row[0] != link.etag:
                raise ConflictError(
                    f"the link of person {link.marketo_id} changed since it was read",
                    service=SERVICE,
                    code="UpdateConditionNotSatisfied",
                )
            conn.execute("DELETE FROM state_links WHERE marketo_id = ?", (link.marketo_id,))

    # --- shadows -------------------------------------------------------------------------------

    def get_shadows(self, marketo_ids: Iterable[int]) -> dict[int, Shadow]:
        ids = list(dict.fromkeys(marketo_ids))
        found: dict[int, Shadow] = {}
        with self._db.read() as conn:
            for chunk in _chunks(ids):
                query = _in("SELECT marketo_id, body, etag FROM state_shadows WHERE marketo_id", chunk)
                rows = conn.execute(query, chunk).fetchall()
                for marketo_id, body, etag in rows:
                    values: dict[str, FieldValue] = json.loads(body)
                    found[marketo_id] = Shadow(marketo_id, values, etag)
        return found

    def put_shadows(self, shadows: Sequence[Shadow]) -> None:
        # One statement for all the updates (each conditional on its etag) and one for the
        # inserts, rather than a call per row: a worker batch writes hundreds of shadows.
        updates = [(_shadow_body(s), _new_etag(), s.marketo_id, s.etag) for s in shadows if s.etag]
        inserts = [(s.marketo_id, _shadow_body(s), _new_etag()) for s in shadows if not s.etag]
        with self._db.write() as conn:
            updated = conn.executemany(
                "UPDATE state_shadows SET body = ?, etag = ? WHERE marketo_id = ? AND etag = ?", updates
            ).rowcount
            stale = self._not_updated(conn, updates) if updated != len(updates) else []
            conn.executemany(
                "INSERT INTO state_shadows (marketo_id, body, etag) VALUES (?, ?, ?)"
                " ON CONFLICT (marketo_id) DO UPDATE SET body = excluded.body, etag = excluded.etag",
                inserts,
            )
        if stale:
            raise ConflictError(
                f"shadow(s) changed since they were read, not written: persons {stale}",
                service=SERVICE,
                code="UpdateConditionNotSatisfied",
            )

    def _not_updated(self, conn: sqlite3.Connection, updates: list[tuple[str, str, int, str]]) -> list[int]:
        """The persons of ``updates`` whose stored etag is not the one their update set."""
        ids = list(dict.fromkeys(marketo_id for _, _, marketo_id, _ in updates))
        stored: dict[int, str] = {}
        for chunk in _chunks(ids):
            query = _in("SELECT marketo_id, etag FROM state_shadows WHERE marketo_id", chunk)
            stored.update(conn.execute(query, chunk).fetchall())
        return [marketo_id for _, etag, marketo_id, _ in updates if stored.get(marketo_id) != etag]

    def delete_shadow(self, marketo_id: int) -> None:
        with self._db.write() as conn:
            conn.execute("DELETE FROM state_shadows WHERE marketo_id = ?", (marketo_id,))

    # --- sync log ------------------------------------------------------------------------------

    def append_log(self, entries: Sequence[LogEntry]) -> None:
        if not entries:
            return
        now_us = int(self._clock() * 1_000_000)
        with self._db.write() as conn:
            conn.executemany(
                "INSERT INTO state_log (at_us, marketo_id, dynamics_id, dynamics_key, entity,"
                " action, detail, fields, notice_id, vals) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        now_us if e.at is None else to_micros(e.at),
                        e.marketo_id,
                        e.dynamics_id,
                        None if e.dynamics_id is None else dynamics_key(e.dynamics_id),
                        e.entity,
                        e.action,
                        e.detail,
                        json.dumps(list(e.fields)),
                        e.notice_id,
                        json.dumps(e.values) if e.values else None,
                    )
                    for e in entries
                ],
            )

    def read_log(
        self, *, marketo_id: int | None = None, dynamics_id: str | None = None, limit: int = 200
    ) -> list[LogEntry]:
        """Newest first. With both ids, entries about either; with neither, all entries."""
        clauses: list[str] = []
        args: list[Any] = []
        if marketo_id is not None:
            clauses.append("marketo_id = ?")
            args.append(marketo_id)
        if dynamics_id is not None:
            clauses.append("dynamics_key = ?")
            args.append(dynamics_key(dynamics_id))
        where = f" WHERE {' OR '.join(clauses)}" if clauses else ""
        query = _LOG_SELECT + where + " ORDER BY at_us DESC, id DESC LIMIT ?"
        with self._db.read() as conn:
            rows = conn.execute(query, (*args, max(limit, 0))).fetchall()
        return [
            LogEntry(
                marketo_id=m,
                dynamics_id=d,
                entity=entity,
                action=action,
                detail=detail,
                fields=tuple(json.loads(fields)),
                at=from_micros(at_us),
                notice_id=notice_id,
                values=json.loads(vals) if vals else {},
            )
            for m, d, entity, action, detail, fields, at_us, notice_id, vals in rows
        ]

    def expire_log(self, before: datetime) -> None:
        """A few thousand rows per transaction, so the worker's writes wait only moments."""
        cutoff = to_micros(before)
        while True:
            with self._db.write() as conn:
                deleted = conn.execute(
                    "DELETE FROM state_log WHERE id IN"
                    " (SELECT id FROM state_log WHERE at_us < ? ORDER BY at_us LIMIT ?)",
                    (cutoff, _EXPIRE_CHUNK),
                ).rowcount
            if deleted < _EXPIRE_CHUNK:
                break
        self._db.compact()

    # --- leases --------------------------------------------------------------------------------

    def acquire_lease(self, name: str, owner: str, seconds: float, *, replacing: str | None = None) -> bool:
        now = self._clock()
        with self._db.write() as conn:
            row = conn.execute(
                "SELECT owner, expires_at FROM state_leases WHERE name = ?", (name,)
            ).fetchone()
            if row is not None and row[0] not in (owner, replacing) and row[1] > now:
                return False
            conn.execute(
                "INSERT INTO state_leases (name, owner, expires_at) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET owner = excluded.owner,"
                " expires_at = excluded.expires_at",
                (name, owner, now + seconds),
            )
        return True

    def get_lease(self, name: str) -> LeaseState | None:
        with self._db.read() as conn:
            row = conn.execute(
                "SELECT owner, expires_at FROM state_leases WHERE name = ?", (name,)
            ).fetchone()
        return None if row is None else LeaseState(name, row[0], to_datetime(row[1]))

    def release_lease(self, name: str, owner: str) -> None:
        with self._db.write() as conn:
            conn.execute("DELETE FROM state_leases WHERE name = ? AND owner = ?", (name, owner))

    # --- parked notices ------------------------------------------------------------------------

    def park(self, notices: Sequence[ParkedNotice]) -> None:
        with self._db.write() as conn:
            conn.executemany(
                "INSERT INTO state_parked (dedup_id, body, reason, parked_at_us) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (dedup_id) DO UPDATE SET body = excluded.body,"
                " reason = excluded.reason, parked_at_us = excluded.parked_at_us",
                [(p.dedup_id, p.body, p.reason, to_micros(p.parked_at)) for p in notices],
            )

    def parked(self) -> list[ParkedNotice]:
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT dedup_id, body, reason, parked_at_us FROM state_parked"
                " ORDER BY parked_at_us, dedup_id"
            ).fetchall()
        return [ParkedNotice(d, b, r, from_micros(at)) for d, b, r, at in rows]

    def unpark(self, dedup_ids: Iterable[str]) -> None:
        ids = list(dict.fromkeys(dedup_ids))
        with self._db.write() as conn:
            for chunk in _chunks(ids):
                conn.execute(_in("DELETE FROM state_parked WHERE dedup_id", chunk), chunk)

    def close(self) -> None:
        self._db.close()
