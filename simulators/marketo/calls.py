"""A REST call as the handlers see it: merged parameters (query, or the form body of a
``_method=GET`` POST), the parsed JSON body, and the path parameters."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from simulators.marketo.faults import MarketoFault


@dataclass
class RestCall:
    params: dict[str, list[str]] = field(default_factory=dict)
    body: Any = None
    path_params: dict[str, str] = field(default_factory=dict)
    # A multipart/form-data body (Bulk Lead Import): its fields and its files.
    form: dict[str, str] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names

    def values(self, name: str) -> list[str]:
        """A list parameter, as comma-separated text and/or repeated keys."""
        out: list[str] = []
        for raw in self.params.get(name, []):
            out.extend(v.strip() for v in raw.split(",") if v.strip())
        return out

    def first(self, name: str) -> str | None:
        found = self.params.get(name)
        return found[0] if found else None

    def required(self, name: str) -> str:
        value = self.first(name)
        if value is None or not value.strip():
            raise MarketoFault("701", f"{name} cannot be blank")
        return value

    def batch_size(self, maximum: int) -> int:
        raw = self.first("batchSize")
        if raw is None:
            return maximum
        try:
            size = int(raw)
        except ValueError:
            raise MarketoFault("1003", f"Invalid batchSize '{raw}'") from None
        if not 1 <= size <= maximum:
            raise MarketoFault("1003", f"batchSize must be between 1 and {maximum}")
        return size

    def int_list(self, name: str, maximum: int) -> list[int]:
        raw = self.values(name)
        if len(raw) > maximum:
            raise MarketoFault("1003", f"Too many values in '{name}', maximum {maximum}")
        try:
            return [int(v) for v in raw]
        except ValueError:
            raise MarketoFault("1003", f"Invalid value in '{name}'") from None

    def input_list(self, maximum: int) -> list[Any]:
        body = self.body if isinstance(self.body, dict) else {}
        items = body.get("input")
        if not isinstance(items, list) or not items:
            raise MarketoFault("701", "input cannot be blank")
        if len(items) > maximum:
            raise MarketoFault("1003", f"Too many records in input, maximum {maximum}")
        return items
