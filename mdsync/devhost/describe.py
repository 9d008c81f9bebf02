"""The table of functions the host prints at start-up (Core Tools prints a similar list)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.table import Table


@dataclass(frozen=True)
class FunctionRow:
    """One function: ``trigger`` is ``http``, ``timer``, ``serviceBus`` or the raw type;
    ``target`` is the URL template, the schedule or the queue; ``details`` the rest."""

    name: str
    trigger: str
    target: str
    details: str


COLUMNS = ("Function", "Trigger", "Target", "Details")


def as_rich_table(rows: Sequence[FunctionRow], *, title: str = "Functions") -> Table:
    table = Table(title=title)
    for column in COLUMNS:
        table.add_column(column)
    for row in rows:
        table.add_row(row.name, row.trigger, row.target, row.details)
    return table
