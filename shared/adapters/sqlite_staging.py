"""The backfill's staging store in a local SQLite file (the CLI and the local host).

One file per job location; items in one table keyed by (table, bucket, key), without a rowid,
so a bucket range is one index range scan. Writes go in one transaction per call: a page or a
range of buckets is staged whole or not at all.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from shared.adapters._sqlite import SqliteDatabase
from shared.backfill.staging import Item, StagingStore

SERVICE = "staging"
_FETCH = 2_000  # rows per fetch while streaming
_SCHEMA = """
CREATE TABLE IF NOT EXISTS staged (
    tbl TEXT NOT NULL, bucket INTEGER NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (tbl, bucket, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS staged_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class SqliteStaging(StagingStore):
    def __init__(self, path: Path, *, busy_timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.location = f"sqlite:{self.path}"
        self._db = SqliteDatabase(self.path, service=SERVICE, schema=_SCHEMA, busy_timeout=busy_timeout)

    def owner(self) -> str | None:
        with self._db.read() as conn:
            row = conn.execute("SELECT value FROM staged_meta WHERE name = 'job'").fetchone()
        return None if row is None else str(row[0])

    def claim(self, job_id: str) -> None:
        with self._db.write() as conn:
            conn.execute("DELETE FROM staged")
            conn.execute(
                "INSERT INTO staged_meta (name, value) VALUES ('job', ?)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (job_id,),
            )

    def put(self, table: str, items: Iterable[Item]) -> None:
        rows = [(table, i.bucket, i.key, json.dumps(i.value, separators=(",", ":"))) for i in items]
        if not rows:
            return
        with self._db.write() as conn:
            conn.executemany(
                "INSERT INTO staged (tbl, bucket, key, value) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (tbl, bucket, key) DO UPDATE SET value = excluded.value",
                rows,
            )

    def scan(self, table: str, first: int, last: int) -> list[Item]:
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT bucket, key, value FROM staged WHERE tbl = ? AND bucket >= ? AND bucket < ?"
                " ORDER BY bucket, key",
                (table, first, last),
            ).fetchall()
        return [Item(bucket, key, json.loads(value)) for bucket, key, value in rows]

    def stream(self, table: str, first: int, last: int) -> Iterator[Item]:
        with self._db.read() as conn:
            cursor = conn.execute(
                "SELECT bucket, key, value FROM staged WHERE tbl = ? AND bucket >= ? AND bucket < ?"
                " ORDER BY bucket, key",
                (table, first, last),
            )
            while rows := cursor.fetchmany(_FETCH):
                for bucket, key, value in rows:
                    yield Item(bucket, key, json.loads(value))

    def drop(self) -> None:
        self._db.close()
        for suffix in ("", "-wal", "-shm"):
            self.path.with_name(self.path.name + suffix).unlink(missing_ok=True)

    def close(self) -> None:
        self._db.close()
