"""Failures a marketer can see: a custom activity on the person's Activity Log in Marketo.

The "Microsoft Sync Failed" activity type is created (draft, attributes, approve) on first use
if the instance does not have it yet, and its id is cached for the process.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.marketo.client import MarketoClient
from shared.marketo.models import CustomActivityTypeSpec

FAILURE_TYPE = CustomActivityTypeSpec(
    api_name="mdsyncMicrosoftSyncFailed",
    name="Microsoft Sync Failed",
    description="mdsync could not write this person to Microsoft Dynamics 365",
    trigger_name="Microsoft Sync Fails",
    filter_name="Microsoft Sync Failed",
    primary_attribute=("dynamicsEntity", "Dynamics Entity"),
    attributes=(
        ("errorCode", "Error Code", "string"),
        ("errorMessage", "Error Message", "text"),
        ("fields", "Fields", "string"),
        ("direction", "Direction", "string"),
        ("dynamicsId", "Dynamics Id", "string"),
    ),
)
MAX_MESSAGE = 2000


@dataclass(frozen=True)
class Failure:
    """One write that Dynamics (or our pre-check) refused, for one person."""

    marketo_id: int
    entity: str
    dynamics_id: str | None
    code: str
    message: str
    fields: tuple[str, ...] = ()
    direction: str = "to_dynamics"
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def activity(self, type_id: int) -> dict[str, Any]:
        return {
            "leadId": self.marketo_id,
            "activityDate": self.at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "activityTypeId": type_id,
            "primaryAttributeValue": self.entity,
            "attributes": [
                {"apiName": "errorCode", "value": self.code},
                {"apiName": "errorMessage", "value": self.message[:MAX_MESSAGE]},
                {"apiName": "fields", "value": ", ".join(self.fields)[:255]},
                {"apiName": "direction", "value": self.direction},
                {"apiName": "dynamicsId", "value": self.dynamics_id or ""},
            ],
        }


class ActivityLog:
    """Writes failures to persons' Activity Logs, up to 300 per Marketo call."""

    def __init__(self, marketo: MarketoClient) -> None:
        self.marketo = marketo
        self._type_id: int | None = None
        self._lock = threading.Lock()

    def type_id(self) -> int:
        with self._lock:
            if self._type_id is None:
                self._type_id = self.marketo.ensure_custom_activity_type(FAILURE_TYPE)
            return self._type_id

    def record(self, failures: list[Failure]) -> None:
        if failures:
            type_id = self.type_id()
            self.marketo.add_custom_activities([f.activity(type_id) for f in failures])
