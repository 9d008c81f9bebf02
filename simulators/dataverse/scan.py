"""Which rows a ``$filter`` can match, from the indexes, before any row is looked at.

A filter that requires the primary key, or an indexed column, to equal one of a few values
(``leadid eq …``, ``Microsoft.Dynamics.CRM.In(PropertyName='emailaddress1',…)``, either inside
an ``and``) names its candidate rows outright; the query then evaluates the whole filter on
those rows only; so does ``modifiedon ge``/``gt`` a moment, from the store's time index, when
few rows are that recent. Anything else (``or``, ``not``, other ranges, functions) returns None:
scan them all.
The answer is a superset of the matches, never a subset, so it changes speed and nothing else.
"""

from __future__ import annotations

from datetime import datetime

from simulators.dataverse.odata import BoolOp, Call, Compare, InList, Literal, Node, Prop
from simulators.dataverse.schema import Table
from simulators.dataverse.store import Store


def narrow(node: Node, table: Table, store: Store) -> set[str] | None:
    """Ids of every row ``node`` can match, or None when the indexes cannot tell."""
    if isinstance(node, BoolOp):
        if node.op != "and":
            return None
        narrowed = [found for item in node.items if (found := narrow(item, table, store)) is not None]
        return min(narrowed, key=len) if narrowed else None
    if isinstance(node, InList) and not node.negate:
        return _lookup(node.prop, node.values, table, store)
    if isinstance(node, Compare) and node.op in ("ge", "gt"):
        return _recent(node, table, store)
    if isinstance(node, Compare) and node.op == "eq":
        for prop, other in ((node.left, node.right), (node.right, node.left)):
            if isinstance(prop, Prop) and isinstance(other, Literal) and other.value is not None:
                return _lookup(prop, (other.value,), table, store)
    return None


def _recent(node: Compare, table: Table, store: Store) -> set[str] | None:
    prop, moment = node.left, node.right
    if not (isinstance(prop, Prop) and prop.path == ("modifiedon",) and isinstance(moment, Literal)):
        return None
    if not isinstance(moment.value, datetime):
        return None
    return store.modified_since(table.logical_name, moment.value)


def _lookup(prop: Prop | Call, values: tuple[object, ...], table: Table, store: Store) -> set[str] | None:
    if not isinstance(prop, Prop) or len(prop.path) != 1:
        return None
    name = prop.path[0]
    logical = table.logical_name
    if name == table.primary_id:
        return {str(v).lower() for v in values if str(v).lower() in store.rows[logical]}
    lookup = table.lookup_by_property(name)
    column = lookup.name if lookup is not None else name
    if not store.indexed(logical, column):
        return None
    return store.find_by_value(logical, column, values)
