"""A Dynamics edit made while the worker is in the middle of a batch for the same person.

The worker reads the contact, reads the person, writes Marketo, then writes the contact. A user
who changes the same field in Dynamics after the worker's read and before its write has made a
collision (the field changed on both sides since the last sync), which Dynamics wins for
contacts. Found by the chaos work: with UpdateMultiple, which carries no ETag, the worker's
write, decided on the stale read, overwrote the user's value and the next notice found both
sides equal. The worker now writes each row with If-Match on the ETag it read; this test keeps
it that way.

Marketo latency (two calls, 1.5 s each) widens the window between the worker's Dataverse read and
its Dataverse write, whichever order the worker reads the two systems in; the test waits for the
worker's read to complete (mdsync's own call counter) before the user edits.
"""

from __future__ import annotations

from mdsync.bench.meter import sync_quietly
from mdsync.bench.seed import seed_pairs
from mdsync.harness import PATIENCE, LocalSystem


def test_a_dynamics_edit_during_a_batch_wins_its_collision(system: LocalSystem) -> None:
    (pair,) = seed_pairs(system, "contact", 1, tag="race")
    system.marketo_admin.user_edit(pair.marketo_id, {"title": "from-marketo"})  # not polled yet
    system.marketo_admin.inject_latency(1500, count=2)
    reads = system.deps.dataverse.calls["GET contacts"]
    system.dataverse_admin.update_as("Jane Doe", "contacts", pair.dynamics_id, {"firstname": "Ana"})
    system.until(lambda: system.deps.dataverse.calls["GET contacts"] > reads)
    system.dataverse_admin.update_as("Jane Doe", "contacts", pair.dynamics_id, {"jobtitle": "from-dynamics"})
    sync_quietly(system, PATIENCE)

    row = system.dataverse_admin.row("contact", pair.dynamics_id)
    person = system.marketo_admin.person(pair.marketo_id)
    assert row is not None
    assert (person["title"], row["jobtitle"]) == ("from-dynamics", "from-dynamics")
