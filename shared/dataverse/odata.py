"""Safe OData literals and filter clauses for the Dataverse Web API.

Every value that reaches a ``$filter`` or a key segment goes through :func:`literal`: strings are
single-quoted with inner quotes doubled, GUIDs are validated, datetimes must be timezone-aware.
Property names are checked against the logical-name grammar, so neither a value nor a name can
change the shape of a query. URL-encoding is left to ``requests`` (query parameters) or done by
:func:`key_path` (key segments in a path), never by hand.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from urllib.parse import quote

Value = str | int | float | bool | uuid.UUID | datetime | None

# The tables mdsync syncs, by logical name, with their entity set (the name in a URL).
ENTITY_SETS = {"lead": "leads", "contact": "contacts"}
# The namespace of Dataverse's own types and actions (``Microsoft.Dynamics.CRM.UpdateMultiple``).
NS = "Microsoft.Dynamics.CRM."

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_PROPERTY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*$")
_OPERATORS = frozenset({"eq", "ne", "gt", "ge", "lt", "le"})


def is_guid(value: str) -> bool:
    return bool(_GUID.match(value))


def guid(value: str | uuid.UUID) -> str:
    """A GUID literal (bare, lower-case); anything else raises ValueError."""
    text = str(value)
    if not _GUID.match(text):
        raise ValueError("not a GUID")
    return text.lower()


def string(value: str) -> str:
    """``O'Bryan`` -> ``'O''Bryan'``."""
    return "'" + value.replace("'", "''") + "'"


def literal(value: Value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, uuid.UUID):
        return guid(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("a filter number must be finite")
        return repr(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("a filter datetime must be timezone-aware")
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return string(value)


def prop(name: str) -> str:
    """A property name or path (``_ownerid_value``, ``sdkmessageid/name``), validated."""
    if not _PROPERTY.match(name):
        raise ValueError(f"not a property name: {name[:40]!r}")
    return name


def compare(name: str, operator: str, value: Value) -> str:
    if operator not in _OPERATORS:
        raise ValueError(f"unknown operator {operator!r}")
    return f"{prop(name)} {operator} {literal(value)}"


def eq(name: str, value: Value) -> str:
    return compare(name, "eq", value)


def ne(name: str, value: Value) -> str:
    return compare(name, "ne", value)


def _in_value(value: str | int | uuid.UUID) -> str:
    text = str(value)
    # PropertyValues is Collection(Edm.String): numbers are quoted too; a value containing a
    # single quote is written as a JSON (double-quoted) string.
    if "'" in text:
        return json.dumps(text, ensure_ascii=False)
    return "'" + text + "'"


def in_(name: str, values: Iterable[str | int | uuid.UUID], *, negate: bool = False) -> str:
    """``Microsoft.Dynamics.CRM.In(PropertyName='x',PropertyValues=['a','b'])``.

    The OData ``in`` operator is not implemented by Dataverse; this query function is."""
    items = [_in_value(v) for v in values]
    if not items:
        raise ValueError("In() needs at least one value")
    function = "NotIn" if negate else "In"
    return (
        f"Microsoft.Dynamics.CRM.{function}(PropertyName={string(prop(name))},"
        f"PropertyValues=[{','.join(items)}])"
    )


def like_escape(value: str) -> str:
    """Make ``% _ [`` match themselves inside contains/startswith/endswith."""
    return re.sub(r"([%_\[])", r"[\1]", value)


def contains(name: str, value: str) -> str:
    return f"contains({prop(name)},{string(like_escape(value))})"


def startswith(name: str, value: str) -> str:
    return f"startswith({prop(name)},{string(like_escape(value))})"


def endswith(name: str, value: str) -> str:
    return f"endswith({prop(name)},{string(like_escape(value))})"


def and_(*clauses: str) -> str:
    return " and ".join(f"({c})" for c in clauses if c)


def or_(*clauses: str) -> str:
    return " or ".join(f"({c})" for c in clauses if c)


def not_(clause: str) -> str:
    return f"not ({clause})"


def key_segment(key: str | uuid.UUID | Mapping[str, Value]) -> str:
    """The text inside ``entityset(...)``: a bare GUID or ``name='value',...``.

    A string that is not a GUID is taken as an already-built key segment (such as
    ``mdsync_marketoid='42'``); build those with a mapping instead whenever a value is data."""
    if isinstance(key, uuid.UUID) or (isinstance(key, str) and is_guid(key)):
        return guid(key)
    if isinstance(key, str):
        return key
    if not key:
        raise ValueError("an alternate key needs at least one column")
    return ",".join(f"{prop(name)}={literal(value)}" for name, value in key.items())


def key_path(entity_set: str, key: str | uuid.UUID | Mapping[str, Value]) -> str:
    """``leads(mdsync_marketoid='a%2Fb')``: the key segment, percent-encoded for a URL path."""
    segment = key_segment(key)
    return f"{prop(entity_set)}({quote(segment, safe=chr(39) + '(),=-._~')})"
