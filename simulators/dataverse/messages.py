"""The simulator's own request/response types, independent of Starlette.

Web API calls are dispatched from these plain objects, so ``$batch`` parts, admin calls made
"as a human user" and real HTTP requests all run through the same code.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from simulators.dataverse.engine import Caller
from simulators.dataverse.faults import DataverseFault, payload_error
from simulators.dataverse.representation import parse_prefer
from simulators.dataverse.store import Ref, Transaction


@dataclass
class ApiRequest:
    method: str
    path: str  # decoded resource path after the service root: "leads(…)/Microsoft.Dynamics.CRM.X"
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes
    caller: Caller
    service_root: str  # "https://host:port/api/data/v9.2"
    content_ids: dict[str, Ref] = field(default_factory=dict)
    tx: Transaction | None = None
    in_batch: bool = False

    @property
    def prefer(self) -> dict[str, str]:
        return parse_prefer(self.headers.get("prefer"))

    def json(self, entity_set: str) -> Any:
        if not self.body:
            raise payload_error(entity_set, "The request body is empty.")
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise payload_error(entity_set, f"Invalid JSON. {exc}") from exc


@dataclass
class ApiResponse:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @classmethod
    def json(cls, status: int, data: Any, headers: dict[str, str] | None = None) -> ApiResponse:
        return cls(
            status,
            {"Content-Type": "application/json; odata.metadata=minimal", **(headers or {})},
            json.dumps(data, ensure_ascii=False).encode("utf-8"),
        )

    @classmethod
    def fault(cls, fault: DataverseFault, *, annotations: bool = False) -> ApiResponse:
        return cls.json(fault.status, fault.envelope(annotations=annotations), fault.headers)

    def data(self) -> Any:
        return json.loads(self.body) if self.body else None


def request_id() -> str:
    return str(uuid.uuid4())
