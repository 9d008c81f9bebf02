"""What mdsync needs in Dataverse, and creating it through the Web API metadata endpoints.

Every Dataverse read of the sync selects the link column and, when configured, the sync-filter
column; the flow step and automatic creation address leads by an alternate key on the link
column. A new organization has none of them. From the field mapping, mdsync needs, in order:

1. a publisher whose customization prefix starts the link column's name (``mdsync`` for
   ``mdsync_marketoid``), and an unmanaged solution of that publisher to hold the columns;
2. on each synced table (lead, contact): the link column (single line of text), the
   sync-filter column when ``options.sync_filter`` names one (Yes/No, default Yes: a record is
   synced unless someone sets it to No; rows older than the column are empty, also synced), an
   alternate key on the link column, whose index Dataverse builds in the background (the key
   is usable once its ``EntityKeyIndexStatus`` is Active).

:func:`plan` reads what exists and says, per item, ``exists`` or ``create``; :func:`apply`
creates what is missing (columns with ``MSCRM.SolutionUniqueName`` when their prefix is the
solution publisher's) and waits for the keys. Both are idempotent. A column whose prefix no
publisher of the organization has cannot be created here: the step fails and names the fix.
``mdsync dynamics setup`` prints these steps (``--dry-run`` sends nothing); docs/deploying.md
lists the same ones for the maker portal.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from shared.dataverse import odata
from shared.dataverse.client import DataverseClient
from shared.errors import PermanentError
from shared.mapping import FieldMapping

ENTITIES = ("lead", "contact")
DEFAULT_SOLUTION = "mdsync"
LINK_MAX_LENGTH = 20  # Marketo ids are integers below 2**53: at most 16 digits

Action = Literal["exists", "create", "created", "would create", "pending", "failed"]
Kind = Literal["publisher", "solution", "column", "key"]


def _label(text: str) -> dict[str, Any]:
    return {"@odata.type": f"{odata.NS}Label", "LocalizedLabels": [{"Label": text, "LanguageCode": 1033}]}


def _schema_name(logical: str) -> str:
    prefix, _, rest = logical.partition("_")
    return f"{prefix}_{rest[:1].upper()}{rest[1:]}"


@dataclass(frozen=True)
class Item:
    """One thing mdsync needs in Dataverse."""

    kind: Kind
    name: str  # publisher prefix, solution unique name, column or key logical name
    entity: str = ""  # lead or contact (columns and keys)
    column: str = ""  # the key's column
    publisher: str = ""  # the solution's publisher's prefix
    label: str = ""
    yes_no: bool = False  # a Yes/No column (else single line of text)

    @property
    def prefix(self) -> str:
        return self.name.partition("_")[0]

    def describe(self) -> str:
        match self.kind:
            case "publisher":
                return f"publisher with customization prefix '{self.name}'"
            case "solution":
                return f"unmanaged solution '{self.name}'"
            case "column" if self.yes_no:
                return f"{self.entity}: Yes/No column {self.name} ('{self.label}', default Yes)"
            case "column":
                return (
                    f"{self.entity}: text column {self.name} ('{self.label}', single line of text, "
                    f"{LINK_MAX_LENGTH} characters)"
                )
            case _:
                return f"{self.entity}: alternate key {self.name} on {self.column}"

    def definition(self) -> dict[str, Any]:
        """The ``AttributeMetadata`` or ``EntityKeyMetadata`` body that creates a column or key."""
        if self.kind == "key":
            return {
                "@odata.type": f"{odata.NS}EntityKeyMetadata",
                "SchemaName": _schema_name(self.name),
                "DisplayName": _label(self.label),
                "KeyAttributes": [self.column],
            }
        common = {
            "SchemaName": _schema_name(self.name),
            "DisplayName": _label(self.label),
            "Description": _label(f"Created by mdsync for {self.label}"),
            "RequiredLevel": {"Value": "None", "CanBeChanged": True},
        }
        if self.yes_no:
            return {
                "@odata.type": f"{odata.NS}BooleanAttributeMetadata",
                "AttributeType": "Boolean",
                "AttributeTypeName": {"Value": "BooleanType"},
                "DefaultValue": True,
                "OptionSet": {
                    "@odata.type": f"{odata.NS}BooleanOptionSetMetadata",
                    "TrueOption": {"Value": 1, "Label": _label("Yes")},
                    "FalseOption": {"Value": 0, "Label": _label("No")},
                    "OptionSetType": "Boolean",
                },
                **common,
            }
        return {
            "@odata.type": f"{odata.NS}StringAttributeMetadata",
            "AttributeType": "String",
            "AttributeTypeName": {"Value": "StringType"},
            "MaxLength": LINK_MAX_LENGTH,
            "FormatName": {"Value": "Text"},
            **common,
        }


def requirements(mapping: FieldMapping, *, solution: str = DEFAULT_SOLUTION) -> list[Item]:
    """Everything mdsync needs in Dataverse for ``mapping``, in the order it must be created."""
    link = mapping.links.dynamics_marketo_id
    prefix = link.partition("_")[0]
    items = [Item("publisher", prefix), Item("solution", solution, publisher=prefix)]
    for entity in ENTITIES:
        items.append(Item("column", link, entity, label="Marketo Id"))
        if mapping.options.sync_filter:
            items.append(
                Item("column", mapping.options.sync_filter, entity, label="Sync to Marketo", yes_no=True)
            )
        items.append(Item("key", f"{link}_key", entity, column=link, label="Marketo Id key"))
    return items


@dataclass(frozen=True)
class Step:
    item: Item
    action: Action
    detail: str = ""

    def __str__(self) -> str:
        detail = f": {self.detail}" if self.detail else ""
        return f"{self.item.describe()} - {self.action}{detail}"


@dataclass
class _Found:
    prefixes: set[str]  # customization prefixes of the organization's publishers
    solution_prefix: str | None  # the solution's publisher's prefix (None: no such solution)
    columns: dict[str, set[str]]  # entity -> column logical names
    keys: dict[str, dict[str, str]]  # entity -> key logical name -> index status
    key_columns: dict[str, dict[tuple[str, ...], str]]  # entity -> key columns -> index status


def _read(client: DataverseClient, solution: str) -> _Found:
    publishers = {
        str(p["publisherid"]): str(p.get("customizationprefix") or "")
        for p in client.query("publishers", select=["publisherid", "customizationprefix"])
    }
    owner = next(
        iter(
            client.query("solutions", select=["_publisherid_value"], filter=odata.eq("uniquename", solution))
        ),
        None,
    )
    found = _Found(
        prefixes={p.lower() for p in publishers.values()},
        solution_prefix=publishers.get(str(owner["_publisherid_value"])) if owner else None,
        columns={},
        keys={},
        key_columns={},
    )
    for entity in ENTITIES:
        found.columns[entity] = set(client.entity_metadata(entity, refresh=True).attributes)
        keys = client.keys(entity)
        found.keys[entity] = {k.logical_name: k.status for k in keys}
        found.key_columns[entity] = {tuple(sorted(k.columns)): k.status for k in keys}
    return found


def _decide(item: Item, found: _Found, solution: str) -> Step:
    match item.kind:
        case "publisher":
            return Step(item, "exists" if item.name.lower() in found.prefixes else "create")
        case "solution":
            if found.solution_prefix is None:
                return Step(item, "create", f"published by the publisher with prefix '{item.publisher}'")
            return Step(item, "exists", f"publisher prefix '{found.solution_prefix}'")
        case "column":
            if item.name in found.columns[item.entity]:
                return Step(item, "exists")
            return Step(item, "create", _where(item, found, solution))
        case _:
            status = found.key_columns[item.entity].get((item.column,))
            if status is None:
                return Step(item, "create", "Dataverse then builds its index")
            if status == "Active":
                return Step(item, "exists")
            return Step(item, "failed" if status == "Failed" else "pending", f"index {status}")


def _where(item: Item, found: _Found, solution: str) -> str:
    solution_prefix = found.solution_prefix or DEFAULT_SOLUTION
    if item.prefix.lower() == solution_prefix.lower():
        return f"in solution {solution}"
    if item.prefix.lower() in found.prefixes:
        return f"in the Default Solution (prefix '{item.prefix}' is another publisher's)"
    return f"no publisher has the prefix '{item.prefix}'"


def plan(client: DataverseClient, mapping: FieldMapping, *, solution: str = DEFAULT_SOLUTION) -> list[Step]:
    """What exists and what would be created, in order. Reads only."""
    found = _read(client, solution)
    return [_decide(item, found, solution) for item in requirements(mapping, solution=solution)]


@dataclass
class SetupResult:
    steps: list[Step]

    @property
    def ok(self) -> bool:
        return all(s.action in ("exists", "created") for s in self.steps)


def apply(
    client: DataverseClient,
    mapping: FieldMapping,
    *,
    solution: str = DEFAULT_SOLUTION,
    report: Callable[[Step], None] = lambda step: None,
    key_wait_seconds: float = 600.0,
    poll_seconds: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
) -> SetupResult:
    """Create what :func:`plan` finds missing, in order, then wait (up to ``key_wait_seconds``)
    for the new keys' indexes. Each step is reported as it completes."""
    done: list[Step] = []
    failed_columns: set[tuple[str, str]] = set()
    waiting: list[Item] = []
    for step in plan(client, mapping, solution=solution):
        item = step.item
        if step.action == "pending":
            waiting.append(item)
            continue
        if step.action != "create":
            done.append(step)
            report(step)
            continue
        if item.kind == "key" and (item.entity, item.column) in failed_columns:
            outcome = Step(item, "failed", f"its column {item.column} could not be created")
        else:
            outcome = _create(client, item, step, solution)
        if outcome.action == "failed" and item.kind == "column":
            failed_columns.add((item.entity, item.name))
        if outcome.action == "created" and item.kind == "key":
            waiting.append(item)
            continue
        done.append(outcome)
        report(outcome)
    for outcome in _wait_for_keys(client, waiting, key_wait_seconds, poll_seconds, sleep):
        done.append(outcome)
        report(outcome)
    return SetupResult(done)


