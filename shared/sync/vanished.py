"""Linked persons missing from Marketo's answer: deleted, merged away, or out of sight?

A read by id answers nothing for a person that was deleted, merged into another one, or that
the API user can no longer see (its role, workspace or partition changed). Only the first two
may drop a link, and Marketo reports them: Get Deleted Leads (a ``deleted`` notice) and the
Merge Leads activity (a ``merged`` notice, followed in ``merges``). So a missing person is
unlinked only when one of its notices confirms the deletion; otherwise its notices are tried
again after the poller has had time to read the deletions (MARKETO_DELETES_POLL_SECONDS), and
parked, link kept, if no deletion or merge is ever reported.

Many persons disappearing at once without a deletion reported is the signature of an access
change: it is logged as an error (``mdsync.marketo.vanished``), and nothing is unlinked.
"""

from __future__ import annotations

import logging

from shared import telemetry
from shared.errors import ServiceUnavailableError
from shared.notices import Kind, Source
from shared.sync.batch import Batch, Pair
from shared.sync.journal import Journal
from shared.sync.retry import NO_ONE

log = logging.getLogger(__name__)

# This many unconfirmed disappearances in one batch is an alert, not a coincidence.
MASS_DISAPPEARANCE = 10


def deletion_confirmed(pair: Pair) -> bool:
    return any(n.source is Source.MARKETO and n.kind is Kind.DELETED for n in pair.notices)


def hold_vanished(batch: Batch, journal: Journal, *, retry_after: float) -> None:
    """Defer every linked person Marketo did not return and did not report deleted."""
    vanished = [
        p
        for p in batch.pairs.values()
        if p.marketo is None and not p.settled and p.dynamics is not None and not deletion_confirmed(p)
    ]
    for pair in vanished:
        pair.settled = True
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
