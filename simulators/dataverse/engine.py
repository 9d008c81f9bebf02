"""The write pipeline: payload parsing, validation, defaults, plug-ins, events.

Semantics follow the Dataverse Web API reference: unknown or ill-typed properties are payload
errors, strings longer than MaxLength and out-of-range choices are validation errors, only
SystemRequired columns are enforced (ApplicationRequired is not), columns not valid for
create/update are silently ignored, and every committed write raises the platform event
(Create/Update/Delete) that webhook steps subscribe to.
"""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from typing import Any

from simulators.dataverse.faults import (
    DUPLICATE_RECORD,
    INVALID_ARGUMENT,
    LEAD_ALREADY_CLOSED,
    PICKLIST_OUT_OF_RANGE,
    PRIVILEGE_DENIED,
    REQUIRED_MISSING,
    STRING_TOO_LONG,
    DataverseFault,
    not_found,
    not_found_by_key,
    odata_error,
    payload_error,
)
from simulators.dataverse.odata import KeySegment, parse_datetime, parse_key, split_name_and_key
from simulators.dataverse.plugins import PluginRule
from simulators.dataverse.schema import (
    EDM_TYPES,
    INT_TYPES,
    LOOKUP_TYPES,
    OPTION_TYPES,
    TEXT_TYPES,
    AttrType,
    Column,
    Table,
)
from simulators.dataverse.store import Event, Ref, Row, Store, Transaction

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_STATE_NAMES = {"lead": "LeadState", "contact": "ContactState", "account": "AccountState"}
_COPIED_ON_QUALIFY = (
    "firstname",
    "lastname",
    "emailaddress1",
    "emailaddress2",
    "emailaddress3",
    "jobtitle",
    "telephone1",
    "mobilephone",
    "address1_city",
    "address1_country",
    "donotemail",
)
_SYSTEM_STAMPS = ("modifiedon", "modifiedby", "modifiedonbehalfby")


class Caller:
    """Who is writing, the ids that tie a request's events together, and the registered steps
    the request bypasses (``MSCRM.BypassBusinessLogicExecutionStepIds``)."""

    def __init__(self, user_id: str, *, correlation_id: str | None = None) -> None:
        self.user_id = user_id
        self.correlation_id = correlation_id or str(uuid.uuid4())
        self.request_id = str(uuid.uuid4())
        self.bypass: frozenset[str] = frozenset()

    def bypassing(self, step_ids: frozenset[str]) -> Caller:
        """The same caller and request, bypassing ``step_ids`` (and no others)."""
        other = copy.copy(self)
        other.bypass = step_ids
        return other


# The state a Merge leaves the subordinate in (statecode, statuscode): inactive, or for a lead
# disqualified as "Canceled" (simulator choice: the documentation says "deactivated").
_MERGED_STATE = {"lead": (2, 7), "contact": (1, 2), "account": (1, 2)}


