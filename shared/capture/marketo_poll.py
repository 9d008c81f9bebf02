"""Marketo change capture: read lead changes and deleted persons since the checkpoint, queue notices.

Marketo has no push for person changes, so a timer polls Get Lead Changes (New Lead and Change
Data Value activities for the mapped fields) and Get Deleted Leads with paging tokens. The order
is what makes it lossless: queue a page's notices, and only after the whole run advance the
checkpoint, conditionally on its etag. A crash in between makes the next run read the same pages
again; the notices carry the same dedup ids (one per person per page, from the activity GUIDs),
so the queue drops the repeats. An overlapping run cannot take the lease, and a run that lost the
lease anyway fails its conditional checkpoint write: either way the checkpoint stays put.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.errors import ConflictError
from shared.mapping import FieldMapping
from shared.marketo.client import Activity, MarketoClient
from shared.notices import Entity, FieldChange, Kind, Notice, Source
from shared.ports import NoticeQueue, StateStore

log = logging.getLogger(__name__)

CHECKPOINT = "marketo-poll"
LEASE = "marketo-poll"
NEW_LEAD = 12
CHANGE_DATA_VALUE = 13
API_SOURCE = "Web service API"


@dataclass(frozen=True)
class PollResult:
    notices: int
    activities: int
    pages: int
    drained: bool
    skipped: str | None = None


@dataclass(frozen=True)
class _Tokens:
    changes: str
    deleted: str

    def dump(self) -> str:
        return json.dumps({"changes": self.changes, "deleted": self.deleted})

    @classmethod
    def load(cls, value: str) -> _Tokens:
        data = json.loads(value)
        return cls(changes=str(data["changes"]), deleted=str(data["deleted"]))


def _attribute(activity: Activity, name: str) -> Any:
    return next((a.get("value") for a in activity.attributes if a.get("name") == name), None)


def _dedup(kind: str, lead_id: int, guids: Iterable[str]) -> str:
    digest = hashlib.sha256("|".join(sorted(guids)).encode()).hexdigest()[:40]
    return f"m{kind[0]}-{lead_id}-{digest}"


def notices_from_changes(activities: Sequence[Activity], mapped: frozenset[str]) -> list[Notice]:
    """One notice per person per page: its mapped field changes merged in activity order."""
    by_lead: dict[int, list[Activity]] = {}
    for activity in activities:
        if activity.activity_type_id in (NEW_LEAD, CHANGE_DATA_VALUE):
            by_lead.setdefault(activity.lead_id, []).append(activity)
    notices = []
    for lead_id, items in by_lead.items():
        changes: dict[str, FieldChange] = {}
        created = any(a.activity_type_id == NEW_LEAD for a in items)
        for activity in items:
            for change in activity.fields:
                name = str(change.get("name", ""))
                if name in mapped:
                    first = changes.get(name)
                    old = first.old if first else change.get("oldValue")
                    changes[name] = FieldChange(old=old, new=change.get("newValue"))
        if not created and not changes:
            continue  # only unmapped fields changed
        last = items[-1]
        notices.append(
            Notice(
                source=Source.MARKETO,
                entity=Entity.PERSON,
                record_id=str(lead_id),
                kind=Kind.CREATED if created else Kind.UPDATED,
                changes=changes,
                version=last.marketo_guid,
                occurred_at=last.activity_date,
                actor=str(_attribute(last, "Source") or "")[:64] or None,
                own_write=all(_attribute(a, "Source") == API_SOURCE for a in items),
                dedup_id=_dedup("changes", lead_id, (a.marketo_guid for a in items)),
            )
        )
    return notices


def notices_from_deletes(activities: Sequence[Activity]) -> list[Notice]:
    return [
        Notice(
            source=Source.MARKETO,
            entity=Entity.PERSON,
            record_id=str(a.lead_id),
            kind=Kind.DELETED,
            version=a.marketo_guid,
            occurred_at=a.activity_date,
            dedup_id=_dedup("deleted", a.lead_id, [a.marketo_guid]),
        )
        for a in activities
    ]


class MarketoPoller:
    """One poll run. ``max_pages`` bounds a run (the rest waits for the next run)."""

    def __init__(
        self,
        marketo: MarketoClient,
        state: StateStore,
        queue: NoticeQueue,
        mapping: FieldMapping,
        *,
        max_pages: int = 50,
        start_at: datetime | None = None,
        lease_seconds: float = 300.0,
    ) -> None:
        self.marketo = marketo
        self.state = state
        self.queue = queue
        self.mapping = mapping
        self.max_pages = max_pages
        self.start_at = start_at
        self.lease_seconds = lease_seconds
        self.mapped = frozenset(f.marketo for e in (mapping.lead, mapping.contact) for f in e.fields)

    def run(self, now: datetime | None = None) -> PollResult:
        owner = uuid.uuid4().hex
        if not self.state.acquire_lease(LEASE, owner, self.lease_seconds):
            return PollResult(0, 0, 0, drained=False, skipped="another poll run holds the lease")
        try:
            return self._run(now or datetime.now(UTC))
        finally:
            self.state.release_lease(LEASE, owner)

    def _run(self, now: datetime) -> PollResult:
        checkpoint = self.state.get_checkpoint(CHECKPOINT)
        if checkpoint is None:
            since = self.start_at or now
            token = self.marketo.get_paging_token(since)
            tokens = _Tokens(token, token)
            try:
                checkpoint = self.state.put_checkpoint(CHECKPOINT, tokens.dump(), etag=None)
            except ConflictError:
                return PollResult(0, 0, 0, drained=False, skipped="checkpoint created by another run")
            if self.start_at is None:
                log.info("first poll: starting from now (%s), not from the beginning", since.isoformat())
                return PollResult(0, 0, 0, drained=True)
        tokens = _Tokens.load(checkpoint.value)
        fields = sorted(self.mapped)
        queued = activities = pages = 0
        changes_token, drained = tokens.changes, False
        while pages < self.max_pages:
            page = self.marketo.get_lead_changes(changes_token, fields)
            pages += 1
            notices = notices_from_changes(page.activities, self.mapped)
            self.queue.send(notices)
            queued, activities = queued + len(notices), activities + len(page.activities)
            changes_token = page.next_page_token or changes_token
            if not page.more_result:
                drained = True
                break
        deleted_token = tokens.deleted
        while pages < self.max_pages:
            page = self.marketo.get_deleted_leads(deleted_token)
            pages += 1
            notices = notices_from_deletes(page.activities)
            self.queue.send(notices)
            queued, activities = queued + len(notices), activities + len(page.activities)
            deleted_token = page.next_page_token or deleted_token
            if not page.more_result:
                break
        else:
            drained = False
        self.state.put_checkpoint(
            CHECKPOINT, _Tokens(changes_token, deleted_token).dump(), etag=checkpoint.etag
        )
        return PollResult(queued, activities, pages, drained=drained)
