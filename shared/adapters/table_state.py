"""The production state store: Azure Table Storage through azure-data-tables.

Five tables, ``<prefix>checkpoints``, ``links``, ``shadows``, ``leases``, ``parked``, created on
first use (once per process), and the sync log's table per day, ``<prefix>log<yyyymmdd>``. Key
layout (see ``_table_keys`` for the encoding):

=============  ==========================================  ======================================
table          PartitionKey                                RowKey
=============  ==========================================  ======================================
checkpoints    ``checkpoint``                              name
links (M)      ``m`` + Marketo id // 1000                  Marketo id, zero-padded
links (D)      ``d-<entity>-`` + 2 hex of sha256(id)       Dynamics id, lower-case
shadows        ``s`` + Marketo id // 1000                  Marketo id, zero-padded
log<yyyymmdd>  ``s0`` .. ``s3`` (see ``table_sync_log``)    person key + inverted time + random
leases         ``lease``                                   name
parked         ``parked``                                  dedup id
=============  ==========================================  ======================================

Links are stored twice, by person (M) and by Dynamics record (D), in different partitions, so
no transaction can cover both. The M row is the truth; the D row is an index *and* the claim
that makes a Dynamics record linkable to one person only. A link exists when its M row says so;
a D row counts only when the M row it names points back to it. Writes go: claim D, write M,
confirm the claim by rewriting it under its etag (if a rival took it meanwhile, restore M and
fail), then drop the old D row. A crash between steps leaves at most a D row no M row confirms:
readers ignore it and the next claim of that record takes it over. The one gap left: a process
that dies between writing M and confirming, while a rival takes the claim, leaves its M row
naming a record now linked to the rival (lookups by that record still find one person).

``put_links`` takes the same steps for many first links (a person without a row, no etag) at
once, each step a transaction per partition of up to 100 rows: create the claims, create the
persons' rows, confirm the claims under their etags. A transaction that fails writes nothing and
leaves its links to ``put_link``, one at a time; a claim taken before it was confirmed restores
(deletes) the person's row and refuses the link, as ``put_link`` does. Seeding 100,000 links
takes about 3 requests per 100 rather than 3 or more per link.

A lookup by record may carry hints (the Marketo id the record's own link column names, which
a Dynamics notice reports): a hinted person whose M row names the record is the link, as the
M row is the truth; the other records go through their D rows. The hint changes the answer
only in the gap above, where it finds the hinted person, as a lookup by that person does.

Batch reads group ids by partition. In a person partition (1,000 consecutive ids) a range read,
``RowKey ge first and RowKey le last`` in pages of 1,000, is taken where it costs fewer requests
than asking up to 14 RowKeys per query (a $filter may hold at most 15 comparisons) and at least a
tenth of the range is asked (``range_is_cheaper``): a batch of persons created close together
is one or two requests. Otherwise, and always in a D partition
(1/256 of an entity's records, by hash), RowKeys go 14 to a query; an ``or`` over RowKeys scans
the one partition. Queries for several partitions run in parallel. A lookup of 900 records
without hints is about 256 queries (one per D partition) plus the persons' rows: hence the
hints (docs/performance.md has the counts).
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from datetime import datetime
from functools import partial
from itertools import islice
from typing import TYPE_CHECKING, Any, TypeVar

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import (
    TableClient,
    TableEntity,
    TableServiceClient,
    TableTransactionError,
    UpdateMode,
)

from shared.adapters._clock import Clock, from_micros, system_clock, to_datetime, to_micros
from shared.adapters._keep_alive import TRANSPORT_OPTIONS, fresh_connection_transport
from shared.adapters._table_keys import (
    dynamics_partition,
    escape_key,
    join_text,
    marketo_partition,
    marketo_row,
    sized_text,
    utf16_bytes,
)
from shared.adapters._table_transactions import submit_transaction
from shared.adapters._tables_errors import SERVICE, error_code, map_tables_error
from shared.adapters.table_sync_log import TableSyncLog, entry_of, person_keys
from shared.calls import CallCounter
from shared.errors import ConfigurationError, ConflictError
from shared.notices import FieldValue
from shared.ports import Checkpoint, LeaseState, Link, LogEntry, ParkedNotice, Shadow, StateStore

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

logger = logging.getLogger(__name__)

T = TypeVar("T")

TABLES = ("checkpoints", "links", "shadows", "leases", "parked")
ROWS_PER_QUERY = 14  # + the PartitionKey comparison = the service's limit of 15 comparisons
PAGE_ROWS = 1000  # the most entities one query response holds
RANGE_SPAN_PER_ASKED = 10  # a range read may bring 9 unasked rows per asked one, no more
OPS_PER_TRANSACTION = 100
TRANSACTION_BYTES = 3_500_000  # under the 4 MiB payload cap, with room for the envelope
_CLAIM_ATTEMPTS = 3
_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,40}$")
_IF_MATCH = MatchConditions.IfNotModified
_LOG_DAY = re.compile(r"^log\d{8}$")


def dynamics_key(dynamics_id: str) -> str:
    """Dataverse ids are GUIDs: the same record may arrive upper- or lower-case."""
    return dynamics_id.lower()


def _etag(entity: TableEntity | Mapping[str, Any]) -> str:
    metadata = getattr(entity, "metadata", None) or entity
    return str(metadata["etag"])


def _text(entity: Mapping[str, Any], name: str) -> str:
    return join_text(name, entity)


class TableStateStore(StateStore):
    """The state store on Azure Table Storage (see the module docstring for the layout)."""

    def __init__(
        self,
        *,
        connection_string: str | None = None,
        endpoint: str | None = None,
        credential: TokenCredential | None = None,
        table_prefix: str = "mdsync",
        clock: Clock = system_clock,
        max_workers: int = 8,
        **client_options: Any,
    ) -> None:
        """A connection string wins over ``endpoint`` + ``credential`` (default
        ``DefaultAzureCredential``). ``client_options`` go to ``TableServiceClient``
        (e.g. ``retry_total``)."""
        if not (connection_string or endpoint):
            raise ConfigurationError(
                "the Table state store needs STATE_CONNECTION_STRING or STATE_TABLE_ENDPOINT "
                "(with an identity that has Storage Table Data Contributor)"
            )
        if not _PREFIX.match(table_prefix):
            raise ConfigurationError(
                f"STATE_TABLE_PREFIX {table_prefix!r} must be a letter and up to 40 letters or digits"
            )
        self._connection_string = connection_string
        self._endpoint = endpoint
        self._credential = credential
        # Every request sent, by table and verb ("POST $batch", "GET links"), retries included.
        self.requests = CallCounter()
        self._client_options = {**client_options, "raw_request_hook": self._counting(client_options)}
        self.table_prefix = table_prefix
        self._clock = clock
        self._max_workers = max_workers
        self._lock = threading.Lock()
        self._service: TableServiceClient | None = None
        self._tables: dict[str, TableClient] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._log = TableSyncLog(self)

    # --- plumbing ------------------------------------------------------------------------------

    def _counting(self, options: Mapping[str, Any]) -> Callable[[Any], None]:
        theirs = options.get("raw_request_hook")

        def hook(request: Any) -> None:
            http = request.http_request
            self.requests.record(f"{http.method} {self._table_of(http.url)}", 0.0)
            if theirs is not None:
                theirs(request)

        return hook

    def _table_of(self, url: str) -> str:
        """``links``, ``log<day>``, ``$batch``, ``Tables``: the table a request is about."""
        name = url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1].split("(", 1)[0]
        if name.startswith(self.table_prefix):
            name = name[len(self.table_prefix) :]
        return _LOG_DAY.sub("log<day>", name)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except AzureError as exc:
            raise map_tables_error(exc) from exc

    def _service_client(self) -> TableServiceClient:
        if self._service is None:
            # A transaction sent on a connection the server is closing is lost, and azure-core
            # does not retry a POST: hence our transport (see _keep_alive), unless given one.
            options = dict(self._client_options)
            ours = "transport" not in options
            if ours:
                given = {k: v for k, v in options.items() if k in TRANSPORT_OPTIONS}
                options["transport"] = fresh_connection_transport(**given)
            if self._connection_string:
                try:
                    self._service = TableServiceClient.from_connection_string(
                        self._connection_string, **options
                    )
                except ValueError as exc:
                    if ours:
                        options["transport"].close()
                    raise ConfigurationError(f"STATE_CONNECTION_STRING is not valid: {exc}") from exc
            else:
                credential = self._credential
                if credential is None:
                    # Imported here: azure.identity costs ~0.1 s of cold start.
                    from azure.identity import DefaultAzureCredential  # noqa: PLC0415

                    credential = DefaultAzureCredential()
                self._service = TableServiceClient(
                    endpoint=str(self._endpoint), credential=credential, **options
                )
        return self._service

    def service(self) -> TableServiceClient:
        """The account's table service, for another store in the same account (the backfill's
        staging); closed with this store."""
        with self._lock, self._errors():
            return self._service_client()

    def _table(self, kind: str) -> TableClient:
        with self._lock:
            table = self._tables.get(kind)
            if table is None:
                with self._errors():
                    table = self._service_client().create_table_if_not_exists(self.table_prefix + kind)
                self._tables[kind] = table
            return table

    def _existing_table(self, kind: str) -> TableClient:
        """A client for a table that may not exist (reading it then raises NotFoundError)."""
        with self._lock:
            table = self._tables.get(kind)
        if table is not None:
            return table
        with self._lock, self._errors():
            return self._service_client().get_table_client(self.table_prefix + kind)

    def _forget_table(self, kind: str) -> None:
        with self._lock:
            table = self._tables.pop(kind, None)
        if table is not None:
            table.close()

    def _parallel(self, calls: Sequence[Callable[[], T]]) -> list[T]:
        if len(calls) <= 1:
            return [call() for call in calls]
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._max_workers, thread_name_prefix="mdsync-tables")
            pool = self._pool
        futures = [pool.submit(call) for call in calls]
        return [future.result() for future in futures]

    def _query(
        self, kind: str, query_filter: str, parameters: dict[str, Any], limit: int | None = None
    ) -> list[TableEntity]:
        return self._query_in(self._table(kind), query_filter, parameters, limit)

    def _query_existing(
        self, kind: str, query_filter: str, parameters: dict[str, Any], limit: int | None = None
    ) -> list[TableEntity]:
        return self._query_in(self._existing_table(kind), query_filter, parameters, limit)

    def _query_in(
        self, table: TableClient, query_filter: str, parameters: dict[str, Any], limit: int | None
    ) -> list[TableEntity]:
        with self._errors():
            pages = table.query_entities(
                query_filter, parameters=parameters, results_per_page=min(limit or PAGE_ROWS, PAGE_ROWS)
            )
            return list(islice(pages, limit))

    def _get(self, kind: str, partition: str, row: str) -> TableEntity | None:
        table = self._table(kind)
        with self._errors():
            try:
                return table.get_entity(partition, row)
            except ResourceNotFoundError:
                return None

    def _rows_by_key(self, kind: str, keys: Iterable[tuple[str, str]]) -> list[TableEntity]:
        """Every stored entity among ``keys`` (PartitionKey, RowKey), a few queries at a time."""
        by_partition: dict[str, list[str]] = {}
        for partition, row in dict.fromkeys(keys):
            by_partition.setdefault(partition, []).append(row)
        calls = [
            call
            for partition, rows in by_partition.items()
            for call in self._point_queries(kind, partition, rows)
        ]
        return [entity for batch in self._parallel(calls) for entity in batch]

    def _point_queries(
        self, kind: str, partition: str, rows: Sequence[str]
    ) -> list[Callable[[], list[TableEntity]]]:
        """Queries for ``rows`` of one partition, up to 14 RowKeys each."""
        calls: list[Callable[[], list[TableEntity]]] = []
        for start in range(0, len(rows), ROWS_PER_QUERY):
            chunk = rows[start : start + ROWS_PER_QUERY]
            # Placeholders must stand alone between spaces for the SDK to substitute them.
            ors = " or ".join(f"RowKey eq @r{i}" for i in range(len(chunk)))
            params: dict[str, Any] = {f"r{i}": row for i, row in enumerate(chunk)}
            params["p"] = partition
            calls.append(partial(self._query, kind, f"PartitionKey eq @p and ( {ors} )", params))
        return calls

    def _rows_by_marketo(self, kind: str, family: str, marketo_ids: Iterable[int]) -> dict[int, TableEntity]:
        """The stored rows of ``family`` (``m`` links, ``s`` shadows) for ``marketo_ids``.

        Per partition, a range read (``RowKey ge first and le last``, pages of 1,000) where it
        takes fewer requests than RowKeys 14 at a time: persons created close together share a
        partition, and a worker batch asks for many of its ids. The range may hold rows nobody
        asked for; they are left out.
        """
        by_partition: dict[str, list[int]] = {}
        for marketo_id in sorted(set(marketo_ids)):
            marketo_row(marketo_id)  # refuses a negative id
            by_partition.setdefault(marketo_partition(family, marketo_id), []).append(marketo_id)
        calls: list[Callable[[], list[TableEntity]]] = []
        for partition, ids in by_partition.items():
            if range_is_cheaper(len(ids), ids[-1] - ids[0] + 1):
                params = {"p": partition, "first": marketo_row(ids[0]), "last": marketo_row(ids[-1])}
                query = "PartitionKey eq @p and RowKey ge @first and RowKey le @last"
                calls.append(partial(self._query, kind, query, params))
            else:
                calls += self._point_queries(kind, partition, [marketo_row(i) for i in ids])
        asked = {marketo_id for ids in by_partition.values() for marketo_id in ids}
        rows = (entity for batch in self._parallel(calls) for entity in batch)
        return {int(e["RowKey"]): e for e in rows if int(e["RowKey"]) in asked}

    # --- checkpoints ---------------------------------------------------------------------------

    def get_checkpoint(self, name: str) -> Checkpoint | None:
        entity = self._get("checkpoints", "checkpoint", escape_key(name))
        if entity is None:
            return None
        return Checkpoint(name=name, value=_text(entity, "Value"), etag=_etag(entity))

    def put_checkpoint(self, name: str, value: str, *, etag: str | None) -> Checkpoint:
        entity = {
            "PartitionKey": "checkpoint",
            "RowKey": escape_key(name),
            "Name": name,
            **sized_text("Value", value, f"checkpoint {name!r}"),
        }
        table = self._table("checkpoints")
        with self._errors():
            if etag is None:
                try:
                    written = table.create_entity(entity)
                except ResourceExistsError as exc:
                    raise ConflictError(
                        f"checkpoint {name!r} already exists",
                        service=SERVICE,
                        code="EntityAlreadyExists",
                        status=409,
                    ) from exc
            else:
                try:
                    written = table.update_entity(
                        entity, mode=UpdateMode.REPLACE, etag=etag, match_condition=_IF_MATCH
                    )
                except ResourceNotFoundError as exc:
                    # Deleted since it was read: as stale as a changed etag.
                    raise ConflictError(
                        f"checkpoint {name!r} is gone", service=SERVICE, code="ResourceNotFound", status=404
                    ) from exc
        return Checkpoint(name=name, value=value, etag=_etag(written))

    # --- links ---------------------------------------------------------------------------------

    @staticmethod
    def _m_key(marketo_id: int) -> tuple[str, str]:
        return marketo_partition("m", marketo_id), marketo_row(marketo_id)

    @staticmethod
    def _d_key(entity: str, key: str) -> tuple[str, str]:
        return dynamics_partition(entity, key), escape_key(key)

    @staticmethod
    def _link_of(entity: TableEntity) -> Link:
        return Link(
            marketo_id=int(entity["RowKey"]),
            entity=str(entity["Entity"]),
            dynamics_id=str(entity["DynamicsId"]),
            etag=_etag(entity),
        )

    def get_links_by_marketo(self, marketo_ids: Iterable[int]) -> dict[int, Link]:
        rows = self._rows_by_marketo("links", "m", marketo_ids)
        return {marketo_id: self._link_of(entity) for marketo_id, entity in rows.items()}

    def get_links_by_dynamics(
        self, entity: str, dynamics_ids: Iterable[str], *, hints: Mapping[str, int] | None = None
    ) -> dict[str, Link]:
        asked: dict[str, list[str]] = {}
        for dynamics_id in dynamics_ids:
            asked.setdefault(dynamics_key(dynamics_id), []).append(dynamics_id)
        found: dict[str, Link] = {}
        # A hinted person whose own row names the record is its link (see the module docstring);
        # the others are looked up by their claims.
        hinted = {dynamics_key(i): m for i, m in (hints or {}).items() if dynamics_key(i) in asked}
        by_person = self.get_links_by_marketo(set(hinted.values())) if hinted else {}
        for key, marketo_id in hinted.items():
            link = by_person.get(marketo_id)
            if link is not None and (link.entity, dynamics_key(link.dynamics_id)) == (entity, key):
                found.update(dict.fromkeys(asked[key], link))
        unresolved = {key for key in asked if asked[key][0] not in found}
        claims = self._rows_by_key("links", (self._d_key(entity, key) for key in unresolved))
        claimed = {int(row["MarketoId"]) for row in claims}
        # Only the person's own row makes the link real (see the module docstring).
        for link in self.get_links_by_marketo(claimed).values():
            key = dynamics_key(link.dynamics_id)
            if link.entity == entity and key in unresolved:
                found.update(dict.fromkeys(asked[key], link))
        return found

    def list_links(self, *, after: int = 0, limit: int = 1000) -> list[Link]:
        # Person rows sort by Marketo id: their partitions are id ranges and their RowKeys the
        # zero-padded id, so "RowKey above the last id" holds in every later partition too.
        first, row = self._m_key(after)
        query = "PartitionKey ge @first and PartitionKey lt @end and RowKey gt @row"
        rows = self._query("links", query, {"first": first, "end": "n", "row": row}, limit)
        return [self._link_of(entity) for entity in rows]

    def put_links(self, links: Sequence[Link]) -> dict[int, ConflictError]:
        """First links (see :meth:`_first_links`) in bulk, the others one at a time, after."""
        first, others = self._first_links(links)
        refused, retry = self._put_first_links(first)
        others += retry

        def put(link: Link) -> ConflictError | None:
            try:
                self.put_link(link)
            except ConflictError as exc:
                return exc
            return None

        outcomes = self._parallel([partial(put, link) for link in others])
        refused |= {link.marketo_id: exc for link, exc in zip(others, outcomes, strict=True) if exc}
        return refused

    def _first_links(self, links: Sequence[Link]) -> tuple[list[Link], list[Link]]:
        """The links that can be written in bulk, and the others: a first link carries no etag,
        its person has no row yet and no other link of the batch names its person or record."""
        persons = Counter(link.marketo_id for link in links)
        records = Counter((link.entity, dynamics_key(link.dynamics_id)) for link in links)
        alone = [
            link
            for link in links
            if not link.etag
            and persons[link.marketo_id] == 1
            and records[link.entity, dynamics_key(link.dynamics_id)] == 1
        ]
        existing = self._rows_by_marketo("links", "m", (link.marketo_id for link in alone)) if alone else {}
        first = [link for link in alone if link.marketo_id not in existing]
        chosen = {id(link) for link in first}
        return first, [link for link in links if id(link) not in chosen]

    def _put_first_links(self, links: Sequence[Link]) -> tuple[dict[int, ConflictError], list[Link]]:
        """:meth:`put_link`'s steps for links whose person has no row, each step a transaction
        per partition (up to 100 rows): create the claims (D rows), create the persons' rows
        (M), confirm the claims by rewriting them under their etags. A transaction that fails
        (a claim or a row exists, a rival wrote first) writes nothing and leaves its links to
        :meth:`put_link`, which takes our unconfirmed claims as its own. A claim a rival took
        before we confirmed it undoes the person's row and refuses the link, as in put_link.

        Returns the refused links, by Marketo id, and the links to write one at a time.
        """
        by_id = {link.marketo_id: link for link in links}
        claims = {m: self._claim_row(link) for m, link in by_id.items()}
        claimed, retry = self._submit_rows({m: ("create", claims[m], {}) for m in by_id})
        rows = {m: self._person_row(by_id[m]) for m in claimed}
        written, unwritten = self._submit_rows({m: ("create", rows[m], {}) for m in claimed})
        # A MERGE of the claim's every property: the same claim and a new etag, as a REPLACE,
        # at half Azurite's cost (see put_shadows).
        confirming = {
            m: (
                "update",
                claims[m],
                {"mode": UpdateMode.MERGE, "etag": claimed[m], "match_condition": _IF_MATCH},
            )
            for m in written
        }
        _, unconfirmed = self._submit_rows(confirming)
        refused: dict[int, ConflictError] = {}
        for m in unconfirmed:
            if not self._confirm_claim(claims[m], claimed[m]):
                link = by_id[m]
                self._restore_link_row(*self._m_key(m), None, written[m])
                refused[m] = self._already_linked(link.entity, link.dynamics_id, None)
        return refused, [by_id[m] for m in retry + unwritten]

    def _submit_rows(
        self, operations: Mapping[int, tuple[str, dict[str, Any], dict[str, Any]]]
    ) -> tuple[dict[int, str], list[int]]:
        """Each operation (by Marketo id) on the links table, a transaction per partition of up
        to 100. Returns the new etags of those done, and the ids of the failed transactions'."""
        groups: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        for marketo_id, (_, row, _) in operations.items():
            groups.setdefault(row["PartitionKey"], []).append((marketo_id, row))
        chunks = [chunk for group in groups.values() for chunk in _transaction_chunks(group)]
        table = self._table("links")
        calls = [partial(self._transaction, table, [operations[m] for m, _ in chunk]) for chunk in chunks]
        done: dict[int, str] = {}
        failed: list[int] = []
        for chunk, etags in zip(chunks, self._parallel(calls), strict=True):
            if etags is None:
                failed += [marketo_id for marketo_id, _ in chunk]
            else:
                done |= {marketo_id: etag for (marketo_id, _), etag in zip(chunk, etags, strict=True)}
        return done, failed

    def _transaction(self, table: TableClient, operations: list[Any]) -> list[str] | None:
        """One transaction; the rows' new etags, or None if the service refused it (then
        nothing of it was written)."""
        with self._errors():
            try:
                results = submit_transaction(table, operations)
            except TableTransactionError:
                return None
        return [str(result["etag"]) for result in results]

    def _person_row(self, link: Link) -> dict[str, Any]:
        """A link's row by person (M): the truth of the link."""
        m_partition, m_row = self._m_key(link.marketo_id)
        return {
            "PartitionKey": m_partition,
            "RowKey": m_row,
            "Entity": link.entity,
            "DynamicsId": link.dynamics_id,
            "DynamicsKey": dynamics_key(link.dynamics_id),
        }

    def _claim_row(self, link: Link) -> dict[str, Any]:
        """A link's row by Dynamics record (D): its claim."""
        d_partition, d_row = self._d_key(link.entity, dynamics_key(link.dynamics_id))
        return {
            "PartitionKey": d_partition,
            "RowKey": d_row,
            "MarketoId": str(link.marketo_id),
            "Entity": link.entity,
            "DynamicsId": link.dynamics_id,
        }

    def put_link(self, link: Link) -> Link:
        key = dynamics_key(link.dynamics_id)
        m_partition, m_row = self._m_key(link.marketo_id)
        current = self._get("links", m_partition, m_row)
        if link.etag and (current is None or _etag(current) != link.etag):
            raise self._stale_link(link.marketo_id)
        claim, claim_etag = self._claim(link)
        entity = self._person_row(link)
        table = self._table("links")
        with self._errors():
            try:
                if link.etag:
                    written = table.update_entity(
                        entity, mode=UpdateMode.REPLACE, etag=link.etag, match_condition=_IF_MATCH
                    )
                else:
                    written = table.upsert_entity(entity, mode=UpdateMode.REPLACE)
            except (ResourceModifiedError, ResourceNotFoundError) as exc:
                raise self._stale_link(link.marketo_id) from exc
        if not self._confirm_claim(claim, claim_etag):
            self._restore_link_row(m_partition, m_row, current, _etag(written))
            raise self._already_linked(link.entity, link.dynamics_id, None)
        if current is not None and (current["Entity"], current["DynamicsKey"]) != (link.entity, key):
            self._drop_claim(str(current["Entity"]), str(current["DynamicsKey"]), link.marketo_id)
        return Link(link.marketo_id, link.entity, link.dynamics_id, etag=_etag(written))

    def delete_link(self, link: Link) -> None:
        key = dynamics_key(link.dynamics_id)
        m_partition, m_row = self._m_key(link.marketo_id)
        current = self._get("links", m_partition, m_row)
        if current is not None and (current["Entity"], current["DynamicsKey"]) == (link.entity, key):
            if link.etag and _etag(current) != link.etag:
                raise self._stale_link(link.marketo_id)
            table = self._table("links")
            with self._errors():
                try:
                    table.delete_entity(m_partition, m_row, etag=_etag(current), match_condition=_IF_MATCH)
                except ResourceModifiedError as exc:
                    raise self._stale_link(link.marketo_id) from exc
        # The person's row no longer names this record: its claim (if any is left) is ours to drop.
        self._drop_claim(link.entity, key, link.marketo_id)

    def _claim(self, link: Link) -> tuple[dict[str, Any], str]:
        """Make the D row of the link's record name its person, or raise ConflictError.

        Returns the claim and its etag, for ``_confirm_claim``.
        """
        claim = self._claim_row(link)
        d_partition, d_row = claim["PartitionKey"], claim["RowKey"]
        entity, key, marketo_id = link.entity, dynamics_key(link.dynamics_id), link.marketo_id
        table = self._table("links")
        for _ in range(_CLAIM_ATTEMPTS):
            with self._errors():
                try:
                    return claim, _etag(table.create_entity(claim))
                except ResourceExistsError:
                    pass
            existing = self._get("links", d_partition, d_row)
            if existing is None:
                continue  # released between our two calls: try to create it again
            owner = int(existing["MarketoId"])
            if owner == marketo_id:
                return claim, _etag(existing)
            if self._confirms(owner, entity, key):
                raise self._already_linked(entity, link.dynamics_id, owner)
            with self._errors():
                try:
                    # A claim no person's row confirms is left over: take it, if still unchanged.
                    taken = table.update_entity(
                        claim, mode=UpdateMode.REPLACE, etag=_etag(existing), match_condition=_IF_MATCH
                    )
                    return claim, _etag(taken)
                except (ResourceModifiedError, ResourceNotFoundError):
                    continue
        raise ConflictError(
            f"{entity} {link.dynamics_id} is being linked concurrently",
            service=SERVICE,
            code="ClaimContended",
        )

    def _confirms(self, marketo_id: int, entity: str, key: str) -> bool:
        row = self._get("links", *self._m_key(marketo_id))
        return row is not None and (row["Entity"], row["DynamicsKey"]) == (entity, key)

    def _confirm_claim(self, claim: dict[str, str], etag: str) -> bool:
        """After the person's row is written: rewrite the claim if nobody took it meanwhile.

        A plain read would leave a gap: a rival that saw our person's row not yet written could
        still take the claim with the etag it read before. Rewriting changes the etag, so such
        a rival's conditional write fails, and any later rival finds our row and backs off.
        """
        table = self._table("links")
        with self._errors():
            try:
                table.update_entity(claim, mode=UpdateMode.REPLACE, etag=etag, match_condition=_IF_MATCH)
                return True
            except (ResourceModifiedError, ResourceNotFoundError):
                return False

    def _drop_claim(self, entity: str, key: str, marketo_id: int) -> None:
        d_partition, d_row = self._d_key(entity, key)
        row = self._get("links", d_partition, d_row)
        if row is None or int(row["MarketoId"]) != marketo_id:
            return
        table = self._table("links")
        # A 412 means it was claimed by someone else meanwhile: theirs now.
        with self._errors(), suppress(ResourceModifiedError):
            table.delete_entity(d_partition, d_row, etag=_etag(row), match_condition=_IF_MATCH)

    def _restore_link_row(
        self, partition: str, row: str, previous: TableEntity | None, written_etag: str
    ) -> None:
        """Undo our write of a person's row, unless someone wrote after us."""
        table = self._table("links")
        with self._errors():
            try:
                if previous is None:
                    table.delete_entity(partition, row, etag=written_etag, match_condition=_IF_MATCH)
                else:
                    table.update_entity(
                        dict(previous), mode=UpdateMode.REPLACE, etag=written_etag, match_condition=_IF_MATCH
                    )
            except (ResourceModifiedError, ResourceNotFoundError):
                pass

    @staticmethod
    def _stale_link(marketo_id: int) -> ConflictError:
        return ConflictError(
            f"the link of person {marketo_id} changed since it was read",
            service=SERVICE,
            code="UpdateConditionNotSatisfied",
            status=412,
        )

    @staticmethod
    def _already_linked(entity: str, dynamics_id: str, owner: int | None) -> ConflictError:
        whom = f"person {owner}" if owner is not None else "another person"
        return ConflictError(
            f"{entity} {dynamics_id} is already linked to {whom}",
            service=SERVICE,
            code="DynamicsRecordAlreadyLinked",
        )

    # --- shadows -------------------------------------------------------------------------------

    def get_shadows(self, marketo_ids: Iterable[int]) -> dict[int, Shadow]:
        found: dict[int, Shadow] = {}
        for marketo_id, entity in self._rows_by_marketo("shadows", "s", marketo_ids).items():
            values: dict[str, FieldValue] = json.loads(_text(entity, "Values"))
            found[marketo_id] = Shadow(marketo_id, values, _etag(entity))
        return found

    def put_shadows(self, shadows: Sequence[Shadow]) -> None:
        """A shadow of one chunk (nearly all) is written as a MERGE, not a REPLACE: its
        properties, its key, ``ValuesChunks`` and ``Values0``, are all written, so the two leave
        the same shadow, and they cost Azure the same request. Azurite replaces an entity by
        removing it and inserting it again, and a removal renumbers every entity of the table
        in both its indices: at 100,000 shadows a REPLACE cost it twice a MERGE
        (docs/performance.md). A shadow that shrinks to one chunk keeps its old higher chunks,
        unread (``ValuesChunks`` says how many count), within the entity's 1 MiB (900,000 bytes
        of old chunks and at most 64,000 of the new); larger shadows are REPLACEd."""
        latest = {shadow.marketo_id: shadow for shadow in shadows}  # one per person: the last
        groups: dict[str, list[tuple[Shadow, dict[str, Any]]]] = {}
        for shadow in latest.values():
            partition = marketo_partition("s", shadow.marketo_id)
            entity = {
                "PartitionKey": partition,
                "RowKey": marketo_row(shadow.marketo_id),
                **sized_text(
                    "Values",
                    # Not ASCII-escaped: the limits count UTF-16 units, and "\u00e9" is six.
                    json.dumps(shadow.values, sort_keys=True, ensure_ascii=False),
                    f"the shadow of person {shadow.marketo_id}",
                ),
            }
            groups.setdefault(partition, []).append((shadow, entity))
        calls = [
            partial(self._write_shadows, chunk)
            for group in groups.values()
            for chunk in _transaction_chunks(group)
        ]
        stale = sorted(i for result in self._parallel(calls) for i in result)
        if stale:
            raise ConflictError(
                f"shadow(s) changed since they were read, not written: persons {stale}",
                service=SERVICE,
                code="UpdateConditionNotSatisfied",
                status=412,
            )

    def _write_shadows(self, chunk: Sequence[tuple[Shadow, dict[str, Any]]]) -> list[int]:
        """One transaction for a chunk of one partition; on a stale etag, one write each."""
        table = self._table("shadows")
        operations: list[Any] = [_shadow_operation(shadow, entity) for shadow, entity in chunk]
        with self._errors():
            try:
                submit_transaction(table, operations)
                return []
            except TableTransactionError as exc:
                if exc.status_code not in (404, 409, 412) and error_code(exc) not in _STALE_CODES:
                    raise
        return [shadow.marketo_id for shadow, entity in chunk if not self._write_shadow(shadow, entity)]

    def _write_shadow(self, shadow: Shadow, entity: dict[str, Any]) -> bool:
        table = self._table("shadows")
        with self._errors():
            try:
                mode = _shadow_mode(entity)
                if shadow.etag:
                    table.update_entity(entity, mode=mode, etag=shadow.etag, match_condition=_IF_MATCH)
                else:
                    table.upsert_entity(entity, mode=mode)
                return True
            except (ResourceModifiedError, ResourceNotFoundError):
                return False

    def delete_shadow(self, marketo_id: int) -> None:
        table = self._table("shadows")
        with self._errors():
            table.delete_entity(marketo_partition("s", marketo_id), marketo_row(marketo_id))

    # --- sync log (see table_sync_log for its layout) ------------------------------------------

    def append_log(self, entries: Sequence[LogEntry]) -> None:
        self._log.append(entries)

    def _submit_grouped(self, kind: str, groups: Mapping[str, Sequence[tuple[None, dict[str, Any]]]]) -> None:
        """Create the entities of each partition, up to 100 in one transaction, in parallel."""
        table = self._table(kind)
        calls = [
            partial(self._submit, table, [("create", entity) for _, entity in chunk])
            for group in groups.values()
            for chunk in _transaction_chunks(group)
        ]
        self._parallel(calls)

    def _submit(self, table: TableClient, operations: list[Any]) -> None:
        with self._errors():
            submit_transaction(table, operations)

    def read_log(
        self, *, marketo_id: int | None = None, dynamics_id: str | None = None, limit: int = 200
    ) -> list[LogEntry]:
        """Newest first. With both ids, entries about either; with neither, every entry."""
        if limit <= 0:
            return []
        if marketo_id is None and dynamics_id is None:
            rows = self._log.read_all(limit)
        else:
            key = None if dynamics_id is None else dynamics_key(dynamics_id)
            rows = self._log.read(person_keys(marketo_id, key), limit)
        return [entry_of(row) for row in rows]

    def expire_log(self, before: datetime) -> None:
        """Whole days only: a day's table goes once all of that day is before ``before``."""
        self._log.expire(before)

    # --- leases --------------------------------------------------------------------------------

    def acquire_lease(self, name: str, owner: str, seconds: float, *, replacing: str | None = None) -> bool:
        now = self._clock()
        row = escape_key(name)
        lease = {
            "PartitionKey": "lease",
            "RowKey": row,
            "Owner": owner,
            "ExpiresAt": now + seconds,
        }
        table = self._table("leases")
        for _ in range(_CLAIM_ATTEMPTS):
            with self._errors():
                try:
                    table.create_entity(lease)
                    return True
                except ResourceExistsError:
                    pass
            current = self._get("leases", "lease", row)
            if current is None:
                continue  # released between our two calls
            if current["Owner"] not in (owner, replacing) and float(current["ExpiresAt"]) > now:
                return False
            with self._errors():
                try:
                    # Renewal by the owner, take-over of an expired lease or of one whose holder
                    # is gone: only if unchanged since read.
                    table.update_entity(
                        lease, mode=UpdateMode.REPLACE, etag=_etag(current), match_condition=_IF_MATCH
                    )
                    return True
                except (ResourceModifiedError, ResourceNotFoundError):
                    return False
        return False

    def get_lease(self, name: str) -> LeaseState | None:
        current = self._get("leases", "lease", escape_key(name))
        if current is None:
            return None
        return LeaseState(name, str(current["Owner"]), to_datetime(float(current["ExpiresAt"])))

    def release_lease(self, name: str, owner: str) -> None:
        row = escape_key(name)
        current = self._get("leases", "lease", row)
        if current is None or current["Owner"] != owner:
            return
        table = self._table("leases")
        # A 412 means it expired and was taken over meanwhile: nothing of ours to release.
        with self._errors(), suppress(ResourceModifiedError):
            table.delete_entity("lease", row, etag=_etag(current), match_condition=_IF_MATCH)

    # --- parked notices ------------------------------------------------------------------------

    def park(self, notices: Sequence[ParkedNotice]) -> None:
        if not notices:
            return
        latest = {notice.dedup_id: notice for notice in notices}
        group = [
            (
                None,
                {
                    "PartitionKey": "parked",
                    "RowKey": escape_key(n.dedup_id),
                    "DedupId": n.dedup_id,
                    "Reason": n.reason,
                    "ParkedAt": str(to_micros(n.parked_at)),
                    **sized_text("Body", n.body, f"parked notice {n.dedup_id}"),
                },
            )
            for n in latest.values()
        ]
        table = self._table("parked")
        for chunk in _transaction_chunks(group):
            self._submit(table, [("upsert", entity, {"mode": UpdateMode.REPLACE}) for _, entity in chunk])

    def parked(self) -> list[ParkedNotice]:
        rows = self._query("parked", "PartitionKey eq @p", {"p": "parked"})
        notices = [
            ParkedNotice(
                dedup_id=str(row["DedupId"]),
                body=_text(row, "Body"),
                reason=str(row["Reason"]),
                parked_at=from_micros(int(row["ParkedAt"])),
            )
            for row in rows
        ]
        return sorted(notices, key=lambda n: (n.parked_at, n.dedup_id))

    def unpark(self, dedup_ids: Iterable[str]) -> None:
        table = self._table("parked")

        def delete(dedup_id: str) -> None:
            with self._errors():
                table.delete_entity("parked", escape_key(dedup_id))  # a missing one is fine

        self._parallel([partial(delete, d) for d in dict.fromkeys(dedup_ids)])

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
            tables, self._tables = self._tables, {}
            service, self._service = self._service, None
        if pool is not None:
            pool.shutdown(wait=True)
        for table in tables.values():
            table.close()
        if service is not None:
            service.close()


