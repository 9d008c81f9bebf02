"""Marketo change capture: read lead changes, merges and deleted persons since the checkpoint,
queue notices.

Marketo has no push for person changes, so a timer polls Get Lead Changes (New Lead and Change
Data Value activities for the mapped fields), Get Lead Activities for Merge Leads (32) and Get
Deleted Leads with paging tokens.

Changes are grouped per person and per writer: the changes made through the REST API (mdsync's
own writes, most likely) make a notice of their own, apart from a user's or a campaign's, and
report for each field the value it held just before the last write to it. The echo of a write
then tells whether someone changed the field between mdsync's read and its write
(``shared.reconcile``).

Merges: a Merge Leads activity (on the winner, "Merge IDs" naming the losers) becomes a
``merged`` notice per loser, naming the winner; the worker moves the loser's link to the winner
(``shared.sync.merges``). Get Deleted Leads may also report the losers; a deletion of a person
the same run saw merged away is not queued as a deletion.

Lossless by order. A run queues each page's notices as it reads them and writes the checkpoint
(both paging tokens) once, at the end, conditionally on the etag it read. A crash in between
leaves the old checkpoint: the next run reads the same pages again, and their notices carry the
same dedup ids (one notice per person per page, its id made of the page's activity GUIDs for that
person), so the queue drops the repeats. Pages are read until Marketo says there is no more or
the run's page budget is spent (the rest waits for the next run); the deleted-persons read always
gets at least one page, so a busy change feed cannot starve it.

Deletions and merges are read at most every ``deletes_every`` seconds
(MARKETO_DELETES_POLL_SECONDS), not on every run: they only move or drop links, and the worker
holds a person that is gone until one of them is reported, while two calls on every run of a
short schedule would spend a sizeable part of the daily quota (every 10 s: 17,280 calls a day)
on feeds that are nearly always empty. A run's pages: the change feed gets what the other two
do not need, and each of them gets at least one page when it is due.

One run at a time. A run takes a short lease, renewed while it goes on (``lease``); an
overlapping run finds it held and does nothing, and a crashed run's lease is taken back by the
restarted host at once (or lapses within 30 s). A run that lost its lease anyway fails its
conditional checkpoint write and leaves the checkpoint to the run that moved it. The first run
ever only records where to start (now, or ``start_at``): history before it is not replayed.

Own writes are a hint, never a decision. Marketo records the Source "Web service API" on every
change made through the REST API, by mdsync or by any other integration, so a notice whose
activities all carry it is marked ``own_write`` but may well be another integration's real
change. The worker therefore skips such a notice only when every value it reports already
equals the shadow (the values mdsync last synced). Then, whoever wrote them, Marketo holds for
those fields what the shadow holds, and reconciling would write nothing for them either; a
change on the Dynamics side has its own notice (or the sweep's). Any other own-write notice is
reconciled like every notice. Marking nothing own-write would give the same end state, with
more reads.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.capture.lease import LEASE_SECONDS, Lease
from shared.errors import ConflictError
from shared.mapping import FieldMapping
from shared.marketo.client import MarketoClient
from shared.marketo.models import Activity, ActivityPage
from shared.notices import Entity, FieldChange, FieldValue, Kind, Notice, Source, fit_changes, safe_text
from shared.ports import Checkpoint, NoticeQueue, StateStore

log = logging.getLogger(__name__)

CHECKPOINT = "marketo-poll"
LEASE = "marketo-poll"
NEW_LEAD = 12
CHANGE_DATA_VALUE = 13
MERGE_LEADS = 32
API_SOURCE = "Web service API"
_IDS = re.compile(r"\d+")
MAX_VERSION = 64  # Notice.version


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
    # When the deletions (and merges) were last read; None: never (read them on the next run).
    deleted_read_at: datetime | None = None
    # Where the merges feed got to; None in checkpoints written before it was read.
    merges: str | None = None

    def dump(self) -> str:
        read_at = self.deleted_read_at.isoformat() if self.deleted_read_at else None
        return json.dumps(
            {
                "changes": self.changes,
                "deleted": self.deleted,
                "deleted_read_at": read_at,
                "merges": self.merges,
            }
        )

    @classmethod
    def load(cls, value: str) -> _Tokens:
        data = json.loads(value)
        read_at = data.get("deleted_read_at")  # absent in checkpoints written before it existed
        merges = data.get("merges")
        return cls(
            changes=str(data["changes"]),
            deleted=str(data["deleted"]),
            deleted_read_at=datetime.fromisoformat(read_at) if read_at else None,
            merges=str(merges) if merges else None,
        )

    def deletes_due(self, now: datetime, every: timedelta) -> bool:
        return self.deleted_read_at is None or now - self.deleted_read_at >= every


@dataclass
class _Feed:
    """Where one activity feed got to in this run."""

    token: str
    pages: int = 0
    notices: int = 0
    activities: int = 0
    drained: bool = False


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:40]


def _dedup(kind: str, lead_id: int, guids: Iterable[str]) -> str:
    return f"m{kind[0]}-{lead_id}-{_digest('|'.join(sorted(guids)))}"


def _version(guid: str) -> str:
    """The activity GUID, or a digest of it if a notice cannot carry it as it is."""
    return guid if len(guid) <= MAX_VERSION and safe_text(guid) == guid else "h-" + _digest(guid)


def _value(raw: Any) -> FieldValue:
    """A change value as a notice carries it (Marketo sends strings; anything else is shown)."""
    if raw is None or isinstance(raw, bool | int):
        return raw
    if isinstance(raw, str):
        return raw  # fit_changes bounds it and makes it UTF-8 safe
    if isinstance(raw, float):
        return raw if math.isfinite(raw) else str(raw)
    return json.dumps(raw, sort_keys=True, default=str)


def _merged_changes(
    items: Sequence[Activity], mapped: frozenset[str], *, last_old: bool = False
) -> dict[str, FieldChange]:
    """Per mapped field: the first old value (``last_old``: the old value of the last change)
    and the last new value, in activity order."""
    changes: dict[str, FieldChange] = {}
    for activity in items:
        for change in activity.fields:
            name = str(change.get("name", ""))
            if name in mapped:
                first = changes.get(name)
                old = first.old if first and not last_old else _value(change.get("oldValue"))
                changes[name] = FieldChange(old=old, new=_value(change.get("newValue")))
    return changes


def _from_api(activity: Activity) -> bool:
    return bool(activity.attribute("Source") == API_SOURCE)


def notices_from_changes(activities: Sequence[Activity], mapped: frozenset[str]) -> list[Notice]:
    """One notice per person per page and per writer (the REST API, or anyone else): its mapped
    field changes merged in activity order."""
    groups: dict[tuple[int, bool], list[Activity]] = {}
    for activity in activities:
        if activity.activity_type_id in (NEW_LEAD, CHANGE_DATA_VALUE):
            groups.setdefault((activity.lead_id, _from_api(activity)), []).append(activity)
    notices = []
    for (lead_id, from_api), items in groups.items():
        created = any(a.activity_type_id == NEW_LEAD for a in items)
        # An API notice reports what each field held just before the last write to it: what
        # mdsync's unconfirmed write is checked against (several of its writes may share a page).
        changes, cut = fit_changes(_merged_changes(items, mapped, last_old=from_api))
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
                version=_version(last.marketo_guid),
                occurred_at=last.activity_date,
                actor=safe_text(str(last.attribute("Source") or "")[:64]) or None,
                own_write=from_api,
                trimmed=cut,
                dedup_id=_dedup("changes", lead_id, (a.marketo_guid for a in items)),
            )
        )
    return notices


def merged_away(activity: Activity) -> list[int]:
    """The losers of a Merge Leads activity (recorded on the winner): its "Merge IDs"."""
    raw = activity.attribute("Merge IDs")
    text = json.dumps(raw) if not isinstance(raw, str) else raw
    return [int(i) for i in dict.fromkeys(_IDS.findall(text)) if int(i) != activity.lead_id]


def notices_from_merges(activities: Sequence[Activity]) -> list[Notice]:
    """A ``merged`` notice per loser, naming the winner."""
    return [
        Notice(
            source=Source.MARKETO,
            entity=Entity.PERSON,
            record_id=str(loser),
            kind=Kind.MERGED,
            merged_into=str(a.lead_id),
            version=_version(a.marketo_guid),
            occurred_at=a.activity_date,
            dedup_id=_dedup("merged", loser, [a.marketo_guid]),
        )
        for a in activities
        if a.activity_type_id == MERGE_LEADS
        for loser in merged_away(a)
    ]


def notices_from_deletes(activities: Sequence[Activity], merged: Collection[int] = ()) -> list[Notice]:
    """A ``deleted`` notice per deleted person, but for those ``merged`` away (their merge says more)."""
    return [
        Notice(
            source=Source.MARKETO,
            entity=Entity.PERSON,
            record_id=str(a.lead_id),
            kind=Kind.DELETED,
            version=_version(a.marketo_guid),
            occurred_at=a.activity_date,
            dedup_id=_dedup("deleted", a.lead_id, [a.marketo_guid]),
        )
        for a in activities
        if a.lead_id not in merged
    ]


class MarketoPoller:
    """One poll run. ``max_pages`` bounds a run (the rest waits for the next run); ``start_at``
    is where the very first run starts reading (default: now, nothing older)."""

    def __init__(
        self,
        marketo: MarketoClient,
        state: StateStore,
        queue: NoticeQueue,
        mapping: FieldMapping,
        *,
        max_pages: int = 50,
        start_at: datetime | None = None,
        lease_seconds: float = LEASE_SECONDS,
        deletes_every: timedelta = timedelta(0),
    ) -> None:
        if max_pages < 3:
            raise ValueError("max_pages must be at least 3 (one each for changes, merges and deletions)")
        self.marketo = marketo
        self.state = state
        self.queue = queue
        self.mapping = mapping
        self.max_pages = max_pages
        self.start_at = start_at
        self.lease_seconds = lease_seconds
        self.deletes_every = deletes_every
        self.mapped = frozenset(f.marketo for e in (mapping.lead, mapping.contact) for f in e.fields)

    def run(self, now: datetime | None = None) -> PollResult:
        with Lease(self.state, LEASE, seconds=self.lease_seconds) as lease:
            if not lease.held:
                return PollResult(0, 0, 0, drained=False, skipped="another poll run holds the lease")
            return self._run(now or datetime.now(UTC))

    def _start(self, now: datetime) -> Checkpoint | PollResult:
        """The first run: record where reading starts."""
        since = self.start_at or now
        token = self.marketo.get_paging_token(since)
        try:
            checkpoint = self.state.put_checkpoint(
                CHECKPOINT, _Tokens(token, token, merges=token).dump(), etag=None
            )
        except ConflictError:
            return PollResult(0, 0, 0, drained=False, skipped="checkpoint created by another run")
        if self.start_at is None:
            log.info("first poll: starting from now (%s), not from the beginning", since.isoformat())
            return PollResult(0, 0, 0, drained=True)
        return checkpoint

    def _run(self, now: datetime) -> PollResult:
        checkpoint = self.state.get_checkpoint(CHECKPOINT)
        if checkpoint is None:
            started = self._start(now)
            if isinstance(started, PollResult):
                return started
            checkpoint = started
        tokens = _Tokens.load(checkpoint.value)
        fields = sorted(self.mapped)
        due = tokens.deletes_due(now, self.deletes_every)
        changes = self._drain(
            tokens.changes,
            self.max_pages - (2 if due else 0),
            lambda token: self.marketo.get_lead_changes(token, fields),
            lambda page: notices_from_changes(page.activities, self.mapped),
        )
        deleted_read_at: datetime | None
        merges_token = tokens.merges
        if due:
            if merges_token is None:  # a checkpoint from before merges were read
                merges_token = self.marketo.get_paging_token(tokens.deleted_read_at or now)
            merges, deletes = self._merges_and_deletions(merges_token, tokens.deleted, changes.pages)
            merges_token, deleted_read_at = merges.token, now
        else:
            merges = _Feed(merges_token or "", drained=True)
            deletes, deleted_read_at = _Feed(tokens.deleted, drained=True), tokens.deleted_read_at
        moved = _Tokens(changes.token, deletes.token, deleted_read_at, merges_token)
        feeds = (changes, merges, deletes)
        notices = sum(f.notices for f in feeds)
        activities = sum(f.activities for f in feeds)
        pages = sum(f.pages for f in feeds)
        try:
            self.state.put_checkpoint(CHECKPOINT, moved.dump(), etag=checkpoint.etag)
        except ConflictError:
            # Another run moved it (this one outlived its lease): what we queued is harmless.
            log.warning("poll checkpoint moved under this run; leaving it to the other run")
            return PollResult(
                notices, activities, pages, drained=False, skipped="the checkpoint was moved by another run"
            )
        return PollResult(notices, activities, pages, drained=all(f.drained for f in feeds))

    def _merges_and_deletions(self, merges_token: str, deleted_token: str, used: int) -> tuple[_Feed, _Feed]:
        """Merges first, then deletions; a deletion of a person not known merged away reads the
        merges feed on before it is queued: a merge made while this run read the deletions has
        its Merge Leads activity recorded before its losers' deletions, so the loser is then
        known, and queued as merged, not deleted."""
        losers: set[int] = set()
        merges = _Feed(merges_token)
        budget = self.max_pages - used - 1

        def read_merges() -> None:
            more = self._drain(
                merges.token,
                budget - merges.pages,
                lambda token: self.marketo.get_lead_activities(token, [MERGE_LEADS]),
                lambda page: _noting(notices_from_merges(page.activities), losers),
            )
            merges.token, merges.drained = more.token, more.drained
            merges.pages, merges.notices, merges.activities = (
                merges.pages + more.pages,
                merges.notices + more.notices,
                merges.activities + more.activities,
            )

        def deletions(page: ActivityPage) -> list[Notice]:
            if any(a.lead_id not in losers for a in page.activities):
                read_merges()
            return notices_from_deletes(page.activities, losers)

        read_merges()
        deletes = self._drain(
            deleted_token, self.max_pages - used - merges.pages, self.marketo.get_deleted_leads, deletions
        )
        return merges, deletes

    def _drain(
        self,
        token: str,
        budget: int,
        read: Callable[[str], ActivityPage],
        to_notices: Callable[[ActivityPage], list[Notice]],
    ) -> _Feed:
        """Read one activity feed from ``token`` for up to ``budget`` pages, queueing each page."""
        feed = _Feed(token)
        while feed.pages < max(budget, 1):
            page = read(feed.token)
            notices = to_notices(page)
            self.queue.send(notices)
            feed.pages += 1
            feed.notices += len(notices)
            feed.activities += len(page.activities)
            feed.token = page.next_page_token or feed.token
            if not page.more_result:
                feed.drained = True
                break
        return feed


def _noting(notices: list[Notice], losers: set[int]) -> list[Notice]:
    losers.update(int(n.record_id) for n in notices)
    return notices
