"""Merges: a person merged into another in Marketo, a record merged into another in Dynamics.

Marketo (a Merge Leads activity, read by the poller: a ``merged`` notice naming the winner). The
loser ceases to exist; its Dynamics record follows the winner:

* the winner has no record -> the record is relinked to the winner (a first link);
* the winner is linked to another record -> the record is unlinked (its Marketo-id column
  cleared) and the sync log and the winner's Activity Log say so: one person cannot follow two
  records, and the duplicate is in Dynamics now (merge the records there to finish).

Dynamics (the Merge message, or the subordinate read back with ``masterid`` set). The
subordinate is deactivated; its person follows the master, as the native sync does:

* the master has a person -> the two persons are merged in Marketo (Merge Leads, the master's
  person wins: it keeps its values and takes the other's where its own are empty), and the
  master's pair is reconciled;
* the master has no person -> the subordinate's person is relinked to it (a first link).

Either way the subordinate's Marketo-id column is cleared first (one request per merge): the
column is an alternate key, which the master cannot take while the subordinate still holds it.

What following decided is returned (:class:`Followed`): the pairs relinked (a first link) and
the pairs settled (a loser unlinked, a merge held or refused); loading hands both on.
A notice about a subordinate whose person has moved on reconciles the master's pair.

Both run before the persons are read from Marketo, so what is read is what the merge left.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from shared.dataverse.odata import ENTITY_SETS
from shared.errors import PermanentError, TransientError
from shared.mapping import FieldMapping
from shared.marketo.client import MarketoClient
from shared.notices import Kind, Source
from shared.ports import Link, StateStore
from shared.sync.batch import Batch, Linked, Pair, Settled
from shared.sync.journal import Journal
from shared.sync.planning import release_marketo_id
from shared.sync.reads import DynamicsReader

Rows = dict[str, dict[str, dict[str, object]]]


def _merged_into(pair: Pair) -> int | None:
    """The person this pair's person was merged into (a notice about the winner's own pair,
    come back after the move, says nothing more)."""
    for notice in pair.notices:
        into = notice.merged_into or ""
        mine = notice.record_id == str(pair.marketo_id)
        if mine and notice.source is Source.MARKETO and notice.kind is Kind.MERGED and into.isdigit():
            return int(into)
    return None


@dataclass(frozen=True)
class Followed:
    """What following merges decided: the pairs relinked (a first link) and the pairs settled
    (unlinked, held for later, or refused)."""

    linked: Mapping[int, Linked] = field(default_factory=dict)
    settled: Mapping[int, Settled] = field(default_factory=dict)


class MergeFollower:
    def __init__(
        self, marketo: MarketoClient, rows: DynamicsReader, state: StateStore, mapping: FieldMapping
    ) -> None:
        self.marketo = marketo
        self.rows = rows
        self.state = state
        self.mapping = mapping

    # --- merged in Marketo -----------------------------------------------------------------------

    def follow_marketo(self, batch: Batch, journal: Journal) -> Followed:
        merged = {p.marketo_id: w for p in batch.pairs.values() if (w := _merged_into(p)) is not None}
        if not merged:
            return Followed()
        links = self.state.get_links_by_marketo(merged.values())
        linked: dict[int, Linked] = {}
        settled: dict[int, Settled] = {}
        for loser_id, winner_id in merged.items():
            pair = batch.pairs[loser_id]
            owner = batch.pairs.get(winner_id)
            winner_link = owner.link if owner is not None else links.get(winner_id)
            if winner_link is None:
                linked[winner_id] = self._relink_to_winner(batch, pair, winner_id, journal)
            elif (winner_link.entity, winner_link.dynamics_id.lower()) == (
                pair.entity,
                pair.dynamics_id.lower(),
            ):
                batch.dropped_links.append(pair.link)
                del batch.pairs[loser_id]
            else:
                settled[loser_id] = self._unlink_loser(pair, winner_link, journal)
        return Followed(linked, settled)

    def _relink_to_winner(self, batch: Batch, pair: Pair, winner_id: int, journal: Journal) -> Linked:
        del batch.pairs[pair.marketo_id]
        batch.dropped_links.append(pair.link)
        notices = [*pair.notices, *batch.unlinked_persons.pop(winner_id, [])]
        link = Link(winner_id, pair.entity, pair.dynamics_id)
        batch.add(Pair(link, notices, dynamics=pair.dynamics))
        why = f"relinked: person {pair.marketo_id} was merged into person {winner_id} in Marketo"
        journal.linked(link, "relinked", why)
        return Linked(first_link=True)

    def _unlink_loser(self, pair: Pair, winner: Link, journal: Journal) -> Settled:
        message = (
            f"Person {pair.marketo_id} was merged into this person, whose Dynamics record is "
            f"{winner.entity} {winner.dynamics_id}; {pair.entity} {pair.dynamics_id} is no longer "
            "synced (merge the two records in Dynamics)"
        )
        journal.failed(winner, "merge", "mdsync-merge", message, direction="to_dynamics")
        return Settled(
            unlink=(
                f"person merged into person {winner.marketo_id} in Marketo, which is linked to "
                f"{winner.entity} {winner.dynamics_id}: this {pair.entity} is no longer synced"
            ),
            dynamics_changes=release_marketo_id(self.mapping, pair),
        )

    # --- merged in Dynamics ----------------------------------------------------------------------

    def follow_dynamics(self, batch: Batch, rows: Rows, journal: Journal) -> Followed:
        merged = {
            p.marketo_id: str(master).lower()
            for p in batch.pairs.values()
            if (master := (rows[p.entity].get(p.dynamics_id.lower()) or {}).get("_masterid_value"))
        }
        orphans = {
            key: str(master).lower()
            for key in batch.orphans
            if (master := (rows[key[0]].get(key[1]) or {}).get("_masterid_value"))
        }
        if not merged and not orphans:
            return Followed()
        owners = self._owners(batch, rows, merged, orphans)
        linked: dict[int, Linked] = {}
        settled: dict[int, Settled] = {}
        for marketo_id, master in merged.items():
            pair = batch.pairs[marketo_id]
            owner = _owner(batch, pair.entity, master) or owners[pair.entity].get(master)
            if owner is not None and owner.marketo_id == pair.marketo_id:
                continue
            moved = self._follow_master(batch, pair, rows, journal, master=master, owner=owner)
            if isinstance(moved, Linked):
                linked[marketo_id] = moved
            elif moved is not None:
                settled[marketo_id] = moved
        for (entity, record_id), master in orphans.items():
            owner = _owner(batch, entity, master) or owners[entity].get(master)
            if owner is not None:
                # A notice about a record merged away (a retry, the Merge itself): its person is
                # the master's now, and the master's pair is what to reconcile.
                batch.attach(owner, batch.orphans.pop((entity, record_id)).notices)
        return Followed(linked, settled)

    def _owners(
        self, batch: Batch, rows: Rows, merged: dict[int, str], orphans: dict[tuple[str, str], str]
    ) -> dict[str, dict[str, Link]]:
        """The links of the masters, per entity (their rows read when the batch had not)."""
        by_entity: dict[str, set[str]] = {}
        for marketo_id, master in merged.items():
            by_entity.setdefault(batch.pairs[marketo_id].entity, set()).add(master)
        for (entity, _), master in orphans.items():
            by_entity.setdefault(entity, set()).add(master)
        for entity, masters in by_entity.items():
            missing = [m for m in masters if m not in rows[entity]]
            rows[entity].update(self.rows.by_ids(entity, missing).found)
        return {e: self.state.get_links_by_dynamics(e, masters) for e, masters in by_entity.items()}

    def _follow_master(
        self, batch: Batch, pair: Pair, rows: Rows, journal: Journal, *, master: str, owner: Link | None
    ) -> Linked | Settled | None:
        """The subordinate's person follows the master: relinked to it (no person of its own),
        merged into its person (None), or held (the subordinate could not be released)."""
        if not self._release(batch, pair, rows):
            return Settled()
        if owner is None:
            return self._relink_to_master(pair, master, journal)
        return self._merge_persons(batch, pair, owner, journal)

    def _release(self, batch: Batch, pair: Pair, rows: Rows) -> bool:
        """Clear the subordinate's Marketo-id column (an alternate key the master is to take)."""
        column = self.mapping.links.dynamics_marketo_id
        row = rows[pair.entity].get(pair.dynamics_id.lower()) or {}
        if str(row.get(column) or "") != str(pair.marketo_id):
            return True
        try:
            self.rows.dataverse.update(ENTITY_SETS[pair.entity], pair.dynamics_id, {column: None})
        except TransientError as exc:
            batch.defer_pair(pair, exc)
            return False
        except PermanentError:
            return True  # gone or refused: the master's write will say so
        row[column] = None
        return True

    def _relink_to_master(self, pair: Pair, master: str, journal: Journal) -> Linked:
        old = pair.link
        linked = pair.relink(old.entity, master)
        why = f"relinked: {old.entity} {old.dynamics_id} was merged into {old.entity} {master} in Dynamics"
        journal.linked(pair.link, "relinked", why)
        return linked

    def _merge_persons(self, batch: Batch, pair: Pair, owner: Link, journal: Journal) -> Settled | None:
        """The subordinate's person is merged into the master's person in Marketo (None: done;
        the pair is the master's now); held or reported when Marketo did not merge them."""
        try:
            self.marketo.merge_leads(owner.marketo_id, [pair.marketo_id])
        except TransientError as exc:
            batch.defer_pair(pair, exc)
            return Settled()
        except PermanentError as exc:
            journal.failed(pair.link, "merge", exc.code or "marketo", exc.message, direction="to_marketo")
            return Settled()
        del batch.pairs[pair.marketo_id]
        batch.dropped_links.append(pair.link)
        master = batch.attach(owner, pair.notices)
        journal.note(
            master.link,
            "merged",
            f"{pair.entity} {pair.dynamics_id} was merged into {owner.entity} {owner.dynamics_id} in "
            f"Dynamics: person {pair.marketo_id} merged into this person in Marketo",
        )
        return None


def _owner(batch: Batch, entity: str, record_id: str) -> Link | None:
    return next(
        (p.link for p in batch.pairs.values() if (p.entity, p.dynamics_id.lower()) == (entity, record_id)),
        None,
    )
