"""What a request costs Azurite, against the size of its table and of its partition.

Azurite 3 keeps a table in a LokiJS collection with binary indices on PartitionKey and RowKey.
A point operation (GET, insert, update, delete) finds its entity with ``findOne({PartitionKey,
RowKey})``: the PartitionKey index, then a linear scan of that partition. A query runs its
``$filter`` through an interpreter on every entity of the table. An update or delete removes
the entity and shifts every position above it in both indices. So a request's cost grows with
what the table holds, which Azure's own service does not do; this measures how much, in
Azurite's own CPU seconds (``/proc``), which other work on the machine does not distort.

Two series, each grown in stages in one table:

- ``table``: entities in partitions of 1,000 (links and shadows have that shape); the requests
  go to one partition of 1,000, so what changes between stages is the table's size.
- ``partition``: one partition holding the whole table (a sync-log day's partition in a burst
  has that shape); the requests go to that partition.

Per stage: a point GET; a query of 100 rows (``PartitionKey eq`` and a RowKey range); a
transaction of 100 creates into one partition (in ``table``: a new one, so only the table's
size counts); transactions of 100 writes over existing entities: upserts (REPLACE), updates
replacing and updates merging (``If-Match: *``). ``--azurite`` runs another install's
``azurite-table`` (to compare versions). Run::

    python -m mdsync.bench.azurite_costs WORKDIR OUT.json [--table 1000,10000,100000,300000]
        [--partition 1000,10000,50000,100000]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

from azure.data.tables import TableClient, TableServiceClient, UpdateMode

from mdsync import azurite
from shared.adapters._table_transactions import submit_transaction

ROWS = 100  # per transaction, and per range query
PARTITION = 1000  # the table series' partition size
DETAIL = "x" * 240  # an entity of about 400 bytes, a sync-log entry's size


def entity(partition: str, row: int, version: int = 0) -> dict[str, Any]:
    return {
        "PartitionKey": partition,
        "RowKey": f"{row:012d}",
        "Entity": "lead",
        "Action": "updated",
        "Fields": '["email", "firstname"]',
        "AtMicros": str(1_765_000_000_000_000 + row),
        "Detail0": DETAIL,
        "DetailChunks": 1,
        "Version": version,
    }


class Meter:
    """Azurite's CPU seconds and the wall time over a number of requests."""

    def __init__(self, server: azurite.Azurite) -> None:
        self._server = server

    def per_request(self, run: Callable[[int], object], times: int) -> dict[str, float]:
        cpu, wall = self._server.cpu_seconds(), time.perf_counter()
        for i in range(times):
            run(i)
        cpu, wall = self._server.cpu_seconds() - cpu, time.perf_counter() - wall
        return {
            "azurite_ms": round(cpu / times * 1000, 3),
            "wall_ms": round(wall / times * 1000, 3),
            "n": times,
        }


def fill(table: TableClient, partitions: dict[str, range]) -> None:
    """Create the rows of ``partitions`` (name -> RowKey numbers), 100 a transaction, 4 at once."""
    chunks = [
        [("create", entity(name, row)) for row in rows[start : start + ROWS]]
        for name, rows in partitions.items()
        for start in range(0, len(rows), ROWS)
    ]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda operations: submit_transaction(table, operations), chunks))