def _create(client: DataverseClient, item: Item, step: Step, solution: str) -> Step:
    try:
        match item.kind:
            case "publisher":
                client.create(
                    "publishers",
                    {
                        "uniquename": item.name,
                        "friendlyname": item.name,
                        "customizationprefix": item.name,
                        "customizationoptionvalueprefix": option_value_prefix(item.name),
                        "description": "Publisher of the mdsync solution",
                    },
                    select=["publisherid"],
                )
            case "solution":
                owner = _publisher_id(client, item.publisher)
                client.create(
                    "solutions",
                    {
                        "uniquename": item.name,
                        "friendlyname": item.name,
                        "version": "1.0.0.0",
                        "description": "Columns and keys mdsync needs on lead and contact",
                        "publisherid@odata.bind": f"/publishers({owner})",
                    },
                    select=["solutionid"],
                )
            case "column":
                if step.detail.startswith("no publisher"):
                    return Step(item, "failed", f"{step.detail}: {_prefix_fix(item)}")
                in_solution = solution if step.detail.startswith("in solution") else None
                client.create_column(item.entity, item.definition(), solution=in_solution)
            case "key":
                client.create_key(item.entity, item.definition(), solution=solution)
    except PermanentError as exc:
        return Step(item, "failed", exc.message)
    return Step(item, "created", step.detail)


