"""Chaos events that move links, and what must hold once they converged.

* A lead is qualified into a contact. Its notes (``personNotes`` <-> ``description``) are not
  copied by the qualification: the contact must receive them, Marketo must keep them.
* A person is merged in Marketo into a duplicate a marketer created (same email, a mobile number
  the lead lacks). The lead must follow the winner; the lead's values stay (Dynamics fills
  Marketo on a first link) and it gains the duplicate's mobile number.
* A contact is merged in Dynamics into another one. Its person must be merged into the other's
  person in Marketo (no duplicate survives), and the phone only it had must reach the master.
* A race: a lead's title edited in Dynamics and, moments later, in Marketo. Whichever way the
  timing falls (before mdsync's read, between its read and its write, after its write), the
  Marketo value must win on a lead; how often the write overwrote it is counted.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

from mdsync.bench.seed import Pair
from mdsync.chaos.checks import Expectation, PairKey, Violation
from mdsync.chaos.plan import Round
from mdsync.harness import LocalSystem

USER = "Jane Doe"
LOST_UPDATE = "between mdsync's read and its write"
# The pause between a race's Dynamics edit and its Marketo edit, drawn anew each race: the
# Marketo edit lands before mdsync reads, between its read and its write, or after.
RACE_PAUSE = (0.0, 0.8)


@dataclass
class Expected:
    """What one round's events must have left, checked once it converged."""

    notes: dict[PairKey, str] = field(default_factory=dict)  # qualified: notes on both sides
    rows: dict[PairKey, dict[str, object]] = field(default_factory=dict)  # merged in Marketo: kept
    mobiles: dict[PairKey, str] = field(default_factory=dict)  # ... and gained
    phones: dict[PairKey, str] = field(default_factory=dict)  # merged in Dynamics: the master's
    gone: dict[PairKey, Pair] = field(default_factory=dict)  # merged away in Dynamics


