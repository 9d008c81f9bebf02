"""Read both sides of every person in the batch, in bulk, and follow qualifications and merges.

Dynamics first (rows by id, 250 ids a query), because a lead that reads back qualified moves its
person to the contact it became, a new contact that originates from a linked lead is that
person's contact, and a record merged into another (``masterid``) moves its person to the
master: all decide which Dynamics record a person is linked to. A relink is a first link of a
new pair: the first-link rule decides its values, never the shadow of the record before (a
field the contact does not carry is not "cleared in Dynamics"). Then the persons merged away in
Marketo follow their winner (``merges``), and Marketo is read (persons by id, 300 a call) for
every person the batch now concerns, but those whose notices carry Marketo's side where that
is safe (``carried``: no read for them).

Loading is the last phase that changes a pair (its link, its sides, its shadow). What it decides
it returns (:class:`~shared.sync.batch.Loaded`): the pairs a qualification or merge linked anew
(a first link), and the pairs it settled (held, unlinked or refused), which planning keeps.

A record a read could not ask for (an id that is not one, or refused alone when the call was
split) is taken out of the batch, reported and its notices parked (``split.refuse``): left in,
it would read as deleted on that side.

Vanished persons: linked persons missing from Marketo's answer (:func:`hold_vanished`). A read
by id answers nothing for a person that was deleted, merged into another one, or that the API
user can no longer see (its role, workspace or partition changed). Only the first two may drop a
link, and Marketo reports them: Get Deleted Leads (a ``deleted`` notice) and the Merge Leads
activity (a ``merged`` notice, followed in ``merges``). So a missing person is unlinked only when
one of its notices confirms the deletion; otherwise its notices are tried again after the poller
has had time to read the deletions (MARKETO_DELETES_POLL_SECONDS), and parked, link kept, if no
deletion or merge is ever reported. Many persons disappearing at once without a deletion
reported is the signature of an access change: it is logged as an error, and nothing is
unlinked.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from shared import telemetry
from shared.errors import ServiceUnavailableError
from shared.mapping import FieldMapping
from shared.notices import Kind, Source
from shared.ports import Link, StateStore
from shared.sync.batch import Batch, Linked, Loaded, Pair, Row, Settled, Trial
from shared.sync.carried import carried_person, newest, writes_only_to_dynamics
from shared.sync.journal import Journal
from shared.sync.merges import MergeFollower
from shared.sync.planning import Planner
from shared.sync.reads import QUALIFIED, DynamicsReader, MarketoReader
from shared.sync.retry import NO_ONE
from shared.sync.split import Refusal, refuse

log = logging.getLogger(__name__)

Rows = dict[str, dict[str, Row]]
# This many unconfirmed disappearances in one batch is an alert, not a coincidence.
MASS_DISAPPEARANCE = 10


class Loader:
    def __init__(
        self,
        marketo: MarketoReader,
        dynamics: DynamicsReader,
        state: StateStore,
        mapping: FieldMapping,
        merges: MergeFollower,
        *,
        planner: Planner | None = None,
        vanished_retry_seconds: float = 300.0,
    ) -> None:
        self.planner = planner
        self.marketo = marketo
        self.dynamics = dynamics
        self.state = state
        self.mapping = mapping
        self.merges = merges
        self.vanished_retry_seconds = vanished_retry_seconds

    def load(self, batch: Batch, journal: Journal) -> Loaded:
        """Fill in both sides of every pair and the rows of the orphans, following
        qualifications and merges and holding the persons Marketo did not return
        (:func:`hold_vanished`)."""
        rows = self._rows(batch, journal)
        before = set(batch.pairs)
        linked = self._follow_qualified_leads(batch, rows, journal)
        linked |= self._adopt_qualified_contacts(batch, rows, journal)
        in_dynamics = self.merges.follow_dynamics(batch, rows, journal)
        self._load_shadows(batch, set(batch.pairs) - before)
        for pair in batch.pairs.values():
            pair.dynamics = rows[pair.entity].get(pair.dynamics_id.lower())
        for (entity, record_id), orphan in batch.orphans.items():
            orphan.row = rows[entity].get(record_id)
        in_marketo = self.merges.follow_marketo(batch, journal)
        linked |= {**in_dynamics.linked, **in_marketo.linked}
        settled = {**in_dynamics.settled, **in_marketo.settled}
        people, planned = self._read_people(batch, set(batch.pairs) - set(settled), linked, journal)
        settled |= hold_vanished(batch, settled, journal, retry_after=self.vanished_retry_seconds)
        return Loaded(people, linked, settled, planned)

    def _read_people(
        self, batch: Batch, wanted: set[int], linked: Mapping[int, Linked], journal: Journal
    ) -> tuple[dict[int, Row], dict[int, Trial]]:
        """Marketo's side of the ``wanted`` pairs, read or carried by their notices; returns the
        persons read (unlinked ones included when automatic creation is on) and the plans of the
        carried pairs."""
        carried, planned = self._carried(batch, wanted - set(linked))
        wanted -= set(carried)
        if self.mapping.options.auto_create_in_dynamics:
            wanted |= set(batch.unlinked_persons)
        read_at = datetime.now(UTC)
        people = self.marketo.by_ids(wanted)
        for marketo_id, why in people.refused.items():
            self._refused_person(batch, marketo_id, why, journal)
        for marketo_id, pair in batch.pairs.items():
            if marketo_id in carried:
                pair.marketo, pair.marketo_seen = carried[marketo_id], newest(pair)
            else:
                pair.marketo = people.found.get(marketo_id)
                pair.marketo_seen = read_at if marketo_id in wanted else None
        return people.found, planned

    def _carried(self, batch: Batch, wanted: set[int]) -> tuple[dict[int, Row], dict[int, Trial]]:
        """The pairs whose Marketo side their notices carry (``carried``): each is planned on
        trial with it, and kept only if that plan writes nothing to Marketo. A kept trial is the
        plan itself (planning, on the same pair, would decide the same): returned with what it
        recorded, so the pair is planned, and its failures reported and counted, once. A trial
        thrown away reported nothing (``Journal.trial``): the pair is read and planned anew."""
        if self.planner is None:
            return {}, {}
        found: dict[int, Row] = {}
        planned: dict[int, Trial] = {}
        for marketo_id in sorted(wanted):
            pair = batch.pairs[marketo_id]
            person = carried_person(pair, self.mapping, self.planner.entity(pair.entity))
            if person is None:
                continue
            journal = Journal.trial()
            trial = self.planner.plan(replace(pair, marketo=person), journal)
            if writes_only_to_dynamics(trial):
                found[marketo_id] = person
                planned[marketo_id] = Trial(trial, journal)
        return found, planned

    def _rows(self, batch: Batch, journal: Journal) -> Rows:
        wanted: dict[str, set[str]] = {"lead": set(), "contact": set()}
        for pair in batch.pairs.values():
            wanted[pair.entity].add(pair.dynamics_id.lower())
        for entity, record_id in batch.orphans:
            wanted[entity].add(record_id)
        rows: Rows = {}
        for entity, ids in wanted.items():
            read = self.dynamics.by_ids(entity, ids)
            for record_id, why in read.refused.items():
                self._refused_record(batch, entity, record_id, why, journal)
            rows[entity] = read.found
        return rows

    def _refused_record(
        self, batch: Batch, entity: str, record_id: str, why: Refusal, journal: Journal
    ) -> None:
        record = f"reading {entity} {record_id}"
        for marketo_id, pair in list(batch.pairs.items()):
            if pair.entity == entity and pair.dynamics_id.lower() == record_id:
                del batch.pairs[marketo_id]
                refuse(batch, journal, pair.link, pair.notices, why, record=record, activity=False)
        orphan = batch.orphans.pop((entity, record_id), None)
        if orphan is not None:
            refuse(batch, journal, orphan.who, orphan.notices, why, record=record, activity=False)

    def _refused_person(self, batch: Batch, marketo_id: int, why: Refusal, journal: Journal) -> None:
        record = f"reading Marketo person {marketo_id}"
        pair = batch.pairs.pop(marketo_id, None)
        notices = [*(pair.notices if pair else []), *batch.unlinked_persons.pop(marketo_id, [])]
        who = pair.link if pair is not None else Link(marketo_id, "-", "")
        refuse(batch, journal, who, notices, why, record=record, direction="to_marketo", activity=False)

    def _load_shadows(self, batch: Batch, marketo_ids: set[int]) -> None:
        if marketo_ids:
            shadows = self.state.get_shadows(marketo_ids)
            for marketo_id in marketo_ids:
                batch.pairs[marketo_id].shadow = shadows.get(marketo_id)

    def _follow_qualified_leads(self, batch: Batch, rows: Rows, journal: Journal) -> dict[int, Linked]:
        """A linked lead that reads back qualified: its person follows it to its contact, even if
        the contact's own notice was lost."""
        qualified = [
            p
            for p in batch.pairs.values()
            if p.entity == "lead" and _statecode(rows["lead"].get(p.dynamics_id.lower())) == QUALIFIED
        ]
        if not qualified:
            return {}
        read = self.dynamics.by_originating_lead(p.dynamics_id for p in qualified)
        contacts = read.found
        ids = {str(c["contactid"]).lower() for c in contacts.values()}
        taken = self.state.get_links_by_dynamics("contact", ids)
        linked: dict[int, Linked] = {}
        for pair in qualified:
            contact = contacts.get(pair.dynamics_id.lower())
            if contact is None:
                continue  # qualified without a contact: the person stays with its lead
            contact_id = str(contact["contactid"]).lower()
            owner = taken.get(contact_id)
            if owner is not None and owner.marketo_id != pair.marketo_id:
                journal.note(
                    pair.link, "skipped", f"contact {contact_id} is linked to person {owner.marketo_id}"
                )
                continue
            rows["contact"][contact_id] = contact
            orphan = batch.orphans.pop(("contact", contact_id), None)
            linked[pair.marketo_id] = relink(pair, contact_id, journal)
            if orphan is not None:
                batch.attach(pair.link, orphan.notices)
        return linked

    def _adopt_qualified_contacts(self, batch: Batch, rows: Rows, journal: Journal) -> dict[int, Linked]:
        """An unlinked contact that originates from a linked lead is that person's contact."""
        origins: dict[str, str] = {}
        for entity, record_id in batch.orphans:
            row = rows[entity].get(record_id)
            origin = str((row or {}).get("_originatingleadid_value") or "").lower()
            if entity == "contact" and origin:
                origins[record_id] = origin
        if not origins:
            return {}
        leads = self.state.get_links_by_dynamics("lead", set(origins.values()))
        linked: dict[int, Linked] = {}
        for contact_id, origin in origins.items():
            link = leads.get(origin)
            if link is None:
                continue
            orphan = batch.orphans.pop(("contact", contact_id))
            pair = batch.attach(link, orphan.notices)
            if pair.entity == "lead" and pair.dynamics_id.lower() == origin:
                linked[pair.marketo_id] = relink(pair, contact_id, journal)
        return linked