def _publisher_id(client: DataverseClient, prefix: str) -> str:
    for row in client.query(
        "publishers", select=["publisherid"], filter=odata.eq("customizationprefix", prefix), top=1
    ):
        return str(row["publisherid"])
    raise PermanentError(f"no publisher with the prefix '{prefix}'", service="dataverse")


def _prefix_fix(item: Item) -> str:
    return (
        f"create the column in the maker portal with one of your publishers' prefixes and name it in "
        f"the mapping, or create a publisher with the prefix '{item.prefix}'"
    )


def option_value_prefix(prefix: str) -> int:
    """A publisher's option value prefix (10000-99999), the same for the same prefix."""
    return 10_000 + zlib.crc32(prefix.encode("utf-8")) % 90_000


def _wait_for_keys(
    client: DataverseClient,
    items: Iterable[Item],
    wait_seconds: float,
    poll_seconds: float,
    sleep: Callable[[float], None],
) -> list[Step]:
    pending = list(items)
    outcomes: list[Step] = []
    deadline = time.monotonic() + wait_seconds
    interval = min(0.5, poll_seconds)  # an index on a small table is quick; a big one takes minutes
    while pending:
        still = []
        statuses = {
            e: {tuple(k.columns): k.status for k in client.keys(e)} for e in {i.entity for i in pending}
        }
        for item in pending:
            status = statuses[item.entity].get((item.column,), "missing")
            if status == "Active":
                outcomes.append(Step(item, "created", "index Active"))
            elif status == "Failed":
                outcomes.append(
                    Step(
                        item,
                        "failed",
                        f"the index could not be built: two {item.entity}s share a {item.column} value; "
                        "clear the duplicates, then reactivate the key (maker portal: Keys, Reactivate)",
                    )
                )
            else:
                still.append(item)
        pending = still
        if pending and time.monotonic() >= deadline:
            outcomes += [
                Step(i, "pending", "the index is still being built; run `mdsync doctor` later")
                for i in pending
            ]
            break
        if pending:
            sleep(interval)
            interval = min(interval * 2, poll_seconds)
    return outcomes


def maker_portal_markdown(items: list[Item]) -> str:
    """The same steps for an admin who prefers the Power Apps maker portal (docs/deploying.md)."""
    owner = next((i.publisher for i in items if i.kind == "solution"), "")
    lines = []
    for number, item in enumerate(items, start=1):
        where = "In the solution"
        if item.prefix != owner:
            where = f"In a solution whose publisher's prefix is `{item.prefix}` (names take it)"
        match item.kind:
            case "publisher":
                how = (
                    f"*Solutions > Publishers > New publisher*: display name and name `{item.name}`, "
                    f"prefix `{item.name}` (skip if a publisher with this prefix exists)."
                )
            case "solution":
                how = (
                    f"*Solutions > New solution*: display name and name `{item.name}`, publisher: the "
                    f"one with prefix `{item.publisher}`."
                )
            case "column" if item.yes_no:
                how = (
                    f"{where}, *Tables > {item.entity.capitalize()} > Columns > New column*: "
                    f"display name *{item.label}*, name `{item.name}`, data type *Yes/No*, default *Yes*."
                )
            case "column":
                how = (
                    f"{where}, *Tables > {item.entity.capitalize()} > Columns > New column*: "
                    f"display name *{item.label}*, name `{item.name}`, data type *Single line of text*, "
                    f"maximum length {LINK_MAX_LENGTH}."
                )
            case _:
                how = (
                    f"*Tables > {item.entity.capitalize()} > Keys > New key*: display name *{item.label}*, "
                    f"name `{item.name}`, column `{item.column}`; wait until its status is *Active*."
                )
        lines.append(f"{number}. {how}")
    return "\n".join(lines)
