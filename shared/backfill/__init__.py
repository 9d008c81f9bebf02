"""The initial sync (``mdsync backfill``, issue 13): link and reconcile every existing record.

One resumable job, its state in the state store (``job.py``), run unit by unit by a
:class:`~shared.backfill.runner.Backfill` from the CLI (``mdsync/backfill.py``) or step by step
by queue messages in the function app (``steps.py``, ``functions/backfill.py``). The phases, in
order:

1. reading (``reading.py``): ``links`` (the stored links), ``marketo`` (Bulk Lead Extract, one
   export per 31-day window), ``dynamics`` (leads and contacts, pages of 5,000), ``partners``
   (``--since`` and REST-only: the other side of what was read, by id and email);
2. matching (``matching.py``): ``match_records``, ``match_persons``, ``match_emails``: a stored
   link, then the Marketo id stored on the record, then the email; ambiguities reported (or
   settled by the admin's rule); each pair planned by the worker's rules (``pairs.py``);
3. writing (``writing.py``): ``marketo_writes`` (Bulk Lead Import, or Sync Leads for few rows),
   ``creates`` (a person per record that has none), ``created_ids`` (their ids, by an extract),
   ``dynamics_writes`` (UpdateMultiple, 1,000 rows a request);
4. ``store`` (``storing.py``): links and shadows; the rest handed to the live sync.

Beside the phases, two agreements with the live sync, each one state-store record:
``share.py`` (the job's share of Marketo's rate, taken from the live sync only while the job
calls Marketo) and ``fence.py`` (live batches claim their records before they write; the job
enters each range of writes before it checks it; neither writes over the other).

A dry run stops after matching with the preview. Everything read is staged outside memory
(``staging.py``), so memory stays flat whatever the size. Every unit's effect is idempotent: a
kill between a unit's effect and the save of the job's state repeats the unit, and repeating it
changes nothing (items are upserted by key; a person is created with the record's id as its
lookup field, so a second import of it updates the person the first made; links and shadows are
stored only if absent or over the etag they were read with).
"""
