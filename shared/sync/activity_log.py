"""Failures a marketer can see: a custom activity on the person's Activity Log in Marketo.

The "Microsoft Sync Failed" activity type is created (draft, attributes, approve) on first use
if the instance does not have it yet, and its id is cached for the process.

One person's failure never keeps the others off their Activity Logs: text is made sendable
(bounded, UTF-8 safe) before the call, a call refused for its content is split until the
refused activity stands alone (``split``), and what Marketo did not take comes back to the
caller, with why, for the sync log.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.marketo.client import MarketoClient
from shared.marketo.filters import MAX_ID
from shared.marketo.models import CustomActivityResult, CustomActivityTypeSpec
from shared.notices import safe_text
from shared.sync.split import Refusal, first_failure, per_item, send_split

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
            "primaryAttributeValue": safe_text(self.entity),
            "attributes": [
                {"apiName": "errorCode", "value": safe_text(self.code[:255])},
                {"apiName": "errorMessage", "value": safe_text(self.message[:MAX_MESSAGE])},
                {"apiName": "fields", "value": safe_text(", ".join(self.fields)[:255])},
                {"apiName": "direction", "value": self.direction},
                {"apiName": "dynamicsId", "value": safe_text((self.dynamics_id or "")[:255])},
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

    def record(self, failures: list[Failure]) -> list[tuple[Failure, str]]:
        """Add the failures to their persons' Activity Logs; returns those Marketo did not take,
        with why. Raises when the call failed for another reason than one activity's content."""
        if not failures:
            return []
        type_id = self.type_id()
        not_taken = [(f, "not a Marketo person id") for f in failures if not 0 < f.marketo_id <= MAX_ID]
        sendable = [f for f in failures if 0 < f.marketo_id <= MAX_ID]

        def add(chunk: list[Failure]) -> list[CustomActivityResult]:
            return self.marketo.add_custom_activities([f.activity(type_id) for f in chunk])

        pieces = send_split(sendable, add)
        failure = first_failure(pieces)
        if failure is not None:
            raise failure
        for piece in pieces:
            if piece.error is not None:
                not_taken += [(item, Refusal.of(piece.error).reason) for item in piece.items]
                continue
            for item, result in zip(piece.items, per_item(piece.answer or [], piece.items), strict=True):
                if result is None or result.status != "added":
                    reasons = "; ".join(f"{r.code} {r.message}" for r in result.reasons) if result else ""
                    not_taken.append((item, f"skipped by Marketo: {reasons or 'no answer'}"))
        return not_taken