class Engine:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.tables = store.tables
        self.by_set = {t.entity_set: t for t in self.tables.values()}
        self.plugins: list[PluginRule] = []
        # The organization's base currency (a transactioncurrency id); set when seeded.
        self.base_currency: str | None = None

    # --- helpers -----------------------------------------------------------------------

    @staticmethod
    def now() -> datetime:
        # Dataverse keeps whole seconds.
        return datetime.now(UTC).replace(microsecond=0)

    def table_by_set(self, entity_set: str) -> Table:
        table = self.by_set.get(entity_set)
        if table is None:
            raise odata_error(f"Resource not found for the segment '{entity_set}'.", status=404)
        return table

    @contextmanager
    def transaction(self, outer: Transaction | None) -> Iterator[Transaction]:
        if outer is not None:
            with nullcontext(outer) as tx:
                yield tx
            return
        with self.store.transaction() as tx:
            yield tx

    def name_of(self, ref: Ref) -> str | None:
        table = self.tables.get(ref.logical)
        row = self.store.get(ref.logical, ref.id) if table else None
        if table is None or row is None:
            return None
        value = row.get(table.primary_name)
        return str(value) if value is not None else None

    def locate(self, table: Table, key: KeySegment) -> str | None:
        """The id of the row a key segment addresses, or None."""
        if key.primary is not None:
            return key.primary if self.store.get(table.logical_name, key.primary) else None
        if set(key.named) == {table.primary_id}:
            row_id = str(key.named[table.primary_id]).lower()
            return row_id if self.store.get(table.logical_name, row_id) else None
        for name, columns in table.alternate_keys.items():
            if set(columns) == set(key.named):
                return self.store.find_by_key(table.logical_name, name, tuple(key.named[c] for c in columns))
        raise odata_error(
            f"The key properties {', '.join(sorted(key.named))} do not match a key defined on "
            f"'{table.logical_name}'."
        )

    def resolve_reference(self, text: str, content_ids: dict[str, Ref]) -> Ref:
        """``/contacts(<id>)``, ``contacts(emailaddress1='x')``, an absolute URL, or ``$1``."""
        path = text.split("/api/data/", 1)[1].split("/", 1)[1] if "/api/data/" in text else text
        path = path.lstrip("/")
        if path.startswith("$"):
            ref = content_ids.get(path[1:])
            if ref is None:
                raise odata_error(f"Content-ID reference '{path}' was not found in the change set.")
            return ref
        entity_set, key_text = split_name_and_key(path)
        table = self.table_by_set(entity_set)
        if key_text is None:
            raise odata_error(f"The reference '{text}' does not address a single record.")
        key = parse_key(key_text)
        row_id = self.locate(table, key)
        if row_id is None:
            if key.primary is not None:
                raise not_found(table.logical_name, key.primary)
            raise not_found_by_key(table.logical_name)
        return Ref(table.logical_name, row_id)

    # --- payload -----------------------------------------------------------------------

    def parse_payload(
        self,
        table: Table,
        body: Any,
        *,
        creating: bool,
        content_ids: dict[str, Ref] | None = None,
    ) -> tuple[Row, tuple[str, ...]]:
        """Column values (internal form) and the columns the request named."""
        if not isinstance(body, dict):
            raise payload_error(table.entity_set, "The request body must be a JSON object.")
        values: Row = {}
        for key, raw in body.items():
            if key.startswith("@") or ("@" in key and "@odata.bind" not in key):
                continue
            if key.endswith("@odata.bind"):
                column, ref = self._bind(table, key[: -len("@odata.bind")], raw, content_ids or {})
                if column.valid_create if creating else column.valid_update:
                    values[column.name] = ref
                continue
            column = self._column_for_write(table, key)
            if not (column.valid_create if creating else column.valid_update):
                continue
            values[column.name] = self.convert(table, column, raw)
        self._validate(table, values)
        return values, tuple(values)

    def _column_for_write(self, table: Table, key: str) -> Column:
        column = table.column(key)
        if column is None and table.lookup_by_property(key) is not None:
            raise odata_error(
                "CRM do not support direct update of Entity Reference properties, "
                "Use Navigation properties instead."
            )
        if column is None:
            raise payload_error(
                table.entity_set,
                f"The property '{key}' does not exist on type "
                f"'Microsoft.Dynamics.CRM.{table.logical_name}'. Make sure to only use property "
                "names that are defined by the type or mark the type as open type.",
            )
        if column.type in LOOKUP_TYPES:
            raise payload_error(
                table.entity_set,
                f"Does not support untyped value in non-open type for property '{key}'. "
                "Set a lookup with '<navigation property>@odata.bind'.",
            )
        return column

    def _bind(
        self, table: Table, nav: str, raw: Any, content_ids: dict[str, Ref]
    ) -> tuple[Column, Ref | None]:
        column = table.lookup_by_navigation(nav)
        if column is None:
            raise payload_error(
                table.entity_set,
                f"An undeclared property '{nav}' which only has property annotations in the "
                "payload but no property value was found in the payload. In OData, only declared "
                "navigation properties and declared named streams can be represented as "
                "properties without values.",
            )
        if raw is None:
            return column, None
        if not isinstance(raw, str):
            raise payload_error(table.entity_set, f"The value of '{nav}@odata.bind' must be a URL.")
        ref = self.resolve_reference(raw, content_ids)
        if ref.logical != column.navigation[nav]:
            raise payload_error(
                table.entity_set,
                f"The navigation property '{nav}' expects a '{column.navigation[nav]}' reference, "
                f"not '{ref.logical}'.",
            )
        return column, ref

    def convert(self, table: Table, column: Column, raw: Any) -> Any:
        if raw is None:
            return None
        edm = EDM_TYPES[column.type]
        ok = {
            "str": isinstance(raw, str),
            "int": isinstance(raw, int) and not isinstance(raw, bool),
            "bool": isinstance(raw, bool),
            "number": isinstance(raw, int | float) and not isinstance(raw, bool),
        }
        expected = _JSON_KIND[column.type]
        if not ok[expected]:
            shown = str(raw).lower() if isinstance(raw, bool) else str(raw)
            raise payload_error(
                table.entity_set,
                f"Cannot convert the literal '{shown}' to the expected type '{edm}'.",
            )
        if column.type is AttrType.DATETIME:
            return _date_value(table, column, str(raw))
        if column.type is AttrType.UNIQUEIDENTIFIER:
            if not _GUID.match(str(raw)):
                raise payload_error(
                    table.entity_set,
                    f"Cannot convert the literal '{raw}' to the expected type '{edm}'.",
                )
            return str(raw).lower()
        if column.type is AttrType.MONEY:
            return float(raw)
        return raw

    def _validate(self, table: Table, values: Row) -> None:
        for name, value in values.items():
            column = table.columns[name]
            if value is None:
                continue
            if column.type in TEXT_TYPES and column.max_length and len(value) > column.max_length:
                raise DataverseFault(
                    400,
                    STRING_TOO_LONG,
                    f"A validation error occurred. The length of the '{name}' attribute of the "
                    f"'{table.logical_name}' entity exceeded the maximum allowed length of "
                    f"'{column.max_length}'.",
                )
            if column.type in OPTION_TYPES and value not in column.options:
                accepted = ",".join(str(v) for v in column.options)
                raise DataverseFault(
                    400,
                    PICKLIST_OUT_OF_RANGE,
                    f"A validation error occurred. The value {value} of '{name}' on record of "
                    f"type '{table.logical_name}' is outside the valid range. "
                    f"Accepted Values: {accepted}",
                )

    def _check_required(self, table: Table, row: Row, names: list[str] | None = None) -> None:
        for column in table.columns.values():
            if names is not None and column.name not in names:
                continue
            if column.required == "SystemRequired" and row.get(column.name) is None:
                raise DataverseFault(
                    400,
                    REQUIRED_MISSING,
                    f"A validation error occurred. A value must be provided for the "
                    f"'{column.name}' attribute of the '{table.logical_name}' entity "
                    "(it is system required).",
                )

    def _run_plugins(self, table: Table, message: str, row: Row, submitted: tuple[str, ...]) -> None:
        for rule in self.plugins:
            if rule.entity == table.logical_name:
                rule.check(message, row, submitted)

    def _state_status(self, table: Table, row: Row, values: Row, row_id: str) -> None:
        state_col, status_col = table.column("statecode"), table.column("statuscode")
        if state_col is None or status_col is None:
            return
        if "statecode" in values and "statuscode" not in values:
            row["statuscode"] = state_col.state_default_status.get(row["statecode"])
            return
        status = row.get("statuscode")
        if status is None:
            row["statuscode"] = state_col.state_default_status.get(row["statecode"])
            return
        if status_col.status_state.get(status) != row.get("statecode"):
            state_label = state_col.options.get(row.get("statecode", 0), "")
            state_type = _STATE_NAMES.get(table.logical_name, f"{table.schema_name}State")
            raise DataverseFault(
                400,
                INVALID_ARGUMENT,
                f"{status} is not a valid status code for state code {state_type}.{state_label} "
                f"on {table.logical_name} with Id {row_id}.",
            )

    def _currency(self, table: Table, row: Row, values: Row) -> None:
        """A row with currency columns carries one transaction currency: when a currency value
        is written and the row has none, the organization's base currency (the caller's own
        default currency comes first in Dataverse; simulated users have none). The exchange rate
        and every ``<column>_base`` (value / rate) follow each write of a currency value."""
        money = [
            c
            for c in table.columns.values()
            if c.type is AttrType.MONEY and f"{c.name}_base" in table.columns
        ]
        if not money or not (set(values) & ({c.name for c in money} | {"transactioncurrencyid"})):
            return
        priced = any(row.get(c.name) is not None for c in money)
        if row.get("transactioncurrencyid") is None and priced and self.base_currency is not None:
            row["transactioncurrencyid"] = Ref("transactioncurrency", self.base_currency)
        currency = row.get("transactioncurrencyid")
        rate = None
        if isinstance(currency, Ref):
            rate = (self.store.get("transactioncurrency", currency.id) or {}).get("exchangerate")
        row["exchangerate"] = rate
        for column in money:
            value = row.get(column.name)
            row[f"{column.name}_base"] = round(value / rate, 2) if value is not None and rate else None

    @staticmethod
    def _full_name(table: Table, row: Row) -> None:
        if table.logical_name in ("lead", "contact"):
            parts = [row.get("firstname"), row.get("lastname")]
            row["fullname"] = " ".join(p for p in parts if p) or None

    # --- writes ------------------------------------------------------------------------

    def create(
        self,
        tx: Transaction,
        table: Table,
        values: Row,
        submitted: tuple[str, ...],
        caller: Caller,
        *,
        row_id: str | None = None,
        key_values: dict[str, Any] | None = None,
    ) -> Row:
        if table.read_only:
            raise DataverseFault(
                403, PRIVILEGE_DENIED, f"The caller cannot create {table.logical_name} records."
            )
        row: Row = {name: column.default for name, column in table.columns.items()}
        row.update(values)
        for name, value in (key_values or {}).items():
            if row.get(name) is None:
                row[name] = value
        new_id = str(row.get(table.primary_id) or row_id or uuid.uuid4()).lower()
        if self.store.get(table.logical_name, new_id) is not None:
            raise DataverseFault(412, DUPLICATE_RECORD, "A record with matching key values already exists.")
        row[table.primary_id] = new_id
        now = self.now()
        user = Ref("systemuser", caller.user_id)
        if table.user_owned and row.get("ownerid") is None:
            row["ownerid"] = user
        row.update(createdon=now, modifiedon=now, createdby=user, modifiedby=user)
        if "statecode" in table.columns:
            row["statecode"] = 0
            self._state_status(table, row, values, new_id)
        self._full_name(table, row)
        self._currency(table, row, values)
        self._check_required(table, row)
        self._run_plugins(table, "Create", row, submitted)
        row["versionnumber"] = self.store.next_version()
        row = {k: v for k, v in row.items() if k in table.columns}
        tx.insert(table.logical_name, row)
        target = {k: v for k, v in row.items() if v is not None}
        tx.raise_event(
            Event(
                "Create",
                table.logical_name,
                new_id,
                submitted,
                target,
                None,
                dict(row),
                caller.user_id,
                caller.correlation_id,
                caller.request_id,
                bypassed=caller.bypass,
                key_attributes=dict(key_values or {}),
            )
        )
        return row

    def update(
        self,
        tx: Transaction,
        table: Table,
        row_id: str,
        values: Row,
        *,
        submitted: tuple[str, ...],
        caller: Caller,
        key_values: dict[str, Any] | None = None,
    ) -> Row:
        old = self.store.get(table.logical_name, row_id)
        if old is None:
            raise not_found(table.logical_name, row_id)
        if table.read_only:
            raise DataverseFault(
                403, PRIVILEGE_DENIED, f"The caller cannot update {table.logical_name} records."
            )
        values = {k: v for k, v in values.items() if k != table.primary_id}
        row = dict(old)
        row.update(values)
        if "statecode" in values or "statuscode" in values:
            self._state_status(table, row, values, row_id)
        if "firstname" in values or "lastname" in values:
            self._full_name(table, row)
        self._currency(table, row, values)
        row.update(modifiedon=self.now(), modifiedby=Ref("systemuser", caller.user_id))
        self._check_required(table, row, list(values))
        self._run_plugins(table, "Update", row, submitted)
        row["versionnumber"] = self.store.next_version()
        tx.replace(table.logical_name, row)
        self._raise_updates(
            tx, table, old, row, submitted=submitted, caller=caller, key_values=key_values or {}
        )
        return row

    def _raise_updates(
        self,
        tx: Transaction,
        table: Table,
        old: Row,
        row: Row,
        *,
        submitted: tuple[str, ...],
        caller: Caller,
        key_values: dict[str, Any],
    ) -> None:
        # A request that changes state/status together with other columns raises two Update
        # events: one for the other columns, one for statecode/statuscode (platform behaviour).
        state_cols = tuple(c for c in submitted if c in ("statecode", "statuscode"))
        other_cols = tuple(c for c in submitted if c not in state_cols)
        groups = [g for g in (other_cols, state_cols) if g] or [()]
        for group in groups:
            names = list(group)
            if group == state_cols and state_cols:
                names = ["statecode", "statuscode"]
            target: Row = {n: row.get(n) for n in names}
            if "fullname" in table.columns and ({"firstname", "lastname"} & set(group)):
                target["fullname"] = row.get("fullname")
            for stamp in _SYSTEM_STAMPS:
                if stamp in table.columns:
                    target[stamp] = row.get(stamp)
            target[table.primary_id] = row[table.primary_id]
            tx.raise_event(
                Event(
                    "Update",
                    table.logical_name,
                    row[table.primary_id],
                    group,
                    target,
                    dict(old),
                    dict(row),
                    caller.user_id,
                    caller.correlation_id,
                    caller.request_id,
                    bypassed=caller.bypass,
                    key_attributes=dict(key_values),
                )
            )

    def delete(self, tx: Transaction, table: Table, row_id: str, caller: Caller) -> None:
        old = self.store.get(table.logical_name, row_id)
        if old is None:
            raise not_found(table.logical_name, row_id)
        if table.read_only:
            raise DataverseFault(
                403, PRIVILEGE_DENIED, f"The caller cannot delete {table.logical_name} records."
            )
        tx.delete(table.logical_name, row_id)
        self._remove_links(tx, Ref(table.logical_name, row_id))
        tx.raise_event(
            Event(
                "Delete",
                table.logical_name,
                row_id,
                (),
                {},
                dict(old),
                None,
                caller.user_id,
                caller.correlation_id,
                caller.request_id,
                bypassed=caller.bypass,
            )
        )

    def _remove_links(self, tx: Transaction, ref: Ref) -> None:
        # Relationship behaviour "Remove Link": lookups to a deleted row are cleared.
        for logical, rows in self.store.rows.items():
            table = self.tables[logical]
            lookups = [
                c.name for c in table.columns.values() if c.type in LOOKUP_TYPES and ref.logical in c.targets
            ]
            if not lookups:
                continue
            for row in list(rows.values()):
                cleared = {name: None for name in lookups if row.get(name) == ref}
                if cleared:
                    new = {**row, **cleared, "versionnumber": self.store.next_version()}
                    tx.replace(logical, new)

    # --- Merge -------------------------------------------------------------------------

    def _merge_party(self, params: dict[str, Any], name: str) -> tuple[Table, str]:
        party = params.get(name)
        if not isinstance(party, dict):
            raise odata_error(f"The parameter '{name}' of the action 'Merge' is required.")
        kind = str(party.get("@odata.type", "")).lstrip("#").removeprefix("Microsoft.Dynamics.CRM.")
        table = self.tables.get(kind)
        if not kind or table is None:
            raise payload_error(
                "Merge", f"The '{name}' parameter needs an '@odata.type' annotation naming its table."
            )
        row_id = str(party.get(table.primary_id) or "").lower()
        if not _GUID.match(row_id):
            raise payload_error("Merge", f"The '{name}' parameter needs its '{table.primary_id}'.")
        if self.store.get(table.logical_name, row_id) is None:
            raise not_found(table.logical_name, row_id)
        return table, row_id

    def merge(self, tx: Transaction, params: Any, caller: Caller) -> None:
        """The Merge action: UpdateContent is written to the target, the subordinate is
        deactivated with ``merged`` and ``masterid`` set, and a Merge event is raised on the
        target's table (InputParameters Target, SubordinateId, UpdateContent,
        PerformParentingChecks). Related rows are not re-parented (not modelled)."""
        if not isinstance(params, dict):
            raise payload_error("Merge", "The request body must be a JSON object.")
        table, target_id = self._merge_party(params, "Target")
        other, subordinate_id = self._merge_party(params, "Subordinate")
        if other is not table or table.logical_name not in _MERGED_STATE:
            raise odata_error("Only two accounts, two contacts or two leads can be merged.")
        if target_id == subordinate_id:
            raise odata_error("A record cannot be merged with itself.")
        if not isinstance(params.get("PerformParentingChecks"), bool):
            raise odata_error("The parameter 'PerformParentingChecks' of the action 'Merge' is required.")
        if (self.store.get(table.logical_name, subordinate_id) or {}).get("merged"):
            raise odata_error("The subordinate record was already merged.")
        content = dict(params.get("UpdateContent") or {})
        content.pop("@odata.type", None)
        values, submitted = self.parse_payload(table, content, creating=False)
        if values:
            self.update(tx, table, target_id, values, submitted=submitted, caller=caller)
        state, status = _MERGED_STATE[table.logical_name]
        changes = {
            "statecode": state,
            "statuscode": status,
            "merged": True,
            "masterid": Ref(table.logical_name, target_id),
        }
        self.update(tx, table, subordinate_id, changes, submitted=tuple(changes), caller=caller)
        tx.raise_event(
            Event(
                "Merge",
                table.logical_name,
                target_id,
                (),
                {},
                None,
                None,
                caller.user_id,
                caller.correlation_id,
                caller.request_id,
                bypassed=caller.bypass,
                inputs={
                    "SubordinateId": subordinate_id,
                    "UpdateContent": dict(values.items()),
                    "PerformParentingChecks": bool(params["PerformParentingChecks"]),
                },
            )
        )

    # --- QualifyLead -------------------------------------------------------------------

    def qualify(self, tx: Transaction, lead_id: str, params: Any, caller: Caller) -> list[Ref]:
        lead_table = self.tables["lead"]
        lead = self.store.get("lead", lead_id)
        if lead is None:
            raise not_found("lead", lead_id)
        if not isinstance(params, dict):
            raise payload_error("leads", "The request body must be a JSON object.")
        flags = {}
        for name in ("CreateAccount", "CreateContact", "CreateOpportunity"):
            value = params.get(name)
            if not isinstance(value, bool):
                raise odata_error(f"The parameter '{name}' of the action 'QualifyLead' is required.")
            flags[name] = value
        status = params.get("Status")
        if not isinstance(status, int) or isinstance(status, bool):
            raise odata_error("The parameter 'Status' of the action 'QualifyLead' is required.")
        status = 3 if status == -1 else status
        if lead_table.columns["statuscode"].status_state.get(status) != 1:
            raise DataverseFault(
                400,
                INVALID_ARGUMENT,
                f"{status} is not a valid status code for state code LeadState.Qualified on lead "
                f"with Id {lead_id}.",
            )
        if lead.get("statecode") != 0:
            raise DataverseFault(
                400,
                LEAD_ALREADY_CLOSED,
                "The lead is closed. You cannot convert or qualify a lead that is already closed.",
            )
        if flags["CreateOpportunity"]:
            raise odata_error("This simulator does not model opportunities: use CreateOpportunity=false.")
        created: list[Ref] = []
        lead_ref = Ref("lead", lead_id)
        account: Ref | None = None
        if flags["CreateAccount"] and lead.get("companyname"):
            values = {"name": lead["companyname"], "originatingleadid": lead_ref}
            row = self.create(tx, self.tables["account"], values, tuple(values), caller)
            account = Ref("account", row["accountid"])
            created.append(account)
        if flags["CreateContact"]:
            values = {c: lead.get(c) for c in _COPIED_ON_QUALIFY if lead.get(c) is not None}
            values["originatingleadid"] = lead_ref
            if account is not None:
                values["parentcustomerid"] = account
            row = self.create(tx, self.tables["contact"], values, tuple(values), caller)
            created.append(Ref("contact", row["contactid"]))
        changes = {"statecode": 1, "statuscode": status}
        self.update(tx, lead_table, lead_id, changes, submitted=tuple(changes), caller=caller)
        return created


