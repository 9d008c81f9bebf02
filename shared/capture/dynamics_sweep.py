"""Dynamics catch-up sweep: find leads and contacts changed since the checkpoint, queue notices.

Webhooks are fast but not guaranteed (Dataverse retries a failed call once, then gives up), so a
slower timer repairs whatever they missed. Two modes, per table:

- change tracking (where the table has it on, the default): follow the stored delta link, which
  answers the rows created or changed since (current values) and the ids deleted since. A delta
  link Dataverse no longer accepts (expired after the retention period, by default 7 days)
  restarts tracking, and the rows of that full read modified since the last good sweep (with an
  overlap) are queued: deletions in that gap are the only thing lost, and the worker still
  notices them when it next reads the record.
- ``modifiedon`` otherwise (or when ``use_change_tracking=False``): query the rows modified
  since a watermark, re-reading a small overlap because a row committed late can carry an earlier
  ``modifiedon``. Deletions are not visible in this mode.

Same discipline as the poller: queue first, then advance the checkpoint (conditionally on its
etag), one checkpoint per table. A crash in between repeats the same notices: a changed row's
notice is named by its row version (the same id the webhook gave that change, so the queue drops
whichever comes second), a deletion's by the delta link that reported it. One sweep at a time
(a short lease, renewed while it runs: ``lease``). The first sweep of a table only records
where to start: nothing older is queued.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.capture.lease import LEASE_SECONDS, Lease
from shared.dataverse.client import DataverseClient
from shared.dataverse.odata import ENTITY_SETS
from shared.errors import AccessDeniedError, ConflictError, PermanentError
from shared.mapping import FieldMapping
from shared.notices import (
    Entity,
    FieldChange,
    Kind,
    Notice,
    Source,
    fit_changes,
    linked_marketo_id,
    safe_text,
)
from shared.ports import Checkpoint, NoticeQueue, StateStore

log = logging.getLogger(__name__)

LEASE = "dynamics-sweep"
OVERLAP = timedelta(minutes=2)
CHANGE_TRACKING = "change-tracking"
MODIFIEDON = "modifiedon"


@dataclass(frozen=True)
class SweepResult:
    notices: int
    mode: dict[str, str]
    skipped: str | None = None


def _modified(row: dict[str, Any]) -> datetime | None:
    value = str(row.get("modifiedon") or "")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _lower_id(value: Any) -> str | None:
    try:
        return str(uuid.UUID(str(value))) if value else None
    except ValueError:
        return None


class DynamicsSweep:
    """One sweep run over leads and contacts. ``use_change_tracking``: None follows each table's
    setting, False forces the ``modifiedon`` mode."""

    def __init__(
        self,
        dataverse: DataverseClient,
        state: StateStore,
        queue: NoticeQueue,
        mapping: FieldMapping,
        *,
        sync_user_ids: frozenset[str] = frozenset(),
        lease_seconds: float = LEASE_SECONDS,
        use_change_tracking: bool | None = None,
    ) -> None:
        self.dataverse = dataverse
        self.state = state
        self.queue = queue
        self.mapping = mapping
        self.sync_user_ids = sync_user_ids
        self.lease_seconds = lease_seconds
        self.use_change_tracking = use_change_tracking

    def run(self, now: datetime | None = None) -> SweepResult:
        with Lease(self.state, LEASE, seconds=self.lease_seconds) as lease:
            if not lease.held:
                return SweepResult(0, {}, skipped="another sweep holds the lease")
            moment = now or datetime.now(UTC)
            queued, modes = 0, {}
            for entity in ENTITY_SETS:
                count, modes[entity] = self._sweep(entity, moment)
                queued += count
            return SweepResult(queued, modes)

    def _select(self, entity: str) -> list[str]:
        extra = [f"{entity}id", "modifiedon", "versionnumber", "_modifiedby_value"]
        if entity == "contact":
            extra.append("_originatingleadid_value")
        return sorted(set(self.mapping.dynamics_columns(entity)) | set(extra))

    def _notice(self, entity: str, row: dict[str, Any]) -> Notice:
        actor = _lower_id(row.get("_modifiedby_value"))
        version = str(row.get("versionnumber") or "")
        email = row.get("emailaddress1")
        own = actor is not None and actor in self.sync_user_ids
        changes, trimmed = self._own_values(entity, row) if own else ({}, False)
        return Notice(
            source=Source.DYNAMICS,
            entity=Entity(entity),
            record_id=str(row[f"{entity}id"]),
            kind=Kind.UPDATED,
            # The row version, the same the webhook reports for this change (one dedup id).
            version=version if version.isascii() and version.isdigit() and len(version) <= 64 else None,
            occurred_at=_modified(row) or datetime.now(UTC),
            actor=actor,
            own_write=own,
            changes=changes,
            trimmed=trimmed,
            originating_lead_id=_lower_id(row.get("_originatingleadid_value")),
            linked_to=linked_marketo_id(row.get(self.mapping.links.dynamics_marketo_id)),
            email=safe_text(email) if isinstance(email, str) and len(email) <= 320 else None,
        )

    def _own_values(self, entity: str, row: dict[str, Any]) -> tuple[dict[str, FieldChange], bool]:
        """The row's values of every mapped column, for a row mdsync's own user changed last: the
        worker sets the notice aside as an echo when they all equal the shadow, and reconciles it
        otherwise (a customer's plug-in changed mdsync's value as it was written). mdsync's writes
        bypass its webhook, so this notice is the only one such a write gets. None when a column
        is not in the row as such (a lookup): then the notice is reconciled."""
        names = [
            *(f.dynamics for f in self.mapping.entity(entity).fields),
            self.mapping.links.dynamics_marketo_id,
        ]
        if any(name not in row for name in names):
            return {}, False
        return fit_changes({name: FieldChange(new=row[name]) for name in sorted(set(names))})

    def _sweep(self, entity: str, now: datetime) -> tuple[int, str]:
        name = f"dynamics-sweep:{entity}"
        checkpoint = self.state.get_checkpoint(name)
        tracking = self.use_change_tracking
        if tracking is None:
            tracking = self.dataverse.change_tracking_enabled(entity)
        if tracking:
            return self._delta(entity, name, checkpoint, now), CHANGE_TRACKING
        return self._watermark(entity, name, checkpoint, now), MODIFIEDON

    def _advance(self, name: str, value: dict[str, str], checkpoint: Checkpoint | None) -> bool:
        try:
            self.state.put_checkpoint(name, json.dumps(value), etag=checkpoint.etag if checkpoint else None)
        except ConflictError:
            log.warning("checkpoint %s moved under us; leaving it to the other run", name)
            return False
        return True

    # --- change tracking ------------------------------------------------------------------------

    def _delta(self, entity: str, name: str, checkpoint: Checkpoint | None, now: datetime) -> int:
        stored = json.loads(checkpoint.value) if checkpoint else {}
        link = stored.get("delta_link")
        if not link:
            # First run (or the table was swept by modifiedon so far): start tracking.
            return self._track(entity, name, checkpoint, _last_good(stored), now)
        try:
            page = self.dataverse.follow_delta(link)
        except AccessDeniedError:
            raise
        except PermanentError as exc:
            log.warning("delta link for %s refused (%s); restarting change tracking", entity, exc)
            return self._track(entity, name, checkpoint, _last_good(stored), now)
        notices = [self._notice(entity, row) for row in page.changed]
        # A deletion has no version; the link that reported it names it (the same on a re-run).
        tag = "d-" + hashlib.sha256(link.encode()).hexdigest()[:30]
        notices += [
            Notice(
                source=Source.DYNAMICS,
                entity=Entity(entity),
                record_id=record_id,
                kind=Kind.DELETED,
                version=tag,
                occurred_at=now,
            )
            for record_id in page.deleted
        ]
        self.queue.send(notices)
        self._advance(name, {"delta_link": page.delta_link, "at": now.isoformat()}, checkpoint)
        return len(notices)

    def _track(
        self, entity: str, name: str, checkpoint: Checkpoint | None, since: datetime | None, now: datetime
    ) -> int:
        """Start change tracking: one full read gives the delta link. Rows of it modified since
        the last good sweep (with an overlap) are queued; on a first run nothing is (no flood)."""
        page = self.dataverse.track_changes(ENTITY_SETS[entity], self._select(entity))
        notices = []
        if since is not None:
            cutoff = since - OVERLAP
            notices = [self._notice(entity, r) for r in page.changed if (_modified(r) or now) >= cutoff]
        self.queue.send(notices)
        self._advance(name, {"delta_link": page.delta_link, "at": now.isoformat()}, checkpoint)
        return len(notices)

    # --- modifiedon -----------------------------------------------------------------------------

    def _watermark(self, entity: str, name: str, checkpoint: Checkpoint | None, now: datetime) -> int:
        since = _last_good(json.loads(checkpoint.value)) if checkpoint else None
        if since is None:
            self._advance(name, {"since": now.isoformat()}, checkpoint)
            return 0
        stamp = (since - OVERLAP).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        rows = list(
            self.dataverse.query(
                ENTITY_SETS[entity],
                select=self._select(entity),
                filter=f"modifiedon ge {stamp}",
                orderby="modifiedon asc",
            )
        )
        notices = [self._notice(entity, row) for row in rows]
        self.queue.send(notices)
        newest = max((m for m in (_modified(r) for r in rows) if m is not None), default=since)
        self._advance(name, {"since": max(newest, since).isoformat()}, checkpoint)
        return len(notices)


def _last_good(stored: dict[str, Any]) -> datetime | None:
    """When the table was last swept, from either mode's checkpoint."""
    return _parse_time(stored.get("since")) or _parse_time(stored.get("at"))


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
