"""The tables the simulator serves, with the columns of the Dataverse table reference.

Every simulator instance gets its own copy (:func:`default_tables`), so the admin API can
customise a column's requirement level or MaxLength without touching other instances.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class AttrType(StrEnum):
    STRING = "String"
    MEMO = "Memo"
    PICKLIST = "Picklist"
    STATE = "State"
    STATUS = "Status"
    BOOLEAN = "Boolean"
    LOOKUP = "Lookup"
    OWNER = "Owner"
    CUSTOMER = "Customer"
    DATETIME = "DateTime"
    INTEGER = "Integer"
    BIGINT = "BigInt"
    DECIMAL = "Decimal"
    MONEY = "Money"
    UNIQUEIDENTIFIER = "Uniqueidentifier"


LOOKUP_TYPES = frozenset({AttrType.LOOKUP, AttrType.OWNER, AttrType.CUSTOMER})
OPTION_TYPES = frozenset({AttrType.PICKLIST, AttrType.STATE, AttrType.STATUS})
TEXT_TYPES = frozenset({AttrType.STRING, AttrType.MEMO})
INT_TYPES = frozenset({AttrType.INTEGER, AttrType.BIGINT}) | OPTION_TYPES


@dataclass
class Column:
    name: str
    type: AttrType
    max_length: int | None = None
    required: str = "None"  # None | SystemRequired | ApplicationRequired | Recommended
    format: str | None = None  # FormatName: Email, Text, TextArea, Phone, Url
    options: dict[int, str] = field(default_factory=dict)
    status_state: dict[int, int] = field(default_factory=dict)  # Status -> its State
    state_default_status: dict[int, int] = field(default_factory=dict)
    bool_labels: tuple[str, str] = ("No", "Yes")  # (false, true)
    # Navigation property name -> target table, for lookups ("parentcustomerid_account").
    navigation: dict[str, str] = field(default_factory=dict)
    valid_create: bool = True
    valid_update: bool = True
    valid_read: bool = True
    default: Any = None
    schema_name: str = ""
    display_name: str = ""
    metadata_id: str = ""
    # DateTime columns: DateTimeBehavior (UserLocal, DateOnly, TimeZoneIndependent) and Format
    # (DateAndTime, DateOnly).
    date_behavior: str = "UserLocal"
    date_format: str = "DateAndTime"

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.navigation.values()))

    @property
    def lookup_property(self) -> str:
        return f"_{self.name}_value"


@dataclass
class KeyJob:
    """An alternate key whose index is not (yet) usable: ``Pending`` until ``ready_at`` (the
    system job building the index), or ``Failed`` (duplicate values). Active keys live in
    :attr:`Table.alternate_keys`, where lookups and uniqueness use them."""

    columns: tuple[str, ...]
    schema_name: str
    metadata_id: str
    ready_at: float
    status: str = "Pending"


@dataclass
class Table:
    logical_name: str
    entity_set: str
    primary_id: str
    primary_name: str
    columns: dict[str, Column]
    object_type_code: int
    alternate_keys: dict[str, tuple[str, ...]] = field(default_factory=dict)
    key_jobs: dict[str, KeyJob] = field(default_factory=dict)
    change_tracking: bool = False
    user_owned: bool = True
    custom: bool = False
    read_only: bool = False  # systemuser: rows come from the simulator configuration
    metadata_id: str = ""
    schema_name: str = ""

    def column(self, name: str) -> Column | None:
        return self.columns.get(name)

    def lookup_by_property(self, prop: str) -> Column | None:
        """The lookup column behind a ``_name_value`` property."""
        if prop.startswith("_") and prop.endswith("_value"):
            column = self.columns.get(prop[1:-6])
            if column is not None and column.type in LOOKUP_TYPES:
                return column
        return None

    def lookup_by_navigation(self, nav: str) -> Column | None:
        for column in self.columns.values():
            if nav in column.navigation:
                return column
        return None


def _mid(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "mdsync-sim:" + ":".join(parts)))


def _s(name: str, max_length: int, fmt: str = "Text", required: str = "None", **kw: Any) -> Column:
    return Column(name, AttrType.STRING, max_length=max_length, format=fmt, required=required, **kw)


def _memo(name: str, max_length: int = 2000) -> Column:
    return Column(name, AttrType.MEMO, max_length=max_length, format="TextArea")


def _lookup(name: str, navigation: dict[str, str], kind: AttrType = AttrType.LOOKUP, **kw: Any) -> Column:
    return Column(name, kind, navigation=navigation, **kw)


def _date(name: str, behavior: str = "UserLocal", fmt: str = "DateOnly") -> Column:
    return Column(name, AttrType.DATETIME, date_behavior=behavior, date_format=fmt)


def _money(name: str) -> list[Column]:
    """A currency column and its read-only base-currency copy (value / exchange rate)."""
    return [Column(name, AttrType.MONEY), _readonly(Column(f"{name}_base", AttrType.MONEY))]


def _currency_columns() -> list[Column]:
    """What every table with currency columns carries: the row's transaction currency and the
    exchange rate (to the base currency) at the last write of a currency column."""
    return [
        _lookup("transactioncurrencyid", {"transactioncurrencyid": "transactioncurrency"}),
        _readonly(Column("exchangerate", AttrType.DECIMAL)),
    ]


def _merge_columns(logical: str) -> list[Column]:
    """Set on the subordinate of a Merge: the record it was merged into."""
    return [
        _readonly(_lookup("masterid", {"masterid": logical})),
        _readonly(Column("merged", AttrType.BOOLEAN, default=False)),
    ]


def _readonly(column: Column) -> Column:
    column.valid_create = False
    column.valid_update = False
    return column


def _system_columns(owned: bool) -> list[Column]:
    columns = [
        _readonly(Column("createdon", AttrType.DATETIME)),
        _readonly(Column("modifiedon", AttrType.DATETIME)),
        _readonly(_lookup("createdby", {"createdby": "systemuser"})),
        _readonly(_lookup("modifiedby", {"modifiedby": "systemuser"})),
        _readonly(_lookup("modifiedonbehalfby", {"modifiedonbehalfby": "systemuser"})),
        _readonly(Column("versionnumber", AttrType.BIGINT)),
    ]
    if owned:
        columns.append(
            _lookup(
                "ownerid",
                {"ownerid": "systemuser"},
                AttrType.OWNER,
                required="SystemRequired",
            )
        )
    return columns


def _active_inactive() -> list[Column]:
    """statecode/statuscode of a table that is only Active (1) or Inactive (2)."""
    return [
        Column(
            "statecode",
            AttrType.STATE,
            required="SystemRequired",
            options={0: "Active", 1: "Inactive"},
            state_default_status={0: 1, 1: 2},
            valid_create=False,
            default=0,
        ),
        Column(
            "statuscode", AttrType.STATUS, options={1: "Active", 2: "Inactive"}, status_state={1: 0, 2: 1}
        ),
    ]


# What `mdsync dynamics setup` creates on lead and contact. A "provisioned" organization (the
# default, for the demo and most tests) starts with them; a fresh one has none of them.
SYNC_KEYS = {"mdsync_marketoid_key": ("mdsync_marketoid",)}


def _sync_columns() -> list[Column]:
    # The two custom columns the mdsync solution adds to lead and contact.
    return [
        _s("mdsync_marketoid", 20, display_name="Marketo Id"),
        Column("new_synctomkto", AttrType.BOOLEAN, display_name="Sync to Marketo"),
    ]


LEAD_SOURCES = {
    1: "Advertisement",
    2: "Employee Referral",
    3: "External Referral",
    4: "Partner",
    5: "Public Relations",
    6: "Seminar",
    7: "Trade Show",
    8: "Web",
    9: "Word of Mouth",
    10: "Other",
}


def _lead(provisioned: bool) -> Table:
    columns = [
        Column("leadid", AttrType.UNIQUEIDENTIFIER, required="SystemRequired", valid_update=False),
        _s("firstname", 50, required="Recommended"),
        _s("lastname", 50, required="ApplicationRequired"),
        _readonly(_s("fullname", 160)),
        _s("subject", 300, required="ApplicationRequired"),
        _s("emailaddress1", 100, "Email"),
        _s("emailaddress2", 100, "Email"),
        _s("emailaddress3", 100, "Email"),
        _s("companyname", 100, required="Recommended"),
        _s("jobtitle", 100),
        _s("telephone1", 50, "Phone"),
        _s("mobilephone", 20, "Phone"),
        _s("websiteurl", 200, "Url"),
        _s("address1_city", 80),
        _s("address1_country", 80),
        _memo("description"),
        Column("leadsourcecode", AttrType.PICKLIST, options=dict(LEAD_SOURCES)),
        Column(
            "statecode",
            AttrType.STATE,
            required="SystemRequired",
            options={0: "Open", 1: "Qualified", 2: "Disqualified"},
            state_default_status={0: 1, 1: 3, 2: 4},
            valid_create=False,
            default=0,
        ),
        Column(
            "statuscode",
            AttrType.STATUS,
            options={
                1: "New",
                2: "Contacted",
                3: "Qualified",
                4: "Lost",
                5: "Cannot Contact",
                6: "No Longer Interested",
                7: "Canceled",
            },
            status_state={1: 0, 2: 0, 3: 1, 4: 2, 5: 2, 6: 2, 7: 2},
        ),
        Column("donotemail", AttrType.BOOLEAN, bool_labels=("Allow", "Do Not Allow"), default=False),
        *_money("revenue"),
        *_currency_columns(),
        # Est. Close Date: date-only, and (as shipped) User Local: a local midnight, in UTC.
        _date("estimatedclosedate"),
        *_merge_columns("lead"),
        _lookup("parentcontactid", {"parentcontactid": "contact"}),
        _lookup("parentaccountid", {"parentaccountid": "account"}),
        _lookup(
            "customerid",
            {"customerid_account": "account", "customerid_contact": "contact"},
            AttrType.CUSTOMER,
        ),
        *_system_columns(owned=True),
        *(_sync_columns() if provisioned else []),
    ]
    return Table(
        "lead",
        "leads",
        "leadid",
        "fullname",
        {c.name: c for c in columns},
        object_type_code=4,
        alternate_keys=dict(SYNC_KEYS) if provisioned else {},
        change_tracking=True,
    )


def _contact(provisioned: bool) -> Table:
    columns = [
        Column("contactid", AttrType.UNIQUEIDENTIFIER, required="SystemRequired", valid_update=False),
        _s("firstname", 50, required="Recommended"),
        _s("lastname", 50, required="ApplicationRequired"),
        _readonly(_s("fullname", 160)),
        _s("emailaddress1", 100, "Email"),
        _s("emailaddress2", 100, "Email"),
        _s("emailaddress3", 100, "Email"),
        _s("jobtitle", 100),
        _s("telephone1", 50, "Phone"),
        _s("mobilephone", 50, "Phone"),
        _s("address1_city", 80),
        _s("address1_country", 80),
        _memo("description"),
        *_active_inactive(),
        Column("donotemail", AttrType.BOOLEAN, bool_labels=("Allow", "Do Not Allow"), default=False),
        *_money("annualincome"),
        *_currency_columns(),
        _date("birthdate", "DateOnly"),
        *_merge_columns("contact"),
        _lookup(
            "parentcustomerid",
            {"parentcustomerid_account": "account", "parentcustomerid_contact": "contact"},
            AttrType.CUSTOMER,
        ),
        _lookup("originatingleadid", {"originatingleadid": "lead"}, valid_update=False),
        *_system_columns(owned=True),
        *(_sync_columns() if provisioned else []),
    ]
    return Table(
        "contact",
        "contacts",
        "contactid",
        "fullname",
        {c.name: c for c in columns},
        object_type_code=2,
        alternate_keys=dict(SYNC_KEYS) if provisioned else {},
        change_tracking=True,
    )


def _account() -> Table:
    columns = [
        Column("accountid", AttrType.UNIQUEIDENTIFIER, required="SystemRequired", valid_update=False),
        _s("name", 160, required="ApplicationRequired"),
        _s("emailaddress1", 100, "Email"),
        _s("telephone1", 50, "Phone"),
        _s("websiteurl", 200, "Url"),
        _s("address1_city", 80),
        _s("address1_country", 80),
        _memo("description"),
        *_active_inactive(),
        _lookup("primarycontactid", {"primarycontactid": "contact"}),
        _lookup("originatingleadid", {"originatingleadid": "lead"}, valid_update=False),
        *_system_columns(owned=True),
    ]
    return Table("account", "accounts", "accountid", "name", {c.name: c for c in columns}, object_type_code=1)


def _transactioncurrency() -> Table:
    columns = [
        Column(
            "transactioncurrencyid", AttrType.UNIQUEIDENTIFIER, required="SystemRequired", valid_update=False
        ),
        _s("isocurrencycode", 5, required="SystemRequired"),
        _s("currencyname", 100, required="SystemRequired"),
        _s("currencysymbol", 10, required="SystemRequired"),
        Column("exchangerate", AttrType.DECIMAL, required="SystemRequired"),
        Column("currencyprecision", AttrType.INTEGER, required="SystemRequired", default=2),
        _readonly(Column("versionnumber", AttrType.BIGINT)),
    ]
    return Table(
        "transactioncurrency",
        "transactioncurrencies",
        "transactioncurrencyid",
        "currencyname",
        {c.name: c for c in columns},
        object_type_code=9105,
        user_owned=False,
    )


def _systemuser() -> Table:
    columns = [
        Column("systemuserid", AttrType.UNIQUEIDENTIFIER, required="SystemRequired"),
        _s("fullname", 200),
        Column("applicationid", AttrType.UNIQUEIDENTIFIER),
        Column("isdisabled", AttrType.BOOLEAN, default=False),
        _readonly(Column("versionnumber", AttrType.BIGINT)),
    ]
    return Table(
        "systemuser",
        "systemusers",
        "systemuserid",
        "fullname",
        {c.name: c for c in columns},
        object_type_code=8,
        user_owned=False,
        read_only=True,
    )


def _org_table(logical: str, entity_set: str, primary_name: str, code: int, columns: list[Column]) -> Table:
    pk = Column(f"{logical}id", AttrType.UNIQUEIDENTIFIER, required="SystemRequired", valid_update=False)
    stamps = [c for c in _system_columns(owned=False) if c.name != "modifiedonbehalfby"]
    all_columns = [pk, *columns, *stamps]
    return Table(
        logical,
        entity_set,
        pk.name,
        primary_name,
        {c.name: c for c in all_columns},
        object_type_code=code,
        user_owned=False,
    )


def _registration_tables() -> list[Table]:
    endpoint = _org_table(
        "serviceendpoint",
        "serviceendpoints",
        "name",
        4618,
        [
            _s("name", 256, required="SystemRequired"),
            _s("url", 2000, "Url"),
            _s("description", 2000),
            Column(
                "contract",
                AttrType.PICKLIST,
                required="SystemRequired",
                options={
                    1: "OneWay",
                    2: "Queue",
                    3: "Rest",
                    4: "TwoWay",
                    5: "Topic",
                    6: "Queue (Persistent)",
                    7: "Event Hub",
                    8: "Webhook",
                    9: "Event Grid",
                },
            ),
            Column(
                "authtype",
                AttrType.PICKLIST,
                required="SystemRequired",
                options={
                    1: "ACS",
                    2: "SAS Key",
                    3: "SAS Token",
                    4: "Webhook Key",
                    5: "Http Header",
                    6: "Http Query String",
                    7: "Connection String",
                    8: "Access Key",
                },
            ),
            _s("authvalue", 2048, valid_read=False),
            Column(
                "messageformat",
                AttrType.PICKLIST,
                options={1: "Binary XML", 2: "Json", 3: "Text XML"},
                default=2,
            ),
            Column("messagecharset", AttrType.PICKLIST, options={0: "Default", 1: "UTF8"}, default=0),
        ],
    )
    message = _org_table(
        "sdkmessage", "sdkmessages", "name", 4606, [_s("name", 256, required="SystemRequired")]
    )
    message.read_only = True
    message_filter = _org_table(
        "sdkmessagefilter",
        "sdkmessagefilters",
        "primaryobjecttypecode",
        4607,
        [
            _s("primaryobjecttypecode", 100),
            _s("secondaryobjecttypecode", 100),
            _lookup("sdkmessageid", {"sdkmessageid": "sdkmessage"}),
        ],
    )
    message_filter.read_only = True
    step = _org_table(
        "sdkmessageprocessingstep",
        "sdkmessageprocessingsteps",
        "name",
        4608,
        [
            _s("name", 256, required="SystemRequired"),
            _s("description", 256),
            Column(
                "stage",
                AttrType.PICKLIST,
                required="SystemRequired",
                options={
                    10: "Pre-validation",
                    20: "Pre-operation",
                    30: "Main Operation",
                    40: "Post-operation",
                },
            ),
            Column(
                "mode",
                AttrType.PICKLIST,
                required="SystemRequired",
                options={0: "Synchronous", 1: "Asynchronous"},
            ),
            Column("rank", AttrType.INTEGER, required="SystemRequired", default=1),
            Column(
                "supporteddeployment",
                AttrType.PICKLIST,
                options={0: "Server Only", 1: "Microsoft Dynamics 365 Client for Outlook Only", 2: "Both"},
                default=0,
            ),
            _s("filteringattributes", 100000),
            Column("asyncautodelete", AttrType.BOOLEAN, default=False),
            _lookup(
                "eventhandler",
                {"eventhandler_serviceendpoint": "serviceendpoint", "eventhandler_plugintype": "plugintype"},
            ),
            _lookup("sdkmessageid", {"sdkmessageid": "sdkmessage"}, required="SystemRequired"),
            _lookup("sdkmessagefilterid", {"sdkmessagefilterid": "sdkmessagefilter"}),
            Column(
                "statecode",
                AttrType.STATE,
                options={0: "Enabled", 1: "Disabled"},
                state_default_status={0: 1, 1: 2},
                default=0,
                valid_create=False,
            ),
            Column(
                "statuscode",
                AttrType.STATUS,
                options={1: "Enabled", 2: "Disabled"},
                status_state={1: 0, 2: 1},
            ),
        ],
    )
    image = _org_table(
        "sdkmessageprocessingstepimage",
        "sdkmessageprocessingstepimages",
        "name",
        4615,
        [
            _s("name", 256),
            _s("entityalias", 256, required="SystemRequired"),
            Column(
                "imagetype",
                AttrType.PICKLIST,
                required="SystemRequired",
                options={0: "PreImage", 1: "PostImage", 2: "Both"},
            ),
            _s("messagepropertyname", 256, required="SystemRequired"),
            _s("attributes", 100000),
            _lookup(
                "sdkmessageprocessingstepid",
                {"sdkmessageprocessingstepid": "sdkmessageprocessingstep"},
                required="SystemRequired",
            ),
        ],
    )
    return [endpoint, message, message_filter, step, image]


def _solution_tables() -> list[Table]:
    """Publishers (whose customization prefix starts every custom schema name) and solutions."""
    publisher = _org_table(
        "publisher",
        "publishers",
        "friendlyname",
        7101,
        [
            _s("uniquename", 256, required="SystemRequired"),
            _s("friendlyname", 256, required="SystemRequired"),
            _s("customizationprefix", 8, required="SystemRequired"),
            Column("customizationoptionvalueprefix", AttrType.INTEGER, required="SystemRequired"),
            _s("description", 2000),
        ],
    )
    solution = _org_table(
        "solution",
        "solutions",
        "friendlyname",
        7100,
        [
            _s("uniquename", 65, required="SystemRequired"),
            _s("friendlyname", 256, required="SystemRequired"),
            _s("version", 256, required="SystemRequired"),
            _s("description", 2000),
            Column("ismanaged", AttrType.BOOLEAN, default=False, valid_create=False, valid_update=False),
            _lookup("publisherid", {"publisherid": "publisher"}, required="SystemRequired"),
        ],
    )
    return [publisher, solution]


def default_tables(*, provisioned: bool = True) -> dict[str, Table]:
    """A new organization's tables; ``provisioned`` adds what `mdsync dynamics setup` creates."""
    tables = [
        _lead(provisioned),
        _contact(provisioned),
        _account(),
        _transactioncurrency(),
        _systemuser(),
        *_registration_tables(),
        *_solution_tables(),
    ]
    for table in tables:
        table.metadata_id = _mid(table.logical_name)
        table.schema_name = table.schema_name or table.logical_name.capitalize()
        for column in table.columns.values():
            column.metadata_id = _mid(table.logical_name, column.name)
            column.schema_name = column.schema_name or _schema_name(column.name)
            column.display_name = column.display_name or column.name
    return {t.logical_name: t for t in tables}