class LinkEvents:
    def __init__(self, system: LocalSystem, pairs: dict[PairKey, Pair], seed: int) -> None:
        self.system = system
        self.pairs = pairs
        self.seed = seed
        self.moves: dict[PairKey, Pair] = {}  # where each pair is once its event converged
        self.rng = random.Random(seed)  # race pauses only

    # --- before the rounds ---------------------------------------------------------------------

    def prepare(self, rounds: list[Round]) -> None:
        """Values the events will move: notes on the leads to qualify, a phone on the contacts
        to merge away (synced by the convergence that ends the preparation)."""
        admin = self.system.dataverse_admin
        for number, plan in enumerate(rounds):
            for key in plan.qualifications:
                pair = self.pairs[key]
                admin.update_as(USER, "leads", pair.dynamics_id, {"description": self._notes(key)})
            for merged, _ in plan.dynamics_merges:
                pair = self.pairs[merged]
                admin.update_as(
                    USER, "contacts", pair.dynamics_id, {"telephone1": f"+1 555 {number}{merged[1]:04d}"}
                )

    def _notes(self, key: PairKey) -> str:
        return f"Notes of {key[0]} {key[1]} (seed {self.seed})"

    # --- in a round ----------------------------------------------------------------------------

    def apply(self, plan: Round, expected: dict[tuple[PairKey, str, str], Expectation]) -> Expected:
        system = self.system
        after = Expected()
        for key in plan.qualifications:
            pair = self.pairs[key]
            (contact,) = system.dataverse_admin.qualify_as(USER, pair.dynamics_id)
            self.moves[key] = Pair(pair.marketo_id, "contact", str(contact["contactid"]).lower())
            after.notes[key] = self._notes(key)
        for key in plan.marketo_merges:
            pair = self.pairs[key]
            marketo = system.stack.marketo.state
            email = str((marketo.person(pair.marketo_id) or {}).get("email"))
            mobile = f"+1 555 9{key[1]:04d}"
            duplicate = marketo.user_create({"email": email, "lastName": "Duplicate", "mobilePhone": mobile})
            marketo.user_merge(duplicate, [pair.marketo_id])
            self.moves[key] = Pair(duplicate, pair.entity, pair.dynamics_id)
            after.rows[key] = dict(system.dataverse_admin.row(pair.entity, pair.dynamics_id) or {})
            after.mobiles[key] = mobile
        for merged, into in plan.dynamics_merges:
            gone, master = self.pairs[merged], self.pairs[into]
            phone = str((system.dataverse_admin.row("contact", gone.dynamics_id) or {}).get("telephone1"))
            system.dataverse_admin.merge_as(USER, "contact", master.dynamics_id, gone.dynamics_id)
            after.phones[into] = phone
            after.gone[merged] = gone
        for in_dynamics, in_marketo in plan.races:
            pair = self.pairs[in_dynamics.pair]
            system.dataverse_admin.update_as(
                USER, "leads", pair.dynamics_id, {in_dynamics.dynamics_column: in_dynamics.value}
            )
            time.sleep(self.rng.uniform(*RACE_PAUSE))
            system.stack.marketo.state.user_edit(
                pair.marketo_id, {in_marketo.marketo_field: in_marketo.value}
            )
            expected[(in_marketo.pair, in_marketo.marketo_field, in_marketo.dynamics_column)] = (
                in_marketo.value
            )
        return after

    def settle(self, after: Expected) -> None:
        """The pairs as the events left them (once the round converged)."""
        self.pairs.update(self.moves)
        self.moves.clear()
        for key in after.gone:
            del self.pairs[key]

    # --- checks --------------------------------------------------------------------------------

    def check(self, after: Expected) -> list[Violation]:
        found: list[Violation] = []
        for key, notes in after.notes.items():
            found += self._notes_kept(key, notes)
        for key, before in after.rows.items():
            found += self._merged_in_marketo(key, before, after.mobiles[key])
        for key, phone in after.phones.items():
            found += self._merged_in_dynamics(key, phone)
        for key, gone in after.gone.items():
            if self.system.stack.marketo.state.person(gone.marketo_id) is not None:
                found.append(
                    Violation("merged", f"contact {key[1]}: person {gone.marketo_id} survived its merge")
                )
            if self.system.deps.state.get_links_by_dynamics("contact", [gone.dynamics_id]):
                found.append(Violation("merged", f"contact {key[1]}: the merged-away record is still linked"))
        return found

    def _notes_kept(self, key: PairKey, notes: str) -> list[Violation]:
        pair = self.pairs[key]
        person = self.system.stack.marketo.state.person(pair.marketo_id) or {}
        row = self.system.dataverse_admin.row("contact", pair.dynamics_id) or {}
        if (person.get("personNotes"), row.get("description")) != (notes, notes):
            got = (person.get("personNotes"), row.get("description"))
            return [
                Violation("no change lost", f"qualified lead {key[1]}: notes (Marketo, contact) are {got}")
            ]
        return []

    def _merged_in_marketo(self, key: PairKey, before: dict[str, object], mobile: str) -> list[Violation]:
        pair = self.pairs[key]
        row = self.system.dataverse_admin.row(pair.entity, pair.dynamics_id) or {}
        found = []
        for column in ("firstname", "lastname", "emailaddress1", "jobtitle", "address1_city"):
            if row.get(column) != before.get(column):
                found.append(
                    Violation(
                        "no change lost",
                        f"lead {key[1]} merged in Marketo: {column} {before.get(column)!r}"
                        f" became {row.get(column)!r}",
                    )
                )
        if row.get("mobilephone") != mobile:
            found.append(
                Violation(
                    "no change lost", f"lead {key[1]}: the duplicate's mobile {mobile!r} did not reach it"
                )
            )
        return found

    def _merged_in_dynamics(self, key: PairKey, phone: str) -> list[Violation]:
        pair = self.pairs[key]
        row = self.system.dataverse_admin.row("contact", pair.dynamics_id) or {}
        if row.get("telephone1") != phone:
            return [
                Violation(
                    "no change lost",
                    f"contact {key[1]}: the merged contact's phone {phone!r} is {row.get('telephone1')!r}",
                )
            ]
        return []


def lost_updates_restored(system: LocalSystem) -> int:
    """How many Marketo edits mdsync's own writes overwrote and the collision rule then decided."""
    entries = system.deps.state.read_log(limit=100_000)
    return sum(1 for e in entries if e.action == "collision" and LOST_UPDATE in e.detail)