def measure(
    table: TableClient, meter: Meter, *, target: str, size: int, fresh: Callable[[int], str]
) -> dict[str, Any]:
    """The four requests against partition ``target`` (holding RowKeys 0 .. size-1); inserts
    go to ``fresh(i)`` (a partition name) with new RowKeys."""
    span = min(size, PARTITION)
    results: dict[str, Any] = {}
    results["get"] = meter.per_request(lambda i: table.get_entity(target, f"{(i * 7919) % span:012d}"), 200)

    def range_query(i: int) -> None:
        first = (i * 97) % max(1, span - ROWS)
        query = "PartitionKey eq @p and RowKey ge @lo and RowKey lt @hi"
        params = {"p": target, "lo": f"{first:012d}", "hi": f"{first + ROWS:012d}"}
        rows = list(table.query_entities(query, parameters=params, results_per_page=1000))
        assert len(rows) == min(ROWS, span), len(rows)

    results["range_100"] = meter.per_request(range_query, 20 if size >= 100_000 else 50)
    next_row = [10_000_000 + 10 * size]  # new RowKeys at every stage

    def insert(i: int) -> None:
        start = next_row[0]
        next_row[0] += ROWS
        submit_transaction(table, [("create", entity(fresh(i), row)) for row in range(start, start + ROWS)])

    results["insert_100"] = meter.per_request(insert, 20)

    def rewrite(verb: str, mode: UpdateMode) -> Callable[[int], None]:
        def run(i: int) -> None:
            first = (i * ROWS) % max(1, span - ROWS + 1)
            rows = range(first, first + min(ROWS, span))
            submit_transaction(table, [(verb, entity(target, row, i + 1), {"mode": mode}) for row in rows])

        return run

    # Existing entities: an upsert (REPLACE), and an update (If-Match: *) replacing or merging.
    results["upsert_100"] = meter.per_request(rewrite("upsert", UpdateMode.REPLACE), 20)
    results["replace_100"] = meter.per_request(rewrite("update", UpdateMode.REPLACE), 20)
    results["merge_100"] = meter.per_request(rewrite("update", UpdateMode.MERGE), 20)
    return results


def grow_partitions(table: TableClient, filled: int, size: int) -> None:
    """The ``table`` series: partitions of 1,000 up to ``size`` entities."""
    fill(table, {f"p{n:05d}": range(PARTITION) for n in range(filled // PARTITION, size // PARTITION)})


def grow_one_partition(table: TableClient, filled: int, size: int) -> None:
    """The ``partition`` series: one partition, filled from 4 threads in disjoint RowKey ranges."""
    quarter = -(-(size - filled) // 4)
    ranges = [range(filled + q * quarter, min(size, filled + (q + 1) * quarter)) for q in range(4)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda rows: fill_serially(table, "big", rows), ranges))


def series(
    table: TableClient,
    meter: Meter,
    sizes: Sequence[int],
    say: Callable[[str], None],
    *,
    one_partition: bool,
) -> list[dict[str, Any]]:
    """Grow ``table`` stage by stage and measure the requests at each size."""
    stages: list[dict[str, Any]] = []
    filled = 0
    for size in sizes:
        (grow_one_partition if one_partition else grow_partitions)(table, filled, size)
        filled = size
        if one_partition:
            stage = {"entities": size, "partition": size}
            stage |= measure(table, meter, target="big", size=size, fresh=lambda _i: "big")
        else:
            stage = {"entities": size, "partition": PARTITION}
            stage |= measure(table, meter, target="p00000", size=PARTITION, fresh=partial(_fresh, size))
        say(f"{'one partition' if one_partition else 'table'} of {size}: {json.dumps(stage)}")
        stages.append(stage)
    return stages


def _fresh(stage: int, i: int) -> str:
    return f"fresh{stage}-{i}"


def fill_serially(table: TableClient, partition: str, rows: range) -> None:
    for start in range(rows.start, rows.stop, ROWS):
        submit_transaction(
            table, [("create", entity(partition, row)) for row in range(start, min(start + ROWS, rows.stop))]
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Azurite's CPU per request against table and partition size")
    parser.add_argument("workdir", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--table", default="1000,10000,100000,300000")
    parser.add_argument("--partition", default="1000,10000,50000,100000")
    parser.add_argument("--azurite", type=Path, default=None, help="another install's azurite-table")
    args = parser.parse_args(argv)
    say = lambda line: print(line, flush=True)  # noqa: E731
    sizes = {name: [int(x) for x in getattr(args, name).split(",") if x] for name in ("table", "partition")}
    results: dict[str, Any] = {}
    with azurite.started(args.workdir, binary=args.azurite) as server:
        service = TableServiceClient.from_connection_string(server.url)
        meter = Meter(server)
        warm = service.create_table("costwarmup")  # Node's JIT compiles the paths first
        fill(warm, {"w": range(ROWS)})
        measure(warm, meter, target="w", size=ROWS, fresh=lambda i: f"w{i}")
        if sizes["table"]:
            table = service.create_table("costtable")
            results["table"] = series(table, meter, sizes["table"], say, one_partition=False)
            service.delete_table("costtable")
        if sizes["partition"]:
            table = service.create_table("costpartition")
            results["partition"] = series(table, meter, sizes["partition"], say, one_partition=True)
    args.output.write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