def _schema_name(logical: str) -> str:
    if "_" in logical and logical.split("_", 1)[0] in {"mdsync", "new"}:
        prefix, rest = logical.split("_", 1)
        return f"{prefix}_{rest.capitalize()}"
    return logical.capitalize()


SYSTEM_MESSAGES = (
    "Create",
    "Update",
    "Delete",
    "CreateMultiple",
    "UpdateMultiple",
    "UpsertMultiple",
    "QualifyLead",
    "Merge",
)


# The OData type of each column type ($metadata, and typed literals in $filter).
EDM_TYPES = {
    AttrType.STRING: "Edm.String",
    AttrType.MEMO: "Edm.String",
    AttrType.PICKLIST: "Edm.Int32",
    AttrType.STATE: "Edm.Int32",
    AttrType.STATUS: "Edm.Int32",
    AttrType.INTEGER: "Edm.Int32",
    AttrType.BIGINT: "Edm.Int64",
    AttrType.DECIMAL: "Edm.Decimal",
    AttrType.BOOLEAN: "Edm.Boolean",
    AttrType.MONEY: "Edm.Decimal",
    AttrType.DATETIME: "Edm.DateTimeOffset",
    AttrType.UNIQUEIDENTIFIER: "Edm.Guid",
    AttrType.LOOKUP: "Edm.Guid",
    AttrType.OWNER: "Edm.Guid",
    AttrType.CUSTOMER: "Edm.Guid",
}
