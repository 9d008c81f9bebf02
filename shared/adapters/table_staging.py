"""The backfill's staging store on Azure Table Storage (the function app).

One table per job, ``<prefix>stg<job id>``, in the state store's account: a step running on any
instance sees what the last step staged, and dropping the job deletes the table in one call
(deleting a million entities one by one would take longer than the job). PartitionKey is
``<table>-<bucket>`` (zero-padded, so a bucket range is one PartitionKey range), RowKey the
escaped item key, the value JSON in ``V`` (split across properties past 64 KiB).

Writes: upserts grouped by partition into transactions of up to 100; partitions in parallel.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from typing import Any

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.data.tables import TableClient, TableServiceClient, UpdateMode

from shared.adapters._table_keys import escape_key, join_text, split_text
from shared.adapters._tables_errors import map_tables_error
from shared.adapters.table_state import _transaction_chunks
from shared.backfill.staging import Item, StagingStore

META_PARTITION = "meta"


def partition(table: str, bucket: int) -> str:
    return f"{table}-{bucket:04d}"


def _unescape(key: str) -> str:
    out = bytearray()
    i = 0
    while i < len(key):
        if key[i] == "~":
            out += bytes.fromhex(key[i + 1 : i + 3])
            i += 3
        else:
            out += key[i].encode()
            i += 1
    return out.decode("utf-8")


class TableStaging(StagingStore):
    def __init__(self, service: TableServiceClient, table_name: str, *, max_workers: int = 8) -> None:
        self._service = service
        self.table_name = table_name
        self.location = f"table:{table_name}"
        self._table: TableClient | None = None
        self._pool = ThreadPoolExecutor(max_workers, thread_name_prefix="mdsync-staging")

    @contextmanager
    def _errors(self) -> Any:
        try:
            yield
        except AzureError as exc:
            raise map_tables_error(exc) from exc

    def _client(self) -> TableClient:
        if self._table is None:
            with self._errors():
                self._table = self._service.create_table_if_not_exists(self.table_name)
        return self._table

    def owner(self) -> str | None:
        with self._errors():
            try:
                entity = self._client().get_entity(META_PARTITION, "job")
            except ResourceNotFoundError:
                return None
        return str(entity["Value"])

    def claim(self, job_id: str) -> None:
        with self._errors():
            self._client().upsert_entity(
                {"PartitionKey": META_PARTITION, "RowKey": "job", "Value": job_id}, mode=UpdateMode.REPLACE
            )

    def put(self, table: str, items: Iterable[Item]) -> None:
        groups: dict[str, list[tuple[Item, dict[str, Any]]]] = {}
        for item in items:
            text = json.dumps(item.value, separators=(",", ":"))
            key = partition(table, item.bucket)
            entity = {"PartitionKey": key, "RowKey": escape_key(item.key), **split_text("V", text)}
            groups.setdefault(key, []).append((item, entity))
        calls = [
            partial(self._submit, [entity for _, entity in chunk])
            for group in groups.values()
            for chunk in _transaction_chunks(group)
        ]
        for future in [self._pool.submit(call) for call in calls]:
            future.result()

    def _submit(self, entities: list[dict[str, Any]]) -> None:
        operations: list[Any] = [("upsert", e, {"mode": UpdateMode.REPLACE}) for e in entities]
        with self._errors():
            self._client().submit_transaction(operations)

    def scan(self, table: str, first: int, last: int) -> list[Item]:
        query = "PartitionKey ge @first and PartitionKey lt @last"
        params = {"first": partition(table, first), "last": partition(table, last)}
        with self._errors():
            entities = list(self._client().query_entities(query, parameters=params, results_per_page=1000))
        items = [
            Item(
                int(str(e["PartitionKey"]).rsplit("-", 1)[1]),
                _unescape(str(e["RowKey"])),
                json.loads(join_text("V", e)),
            )
            for e in entities
        ]
        return sorted(items, key=lambda i: (i.bucket, i.key))

    def drop(self) -> None:
        with self._errors():
            self._service.delete_table(self.table_name)
        self._table = None

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        if self._table is not None:
            self._table.close()
            self._table = None
