"""Dynamics catch-up sweep: find leads and contacts changed since the checkpoint, queue notices.

Webhooks are fast but not guaranteed (Dataverse retries a failed call once, then gives up), so a
slower timer repairs whatever they missed. Where the table has change tracking the sweep follows
its delta link (which also reports deletions); otherwise it queries ``modifiedon`` since a
watermark, re-reading a small overlap because rows committed late can carry an earlier
``modifiedon``. Same discipline as the poller: queue first, then advance the checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.dataverse.client import DataverseClient
from shared.errors import ConflictError
from shared.mapping import FieldMapping
from shared.notices import Entity, Kind, Notice, Source
from shared.ports import Checkpoint, NoticeQueue, StateStore

log = logging.getLogger(__name__)

ENTITY_SETS = {"lead": "leads", "contact": "contacts"}
LEASE = "dynamics-sweep"
OVERLAP = timedelta(minutes=2)


@dataclass(frozen=True)
class SweepResult:
    notices: int
    mode: dict[str, str]
    skipped: str | None = None


def _modified(row: dict[str, Any]) -> datetime:
    value = str(row.get("modifiedon") or "")
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return datetime.now(UTC)


class DynamicsSweep:
    def __init__(
        self,
        dataverse: DataverseClient,
        state: StateStore,
        queue: NoticeQueue,
        mapping: FieldMapping,
        *,
        sync_user_ids: frozenset[str] = frozenset(),
        lease_seconds: float = 900.0,
    ) -> None:
        self.dataverse = dataverse
        self.state = state
        self.queue = queue
        self.mapping = mapping
        self.sync_user_ids = sync_user_ids
        self.lease_seconds = lease_seconds

    def run(self, now: datetime | None = None) -> SweepResult:
        owner = uuid.uuid4().hex
        if not self.state.acquire_lease(LEASE, owner, self.lease_seconds):
            return SweepResult(0, {}, skipped="another sweep holds the lease")
        try:
            moment = now or datetime.now(UTC)
            queued, modes = 0, {}
            for entity in ENTITY_SETS:
                count, modes[entity] = self._sweep(entity, moment)
                queued += count
            return SweepResult(queued, modes)
        finally:
            self.state.release_lease(LEASE, owner)

    def _select(self, entity: str) -> list[str]:
        extra = ["modifiedon", "versionnumber", "_modifiedby_value"]
        if entity == "contact":
            extra.append("_originatingleadid_value")
        return sorted(set(self.mapping.dynamics_columns(entity)) | set(extra))

    def _notice(self, entity: str, row: dict[str, Any], kind: Kind = Kind.UPDATED) -> Notice:
        key = f"{entity}id"
        actor = str(row.get("_modifiedby_value") or "").lower() or None
        version = row.get("versionnumber")
        return Notice(
            source=Source.DYNAMICS,
            entity=Entity(entity),
            record_id=str(row[key]),
            kind=kind,
            version=str(version) if version is not None else None,
            occurred_at=_modified(row),
            actor=actor,
            own_write=actor is not None and actor in self.sync_user_ids,
            email=row.get("emailaddress1") if isinstance(row.get("emailaddress1"), str) else None,
        )

    def _sweep(self, entity: str, now: datetime) -> tuple[int, str]:
        name = f"dynamics-sweep:{entity}"
        checkpoint = self.state.get_checkpoint(name)
        if self.dataverse.change_tracking_enabled(entity):
            return self._delta(entity, name, checkpoint), "change-tracking"
        return self._watermark(entity, name, checkpoint, now), "modifiedon"

    def _advance(self, name: str, value: dict[str, str], checkpoint: Checkpoint | None) -> bool:
        try:
            self.state.put_checkpoint(name, json.dumps(value), etag=checkpoint.etag if checkpoint else None)
        except ConflictError:
            log.warning("checkpoint %s moved under us; leaving it to the other run", name)
            return False
        return True

    def _delta(self, entity: str, name: str, checkpoint: Checkpoint | None) -> int:
        stored = json.loads(checkpoint.value) if checkpoint else {}
        link = stored.get("delta_link")
        if not link:
            # First run: take the current state as the starting point, queue nothing (no flood).
            page = self.dataverse.track_changes(ENTITY_SETS[entity], [f"{entity}id"])
            self._advance(name, {"delta_link": page.delta_link}, checkpoint)
            return 0
        page = self.dataverse.follow_delta(link)
        notices = [self._notice(entity, row) for row in page.changed]
        notices += [
            Notice(
                source=Source.DYNAMICS,
                entity=Entity(entity),
                record_id=record_id,
                kind=Kind.DELETED,
                version="d-" + hashlib.sha256(link.encode()).hexdigest()[:30],
                occurred_at=datetime.now(UTC),
            )
            for record_id in page.deleted
        ]
        self.queue.send(notices)
        self._advance(name, {"delta_link": page.delta_link}, checkpoint)
        return len(notices)

    def _watermark(self, entity: str, name: str, checkpoint: Checkpoint | None, now: datetime) -> int:
        if checkpoint is None:
            self._advance(name, {"since": now.isoformat()}, None)
            return 0
        since = datetime.fromisoformat(json.loads(checkpoint.value)["since"])
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
        newest = max((_modified(r) for r in rows), default=since)
        self._advance(name, {"since": max(newest, since).isoformat()}, checkpoint)
        return len(notices)