def relink(pair: Pair, contact_id: str, journal: Journal) -> Linked:
    """Qualification: the person now follows the contact; contact rules apply from here on."""
    old = pair.link
    linked = pair.relink("contact", contact_id)
    journal.linked(pair.link, "relinked", f"lead {old.dynamics_id} qualified into contact {contact_id}")
    return linked


def _statecode(row: dict[str, Any] | None) -> object:
    return (row or {}).get("statecode")


def deletion_confirmed(pair: Pair) -> bool:
    return any(n.source is Source.MARKETO and n.kind is Kind.DELETED for n in pair.notices)


def hold_vanished(
    batch: Batch, settled: Mapping[int, Settled], journal: Journal, *, retry_after: float
) -> dict[int, Settled]:
    """Defer every linked person Marketo did not return and did not report deleted (but those
    already ``settled``); returns them, held."""
    vanished = [
        p
        for p in batch.pairs.values()
        if p.marketo is None
        and p.marketo_id not in settled
        and p.dynamics is not None
        and not deletion_confirmed(p)
    ]
    for pair in vanished:
        batch.defer_pair(
            pair,
            ServiceUnavailableError(
                f"person {pair.marketo_id} is not in Marketo's answer and no deletion or merge of it "
                "was reported (yet): the link is kept",
                service="marketo",
                retry_after=retry_after,
            ),
        )
    if len(vanished) >= MASS_DISAPPEARANCE:
        message = (
            f"{len(vanished)} linked persons vanished from Marketo's answers at once without a "
            "deletion or merge reported: has the API user lost access (role, workspace, partition)? "
            "Nothing is unlinked; their notices wait and are parked if it lasts"
        )
        log.error("%s", message)
        telemetry.failures.add(len(vanished), {"reason": "vanished", "direction": "to_dynamics"})
        journal.note(NO_ONE, "alert", message)
    return {p.marketo_id: Settled() for p in vanished}
