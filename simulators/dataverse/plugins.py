"""Customer business rules, emulated as synchronous plug-ins (pre-operation).

A real org rejects writes through plug-ins and real-time workflows that throw
InvalidPluginExecutionException; the Web API answers 400 with code IsvAborted (0x80040265) and
the plug-in's own message. Others change the Target before it is written (``upper``: a
plug-in that normalises a column). Each rule here is configured per table and message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from simulators.dataverse.faults import ISV_ABORTED, DataverseFault
from simulators.dataverse.store import Row

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
KINDS = ("required", "email", "regex", "reject", "upper")


@dataclass(frozen=True)
class PluginRule:
    """``required``: the column must have a value; ``email``: if set, it must look like an
    address; ``regex``: if set, it must match ``pattern``; ``reject``: abort whenever the column
    is written (or every write when ``column`` is empty); ``upper``: a text value written to the
    column is stored in upper case."""

    name: str
    entity: str
    kind: str
    message: str
    column: str = ""
    pattern: str = ""
    messages: tuple[str, ...] = ("Create", "Update")

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PluginRule:
        kind = str(data.get("kind", ""))
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        rule = cls(
            name=str(data["name"]),
            entity=str(data["entity"]),
            kind=kind,
            message=str(data.get("message") or f"Business rule {data['name']} failed."),
            column=str(data.get("column") or ""),
            pattern=str(data.get("pattern") or ""),
            messages=tuple(data.get("messages") or ("Create", "Update")),
        )
        if kind != "reject" and not rule.column:
            raise ValueError(f"a '{kind}' rule needs a column")
        if kind == "regex":
            re.compile(rule.pattern)
        return rule

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "entity": self.entity,
            "kind": self.kind,
            "message": self.message,
            "column": self.column,
            "pattern": self.pattern,
            "messages": list(self.messages),
        }

    def check(self, message: str, row: Row, submitted: tuple[str, ...]) -> None:
        if message not in self.messages:
            return
        touched = message == "Create" or not self.column or self.column in submitted
        if not touched:
            return
        value = row.get(self.column) if self.column else None
        if self.kind == "upper":
            if isinstance(value, str):
                row[self.column] = value.upper()
            return
        if self._fails(value):
            raise DataverseFault(400, ISV_ABORTED, self.message)

    def _fails(self, value: Any) -> bool:
        if self.kind == "reject":
            return True
        if self.kind == "required":
            return value is None or (isinstance(value, str) and not value.strip())
        if value is None or value == "":
            return False
        if self.kind == "email":
            return not _EMAIL.match(str(value))
        return re.fullmatch(self.pattern, str(value)) is None