def range_is_cheaper(asked: int, span: int) -> bool:
    """Whether to read one partition's ``asked`` rows, spread over ``span`` consecutive RowKeys,
    as a range: when that takes fewer requests (pages of 1,000) than 14 RowKeys a query, and at
    least one row in ``RANGE_SPAN_PER_ASKED`` of the range is wanted. Measured on Azurite
    (docs/performance.md): a full partition of shadows costs ~45 ms to read and parse whatever
    is asked, 15 asked rows by RowKey 5 ms, 100 rows 24 ms in 8 queries, 900 rows 190 ms in 65."""
    fewer_requests = -(-span // PAGE_ROWS) < -(-asked // ROWS_PER_QUERY)
    return fewer_requests and span <= asked * RANGE_SPAN_PER_ASKED


_STALE_CODES = {"UpdateConditionNotSatisfied", "ConditionNotMet", "ResourceNotFound", "EntityNotFound"}


def _shadow_operation(shadow: Shadow, entity: dict[str, Any]) -> tuple[Any, ...]:
    """Under the etag read, if there is one (see :meth:`TableStateStore.put_shadows`)."""
    mode = _shadow_mode(entity)
    if shadow.etag:
        return ("update", entity, {"mode": mode, "etag": shadow.etag, "match_condition": _IF_MATCH})
    return ("upsert", entity, {"mode": mode})


def _shadow_mode(entity: Mapping[str, Any]) -> UpdateMode:
    return UpdateMode.MERGE if entity["ValuesChunks"] == 1 else UpdateMode.REPLACE


_Item = TypeVar("_Item")


def _transaction_chunks(
    group: Sequence[tuple[_Item, dict[str, Any]]],
) -> Iterator[list[tuple[_Item, dict[str, Any]]]]:
    """Split one partition's writes into transactions of at most 100 operations and 3.5 MB."""
    chunk: list[tuple[_Item, dict[str, Any]]] = []
    size = 0
    for item in group:
        entity_size = sum(utf16_bytes(str(v)) for v in item[1].values()) + 1024
        if chunk and (len(chunk) == OPS_PER_TRANSACTION or size + entity_size > TRANSACTION_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += entity_size
    if chunk:
        yield chunk