_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _date_value(table: Table, column: Column, raw: str) -> datetime:
    """A written date as stored: UserLocal an instant (a value without offset is taken as UTC,
    as the Web API does: no conversion); DateOnly a calendar date (``yyyy-MM-dd`` only, Edm.Date),
    kept as midnight UTC; TimeZoneIndependent the digits as written, whatever the offset."""
    if column.date_behavior == "DateOnly":
        if not _DATE_ONLY.match(raw):
            raise payload_error(
                table.entity_set, f"Cannot convert the literal '{raw}' to the expected type 'Edm.Date'."
            )
        return parse_datetime(raw)
    try:
        if column.date_behavior == "TimeZoneIndependent":
            face = datetime.fromisoformat(raw.replace("Z", "+00:00")) if "T" in raw else parse_datetime(raw)
            return face.replace(tzinfo=UTC, microsecond=0)
        return parse_datetime(raw).replace(microsecond=0)
    except ValueError as exc:
        raise payload_error(
            table.entity_set, f"Cannot convert the literal '{raw}' to the expected type 'Edm.DateTimeOffset'."
        ) from exc


_JSON_KIND = {
    **dict.fromkeys(INT_TYPES, "int"),
    AttrType.STRING: "str",
    AttrType.MEMO: "str",
    AttrType.BOOLEAN: "bool",
    AttrType.MONEY: "number",
    AttrType.DECIMAL: "number",
    AttrType.DATETIME: "str",
    AttrType.UNIQUEIDENTIFIER: "str",
}
