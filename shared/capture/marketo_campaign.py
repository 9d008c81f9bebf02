"""Marketo change capture in seconds: a trigger campaign's Call Webhook becomes a notice.

A Marketo trigger campaign ("Data Value Changes" on the mapped fields, "Person is Created")
whose flow is one Call Webhook step calls mdsync's ``marketo_change`` endpoint, which queues a
notice the way the Dataverse webhook does: no Marketo REST call, so no rate or quota is spent
(docs/marketo-setup.md says how to set it up). The poller stays: Marketo does not retry a failed
webhook call, a campaign may be deactivated or its smart list miss a field, and the poller reads
every change anyway (its notice of a change the campaign brought is reconciled with a read; a
campaign call for a change the poller brought first repeats the shadow and is set aside,
``shared.sync.grouping``).

The webhook's template sends the person's id and, with lead tokens, the mapped fields' values
**as they were when the campaign ran**, not old -> new (Marketo has no old-value token for the
lead's fields). The notice carries them as changes with no old value and is marked
``snapshot``: planning never treats their missing old values as evidence about a write.

Only mapped fields are kept (a template may send more); a value the notice cannot carry is left
out and the notice marked ``trimmed`` (``fit_changes``), so the worker reads the person.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from shared.errors import BadRequestError
from shared.notices import Entity, FieldChange, FieldValue, Kind, Notice, Source, fit_changes

EVENTS = {"changed": Kind.UPDATED, "updated": Kind.UPDATED, "created": Kind.CREATED}
ACTOR = "Marketo campaign"


def webhook_template(display_names: Mapping[str, str], mapped: frozenset[str]) -> str:
    """The Call Webhook template (Request Token Encoding: JSON) for the mapped fields:
    ``display_names`` is REST name -> display name (Describe Lead), which lead tokens use. With
    JSON encoding Marketo quotes string tokens itself, so the template does not."""
    values = ", ".join(
        f"{json.dumps(name)}: {{{{lead.{display_names[name]}}}}}"
        for name in sorted(mapped)
        if name in display_names
    )
    return f'{{"marketoId": {{{{lead.Id}}}}, "values": {{{values}}}}}'


def _value(name: str, raw: Any) -> FieldValue:
    if raw is None or isinstance(raw, str | bool | int):
        return raw
    if isinstance(raw, float) and math.isfinite(raw):
        return raw
    raise BadRequestError(f"values.{name[:64]} must be a string, number, boolean or null")


def _values(raw: Any, mapped: frozenset[str]) -> dict[str, FieldChange]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise BadRequestError('values must be a JSON object of field name -> value ({"title": ...})')
    return {str(k): FieldChange(new=_value(str(k), v)) for k, v in raw.items() if str(k) in mapped}


def campaign_notice(
    marketo_id: int, fields: Mapping[str, Any], *, mapped: frozenset[str], received_at: datetime
) -> Notice:
    """The notice for one campaign call; BadRequestError (400) for a body that is not one."""
    event = str(fields.get("event") or "changed").strip().lower()
    kind = EVENTS.get(event)
    if kind is None:
        raise BadRequestError(f"event must be one of {sorted(EVENTS)}, got {event[:40]!r}")
    changes, cut = fit_changes(_values(fields.get("values"), mapped))
    return Notice(
        source=Source.MARKETO,
        entity=Entity.PERSON,
        record_id=str(marketo_id),
        kind=kind,
        changes=changes,
        occurred_at=received_at,
        actor=ACTOR,
        snapshot=True,
        trimmed=cut,
        # Marketo never calls a webhook twice for one run: each call is its own notice (a
        # second call with the same values is a later change, never a duplicate to drop).
        dedup_id=f"mc-{marketo_id}-{uuid.uuid4().hex}",
    )
